"""Probability distributions of durations, as spec models that can draw blocks of samples.

    >>> d = parse_distribution({"dist": "gamma", "mean": "2 h", "sd": "30 min"})
    >>> d.mean_hours("h")
    2.0
    >>> draw = d.sampler("h"); draw(numpy.random.default_rng(1), 3).shape
    (3,)

A bare duration (``2 h`` or ``1.5``) stands for a constant.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationInfo, model_validator

from twin.durations import to_hours
from twin.spec.limits import MAX_EMPIRICAL, MAX_WEIBULL_SHAPE, MIN_WEIBULL_SHAPE
from twin.spec.types import NonNegativeDuration, PositiveDuration, SpecModel, context_time_unit

if TYPE_CHECKING:  # numpy loads with the first sampler, so that `twin validate` starts quickly
    import numpy as np

Sampler = Callable[["np.random.Generator", int], "np.ndarray"]


class _Dist(SpecModel):
    def mean_hours(self, time_unit: str) -> float:
        """The distribution's mean in hours."""
        raise NotImplementedError

    def sampler(self, time_unit: str) -> Sampler:
        """A function ``(rng, n) -> n draws in hours``."""
        raise NotImplementedError

    def _h(self, value: float | str, time_unit: str) -> float:
        return to_hours(value, time_unit)


class Constant(_Dist):
    """Always the same duration."""

    dist: Literal["constant"] = "constant"
    value: PositiveDuration

    def mean_hours(self, time_unit: str) -> float:
        return self._h(self.value, time_unit)

    def sampler(self, time_unit: str) -> Sampler:
        import numpy as np

        v = self._h(self.value, time_unit)
        return lambda rng, n: np.full(n, v)


class Exponential(_Dist):
    """Memoryless durations with the given mean."""

    dist: Literal["exponential"]
    mean: PositiveDuration

    def mean_hours(self, time_unit: str) -> float:
        return self._h(self.mean, time_unit)

    def sampler(self, time_unit: str) -> Sampler:
        mean = self._h(self.mean, time_unit)
        return lambda rng, n: rng.exponential(mean, n)


class Uniform(_Dist):
    """Uniform between ``low`` and ``high``."""

    dist: Literal["uniform"]
    low: NonNegativeDuration
    high: PositiveDuration

    @model_validator(mode="after")
    def _ordered(self, info: ValidationInfo) -> Uniform:
        unit = context_time_unit(info)
        if self._h(self.low, unit) >= self._h(self.high, unit):
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def mean_hours(self, time_unit: str) -> float:
        return (self._h(self.low, time_unit) + self._h(self.high, time_unit)) / 2

    def sampler(self, time_unit: str) -> Sampler:
        low, high = self._h(self.low, time_unit), self._h(self.high, time_unit)
        return lambda rng, n: rng.uniform(low, high, n)


class Triangular(_Dist):
    """Triangular with minimum ``low``, most likely ``mode`` and maximum ``high``."""

    dist: Literal["triangular"]
    low: NonNegativeDuration
    mode: NonNegativeDuration
    high: PositiveDuration

    @model_validator(mode="after")
    def _ordered(self, info: ValidationInfo) -> Triangular:
        unit = context_time_unit(info)
        low, mode, high = (self._h(v, unit) for v in (self.low, self.mode, self.high))
        if not (low <= mode <= high and low < high):
            raise ValueError(f"needs low <= mode <= high and low < high (got {self.low}, {self.mode}, {self.high})")
        return self

    def mean_hours(self, time_unit: str) -> float:
        return sum(self._h(v, time_unit) for v in (self.low, self.mode, self.high)) / 3

    def sampler(self, time_unit: str) -> Sampler:
        low, mode, high = (self._h(v, time_unit) for v in (self.low, self.mode, self.high))
        return lambda rng, n: rng.triangular(low, mode, high, n)


class Normal(_Dist):
    """Normal with ``mean`` and ``sd``, truncated at 0 (negative draws are drawn again)."""

    dist: Literal["normal"]
    mean: PositiveDuration
    sd: NonNegativeDuration

    def mean_hours(self, time_unit: str) -> float:
        mu, sd = self._h(self.mean, time_unit), self._h(self.sd, time_unit)
        if sd == 0:
            return mu
        alpha = -mu / sd
        tail = 0.5 * math.erfc(alpha / math.sqrt(2))  # P(X > 0)
        return mu + sd * math.exp(-alpha * alpha / 2) / math.sqrt(2 * math.pi) / tail

    def sampler(self, time_unit: str) -> Sampler:
        mu, sd = self._h(self.mean, time_unit), self._h(self.sd, time_unit)

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            out = rng.normal(mu, sd, n)
            negative = out < 0
            while negative.any():
                out[negative] = rng.normal(mu, sd, int(negative.sum()))
                negative = out < 0
            return out

        return draw


class LogNormal(_Dist):
    """Log-normal given by the ``mean`` and ``sd`` of the duration itself (not of its log)."""

    dist: Literal["lognormal"]
    mean: PositiveDuration
    sd: PositiveDuration

    @model_validator(mode="after")
    def _spread(self, info: ValidationInfo) -> LogNormal:
        _check_cv(self._h(self.sd, context_time_unit(info)) / self._h(self.mean, context_time_unit(info)), 0, 1e6)
        return self

    def mean_hours(self, time_unit: str) -> float:
        return self._h(self.mean, time_unit)

    def sampler(self, time_unit: str) -> Sampler:
        mean, sd = self._h(self.mean, time_unit), self._h(self.sd, time_unit)
        sigma2 = math.log1p((sd / mean) ** 2)
        mu, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
        return lambda rng, n: rng.lognormal(mu, sigma, n)


class Gamma(_Dist):
    """Gamma given by its ``mean`` and ``sd`` (shape = mean²/sd²)."""

    dist: Literal["gamma"]
    mean: PositiveDuration
    sd: PositiveDuration

    @model_validator(mode="after")
    def _spread(self, info: ValidationInfo) -> Gamma:
        # shape 1e-2..1e12: a smaller shape draws mostly exact zeros (a run that never advances)
        _check_cv(self._h(self.sd, context_time_unit(info)) / self._h(self.mean, context_time_unit(info)), 1e-6, 10)
        return self

    def mean_hours(self, time_unit: str) -> float:
        return self._h(self.mean, time_unit)

    def sampler(self, time_unit: str) -> Sampler:
        mean, sd = self._h(self.mean, time_unit), self._h(self.sd, time_unit)
        shape, scale = (mean / sd) ** 2, sd * sd / mean
        return lambda rng, n: rng.gamma(shape, scale, n)


def _check_cv(cv: float, low: float, high: float) -> None:
    if not low <= cv <= high:
        bound = f"between {low:g} and {high:g}" if low > 0 else f"at most {high:g}"
        raise ValueError(f"sd must be {bound} times the mean (got {cv:.3g} times)")


class Weibull(_Dist):
    """Weibull with dimensionless ``shape`` k and a ``scale`` duration (mean = scale·Γ(1+1/k))."""

    dist: Literal["weibull"]
    shape: float = Field(ge=MIN_WEIBULL_SHAPE, le=MAX_WEIBULL_SHAPE, allow_inf_nan=False, description="Shape k.")
    scale: PositiveDuration

    def mean_hours(self, time_unit: str) -> float:
        return self._h(self.scale, time_unit) * math.gamma(1 + 1 / self.shape)

    def sampler(self, time_unit: str) -> Sampler:
        shape, scale = self.shape, self._h(self.scale, time_unit)
        return lambda rng, n: scale * rng.weibull(shape, n)


class Empirical(_Dist):
    """Observed durations, drawn uniformly with replacement."""

    dist: Literal["empirical"]
    values: list[NonNegativeDuration] = Field(
        min_length=1, max_length=MAX_EMPIRICAL, description="Observed durations, drawn with equal chance."
    )

    @model_validator(mode="after")
    def _some_positive(self, info: ValidationInfo) -> Empirical:
        if not any(self._h(v, context_time_unit(info)) > 0 for v in self.values):
            raise ValueError("needs at least one positive value")
        return self

    def mean_hours(self, time_unit: str) -> float:
        import numpy as np

        return float(np.mean([self._h(v, time_unit) for v in self.values]))

    def sampler(self, time_unit: str) -> Sampler:
        import numpy as np

        values = np.array([self._h(v, time_unit) for v in self.values])
        return lambda rng, n: rng.choice(values, n)


DISTRIBUTIONS: dict[str, type[_Dist]] = {
    "constant": Constant,
    "exponential": Exponential,
    "uniform": Uniform,
    "triangular": Triangular,
    "normal": Normal,
    "lognormal": LogNormal,
    "gamma": Gamma,
    "weibull": Weibull,
    "empirical": Empirical,
}


def _bare_to_constant(value: Any) -> Any:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


def _dist_tag(value: Any) -> str | None:
    if isinstance(value, _Dist):
        return f"tag:{value.dist}"
    if isinstance(value, dict):
        name = value.get("dist")
        return f"tag:{name}" if isinstance(name, str) else None
    return None


class _Bare:
    """Turns a bare duration into ``{dist: constant, value: ...}`` before the union is chosen."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(_bare_to_constant, handler(source))

    @classmethod
    def __get_pydantic_json_schema__(cls, core: Any, handler: Any) -> Any:
        from twin.spec.types import DURATION_JSON_SCHEMA

        inner = handler(core)
        return {
            "anyOf": [DURATION_JSON_SCHEMA, inner],
            "description": "A distribution, or a bare duration for a constant.",
        }


Distribution = Annotated[
    Union[tuple(Annotated[model, Tag(f"tag:{name}")] for name, model in DISTRIBUTIONS.items())],  # noqa: UP007
    Discriminator(
        _dist_tag,
        custom_error_type="unknown_distribution",
        custom_error_message=f"expected a duration or {{dist: ...}} with dist one of: {', '.join(DISTRIBUTIONS)}",
    ),
    _Bare,
]

@functools.cache
def _adapter() -> TypeAdapter[Any]:
    return TypeAdapter(Distribution)  # built on first use: spec models defer theirs too (twin.spec.types)


def parse_distribution(value: Any, time_unit: str = "h") -> _Dist:
    """Validate one distribution (a dict, a bare duration) outside a spec."""
    return _adapter().validate_python(value, context={"time_unit": time_unit})


DistributionModel = _Dist
