"""Maximum-likelihood fits of duration distributions with right-censoring, in JAX.

    >>> data = Durations(np.array([1.2, 0.8, 2.5, 3.0]), np.array([False, False, False, True]))
    >>> fit = fit_family(data, "gamma")
    >>> fit.params["mean"].value, fit.params["mean"].low, fit.params["mean"].high   # hours, 95% Wald CI
    >>> best, tried = fit_best(data)          # every family, chosen by AICc

An observation is either exact (the duration ended inside the data) or right-censored (it was still
running when the data ended: the duration is at least that long). The log-likelihood is
sum(log f(x)) over exact ones plus sum(log S(x)) over censored ones, with f the density and S the
survival function of the family. Each family is parameterized as the spec writes it (mean and sd,
or shape and scale); the fit runs on the logarithms of those parameters, and the 95% intervals are
Wald intervals on that log scale from the observed information (the Hessian of the negative
log-likelihood by JAX; for the gamma family, whose survival function has no second derivative in
JAX, a central-difference Hessian of the JAX gradient), mapped back by the exponential (delta
method), so they stay positive. The distribution's mean gets its interval by the delta method too.

Goodness of fit: ``ks`` is the largest distance between the Kaplan-Meier estimate of the
distribution function and the fitted one (the Kolmogorov-Smirnov statistic when nothing is
censored); ``ks_reference`` is the 5% critical value 1.36/sqrt(n) for a distribution known in
advance, a lenient yardstick since the parameters were fitted to the same data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from scipy import optimize, stats

from twin.stats import t_quantile

FAMILIES: tuple[str, ...] = ("exponential", "gamma", "lognormal", "weibull", "normal")
PARAMETERS: dict[str, tuple[str, ...]] = {
    "exponential": ("mean",),
    "gamma": ("mean", "sd"),
    "lognormal": ("mean", "sd"),
    "weibull": ("shape", "scale"),
    "normal": ("mean", "sd"),
    "constant": ("value",),
}
DIMENSIONLESS = frozenset({"shape"})
Z95 = 1.959963984540054
AICC_TIE = 2.0  # AICc differences below this do not tell families apart (Burnham & Anderson)
_MIN_BUCKET = 256  # data are padded to 256, 1024, 4096, ... so that compiled functions are reused


@dataclass(frozen=True)
class Durations:
    """Observed durations in hours; ``censored[i]``: the i-th was still running when the data ended."""

    values: np.ndarray
    censored: np.ndarray

    @classmethod
    def of(cls, values: Sequence[float], censored: Sequence[bool] | None = None) -> Durations:
        v = np.asarray(values, dtype=float)
        c = np.zeros(len(v), dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
        return cls(v, c)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def n_censored(self) -> int:
        return int(self.censored.sum())

    @property
    def n_exact(self) -> int:
        return self.n - self.n_censored

    def usable(self) -> Durations:
        """Without zero or negative durations (no family has them; a censored one at 0 says nothing)."""
        keep = self.values > 0
        return Durations(self.values[keep], self.censored[keep])

    def exact_only(self) -> Durations:
        """The uncensored ones alone (what a fit that ignores censoring would see)."""
        return Durations(self.values[~self.censored], self.censored[~self.censored])


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its 95% confidence interval (``None`` where the information is singular)."""

    value: float
    low: float | None = None
    high: float | None = None

    def covers(self, truth: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= truth <= self.high

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted to the data: parameters as the spec writes them (durations in hours)."""

    family: str
    params: dict[str, Estimate]
    mean: Estimate  # the distribution's mean, hours
    loglik: float
    k: int  # number of parameters
    n: int
    ks: float | None
    converged: bool = True
    note: str = ""
    covariance: np.ndarray | None = field(default=None, repr=False, compare=False)  # of the log-parameters

    @property
    def aic(self) -> float:
        return 2 * self.k - 2 * self.loglik

    @property
    def aicc(self) -> float:
        if self.n - self.k - 1 <= 0:
            return math.inf
        return self.aic + 2 * self.k * (self.k + 1) / (self.n - self.k - 1)

    @property
    def ks_reference(self) -> float | None:
        return 1.36 / math.sqrt(self.n) if self.n else None


@contextmanager
def x64() -> Iterator[None]:
    """64-bit JAX inside the block only (never a global switch)."""
    try:
        from jax.experimental import enable_x64  # jax < 0.5
    except ImportError:
        import jax

        enable_x64 = jax.enable_x64
    with enable_x64():
        yield


# -- the families: log density and log survival on data scaled to mean about 1 -------------------


# The gamma survival function (an incomplete gamma function) iterates, lane by lane, until every lane of the
# data has converged; only the censored lanes use it. The others are given this value instead, for which it
# stops at once (its terms underflow) with a value and derivatives of exactly 0 that are then not selected: the
# censored lanes' results are the same, and the loop runs only as long as they need (none: no loop at all).
_GAMMA_SKIP = 1e300


def _family_logs(family: str) -> Any:
    """``logs(theta, x, exact) -> (log f(x), log S(x))`` for ``theta`` = log-parameters, in JAX; ``log S`` is
    only asked of the lanes where ``exact`` is false (a family may skip its work on the others)."""
    import jax.numpy as jnp
    from jax.scipy.special import gammaincc, gammaln, log_ndtr

    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def exponential(theta: Any, x: Any, exact: Any) -> Any:
        rate = jnp.exp(-theta[0])
        return -theta[0] - x * rate, -x * rate

    def gamma(theta: Any, x: Any, exact: Any) -> Any:
        shape, scale = jnp.exp(2 * (theta[0] - theta[1])), jnp.exp(2 * theta[1] - theta[0])
        z = x / scale
        logf = -gammaln(shape) - jnp.log(scale) + (shape - 1) * jnp.log(z) - z
        survival = gammaincc(shape, jnp.where(exact, _GAMMA_SKIP, z))
        return logf, jnp.log(jnp.maximum(survival, 1e-300))

    def lognormal(theta: Any, x: Any, exact: Any) -> Any:
        sigma2 = jnp.log1p(jnp.exp(2 * (theta[1] - theta[0])))
        sigma, mu = jnp.sqrt(sigma2), theta[0] - sigma2 / 2
        z = (jnp.log(x) - mu) / sigma
        return -jnp.log(x) - jnp.log(sigma) - half_log_2pi - z * z / 2, log_ndtr(-z)

    def weibull(theta: Any, x: Any, exact: Any) -> Any:
        shape = jnp.exp(theta[0])
        log_ratio = jnp.log(x) - theta[1]
        power = jnp.exp(shape * log_ratio)
        return theta[0] - jnp.log(x) + shape * log_ratio - power, -power

    def normal(theta: Any, x: Any, exact: Any) -> Any:  # truncated at 0, as the engine draws it
        mu, sigma = jnp.exp(theta[0]), jnp.exp(theta[1])
        z = (x - mu) / sigma
        kept = log_ndtr(mu / sigma)
        return -z * z / 2 - theta[1] - half_log_2pi - kept, log_ndtr(-z) - kept

    return {"exponential": exponential, "gamma": gamma, "lognormal": lognormal, "weibull": weibull, "normal": normal}[
        family
    ]


def log_mean(family: str, theta: np.ndarray) -> float:
    """Log of the distribution's mean from log-parameters (in the units the data were given in)."""
    if family in ("exponential", "gamma", "lognormal"):
        return float(theta[0])
    if family == "weibull":
        return float(theta[1] + math.lgamma(1 + math.exp(-theta[0])))
    mu, sigma = math.exp(theta[0]), math.exp(theta[1])  # normal truncated at 0
    alpha = mu / sigma
    return math.log(mu + sigma * math.exp(stats.norm.logpdf(alpha) - stats.norm.logcdf(alpha)))


def _log_mean_gradient(family: str, theta: np.ndarray, step: float = 1e-6) -> np.ndarray:
    grad = np.zeros(len(theta))
    for j in range(len(theta)):
        e = np.zeros(len(theta))
        e[j] = step
        grad[j] = (log_mean(family, theta + e) - log_mean(family, theta - e)) / (2 * step)
    return grad


@dataclass(frozen=True)
class _Compiled:
    value_and_grad: Any
    hessian: Any | None  # None: take differences of the gradient


@cache
def _compiled(family: str) -> _Compiled:
    """Jitted functions of one family (compiled once per data size bucket, then reused; kept on disk between
    processes by ``twin.jaxcache``)."""
    import jax
    import jax.numpy as jnp

    from twin.jaxcache import use_compilation_cache

    use_compilation_cache()

    logs = _family_logs(family)

    def negative_loglik(theta: Any, x: Any, exact: Any, weight: Any) -> Any:
        logf, logs_ = logs(theta, x, exact)
        return -jnp.sum(weight * jnp.where(exact, logf, logs_))

    return _Compiled(
        value_and_grad=jax.jit(jax.value_and_grad(negative_loglik)),
        hessian=None if family == "gamma" else jax.jit(jax.hessian(negative_loglik)),
    )


def _padded(data: Durations, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = _MIN_BUCKET
    while size < data.n:
        size *= 4
    x = np.ones(size)
    exact = np.ones(size, dtype=bool)
    weight = np.zeros(size)
    x[: data.n] = data.values / scale
    exact[: data.n] = ~data.censored
    weight[: data.n] = 1.0
    return x, exact, weight


def _start(family: str, values: np.ndarray) -> np.ndarray:
    """Starting log-parameters from the moments of (scaled) data."""
    mean = float(values.mean())
    cv = float(np.clip(values.std() / mean, 0.05, 5.0)) if len(values) > 1 else 0.5
    if family == "exponential":
        return np.array([math.log(mean)])
    if family == "weibull":
        shape = cv**-1.086
        return np.array([math.log(shape), math.log(mean / math.gamma(1 + 1 / shape))])
    return np.array([math.log(mean), math.log(mean * cv)])


def fit_family(data: Durations, family: str) -> FamilyFit:
    """Fit one family by maximum likelihood (censoring included); durations in hours."""
    if family not in PARAMETERS:
        raise ValueError(f"unknown family {family!r}")
    data = data.usable()
    if data.n_exact == 0:
        raise ValueError("no uncensored observation")
    if family == "constant":
        return _constant_fit(data)
    scale = float(data.values[~data.censored].mean())
    x, exact, weight = _padded(data, scale)
    functions = _compiled(family)
    with x64():
        import jax.numpy as jnp

        xs, ex, ws = jnp.asarray(x), jnp.asarray(exact), jnp.asarray(weight)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            # theta goes in as it is: a jitted function takes a NumPy array at less cost than jnp.asarray's
            value, grad = functions.value_and_grad(theta, xs, ex, ws)
            value = float(value)
            if not math.isfinite(value):
                return 1e300, np.zeros_like(theta)
            return value / data.n, np.asarray(grad) / data.n

        best = None
        for shift in (0.0, 0.7, -0.7):
            start = _start(family, x[: data.n][exact[: data.n]]) + shift * (np.arange(len(PARAMETERS[family])) == 1)
            result = optimize.minimize(objective, start, jac=True, method="BFGS", options={"gtol": 1e-9})
            if best is None or (_converged(result), -result.fun) > (_converged(best), -best.fun):
                best = result
            if _converged(result):
                break
        assert best is not None
        theta = np.asarray(best.x, dtype=float)
        loglik = -float(functions.value_and_grad(theta, xs, ex, ws)[0])
        hessian = _hessian(functions, theta, xs, ex, ws)
    covariance = _inverse(hessian)
    log_scale = math.log(scale)
    names = PARAMETERS[family]
    shifts = np.array([0.0 if name in DIMENSIONLESS else log_scale for name in names])
    params = {}
    for j, name in enumerate(names):
        se = math.sqrt(covariance[j, j]) if covariance is not None else None
        params[name] = _log_estimate(theta[j] + shifts[j], se)
    gradient = _log_mean_gradient(family, theta)
    mean_se = math.sqrt(float(gradient @ covariance @ gradient)) if covariance is not None else None
    mean = _log_estimate(log_mean(family, theta) + log_scale, mean_se)
    fitted = FamilyFit(
        family=family,
        params=params,
        mean=mean,
        loglik=loglik - data.n_exact * log_scale,  # density per hour, not per scaled unit
        k=len(names),
        n=data.n,
        ks=None,
        converged=_converged(best),
        note="" if covariance is not None else "the observed information is singular: no interval",
        covariance=covariance,
    )
    return _with_ks(fitted, data)


def _converged(result: optimize.OptimizeResult) -> bool:
    """At a stationary point: BFGS says so, or stopped on rounding with a gradient that is nil anyway."""
    return math.isfinite(result.fun) and (bool(result.success) or float(np.abs(result.jac).max()) < 1e-5)


def _hessian(functions: _Compiled, theta: np.ndarray, xs: Any, ex: Any, ws: Any) -> np.ndarray:
    import jax.numpy as jnp

    if functions.hessian is not None:
        return np.asarray(functions.hessian(jnp.asarray(theta), xs, ex, ws))
    step = 1e-4
    columns = []
    for j in range(len(theta)):
        e = np.zeros_like(theta)
        e[j] = step
        up = np.asarray(functions.value_and_grad(jnp.asarray(theta + e), xs, ex, ws)[1])
        down = np.asarray(functions.value_and_grad(jnp.asarray(theta - e), xs, ex, ws)[1])
        columns.append((up - down) / (2 * step))
    h = np.column_stack(columns)
    return (h + h.T) / 2


def _inverse(hessian: np.ndarray) -> np.ndarray | None:
    if not np.all(np.isfinite(hessian)):
        return None
    eigenvalues = np.linalg.eigvalsh(hessian)
    if eigenvalues.min() <= 1e-12 * max(1.0, abs(eigenvalues.max())):
        return None
    return np.linalg.inv(hessian)


def _log_estimate(log_value: float, se: float | None) -> Estimate:
    value = math.exp(log_value)
    if se is None or not math.isfinite(se) or Z95 * se > 30:  # no information worth an interval
        return Estimate(value)
    return Estimate(value, math.exp(log_value - Z95 * se), math.exp(log_value + Z95 * se))


def _constant_fit(data: Durations) -> FamilyFit:
    value = float(np.median(data.values[~data.censored]))
    return FamilyFit("constant", {"value": Estimate(value, value, value)}, Estimate(value, value, value),
                     loglik=math.nan, k=0, n=data.n, ks=0.0)  # fmt: skip


def is_constant(data: Durations, tolerance: float = 1e-9) -> bool:
    """True when every uncensored duration is the same (to ``tolerance``, relative) and no censored one is longer."""
    data = data.usable()
    exact = data.values[~data.censored]
    if len(exact) == 0:
        return False
    low, high = float(exact.min()), float(exact.max())
    censored_ok = not data.censored.any() or float(data.values[data.censored].max()) <= high * (1 + tolerance)
    return high - low <= tolerance * high and censored_ok


def fit_best(
    data: Durations, families: Sequence[str] = FAMILIES, prefer: str | None = None
) -> tuple[FamilyFit, dict[str, FamilyFit]]:
    """The family chosen by AICc among ``families`` (constant when all durations are equal).

    Families within ``AICC_TIE`` of the lowest AICc fit the data about equally well; among them the
    one with fewer parameters wins, then ``prefer`` (the spec's current family), then the lowest AICc.
    """
    if is_constant(data):
        fit = _constant_fit(data.usable())
        return fit, {"constant": fit}
    tried = {}
    for family in families:
        if family == "constant":
            continue
        fit = fit_family(data, family)
        if math.isfinite(fit.loglik):
            tried[family] = fit
    if not tried:
        raise ValueError("no family could be fitted")
    lowest = min(f.aicc for f in tried.values())
    close = [f for f in tried.values() if f.aicc <= lowest + AICC_TIE]
    best = min(close, key=lambda f: (f.k, f.family != prefer, f.aicc))
    return best, tried


# -- goodness of fit ------------------------------------------------------------------------------


def scipy_distribution(family: str, params: dict[str, float]) -> Any:
    """The frozen ``scipy.stats`` distribution of a family with spec parameters (hours)."""
    if family == "exponential":
        return stats.expon(scale=params["mean"])
    if family == "gamma":
        mean, sd = params["mean"], params["sd"]
        return stats.gamma((mean / sd) ** 2, scale=sd * sd / mean)
    if family == "lognormal":
        mean, sd = params["mean"], params["sd"]
        sigma2 = math.log1p((sd / mean) ** 2)
        return stats.lognorm(math.sqrt(sigma2), scale=math.exp(math.log(mean) - sigma2 / 2))
    if family == "weibull":
        return stats.weibull_min(params["shape"], scale=params["scale"])
    if family == "normal":
        mean, sd = params["mean"], params["sd"]
        return stats.truncnorm(-mean / sd, math.inf, loc=mean, scale=sd)
    raise ValueError(f"no scipy distribution for {family!r}")


def kaplan_meier(data: Durations) -> tuple[np.ndarray, np.ndarray]:
    """Distinct event times and the Kaplan-Meier estimate of F (= 1 - S) just after each."""
    order = np.lexsort((data.censored, data.values))  # at equal times, events before censorings
    times, censored = data.values[order], data.censored[order]
    at_risk = len(times) - np.arange(len(times))
    factors = np.where(censored, 1.0, 1.0 - 1.0 / at_risk)
    survival = np.cumprod(factors)
    events = ~censored
    event_times = times[events]
    last = np.r_[event_times[1:] != event_times[:-1], True]  # the survival after the last tie
    return event_times[last], 1.0 - survival[events][last]


def restricted_mean(data: Durations) -> Estimate:
    """The mean duration without a family: the area under the Kaplan-Meier survival curve up to the longest
    observation, with its 95% interval (Greenwood-type variance, Klein & Moeschberger 4.5). Without
    censoring it is the sample mean; it is unbiased whatever the distribution, so it checks the families'
    means (a family that does not fit the data can put its mean outside). Where the longest observation is
    censored the curve stops above 0 and the interval has no upper end (``high`` None)."""
    order = np.lexsort((data.censored, data.values))
    times, censored = data.values[order], data.censored[order]
    n = len(times)
    if n == 0:
        raise ValueError("no durations")
    events = ~censored
    at_risk = n - np.arange(n)
    survival = np.cumprod(np.where(censored, 1.0, 1.0 - 1.0 / at_risk))
    before = np.r_[1.0, survival[:-1]]
    edges = np.r_[0.0, times]
    mean = float(np.sum(before * np.diff(edges)))
    if not events.any() or n < 2:
        return Estimate(mean)
    # area after each event time under S, and the variance terms d / (n (n - d)) of events with n > d
    area_after = mean - np.cumsum(before * np.diff(edges))
    terms = np.where(events & (at_risk > 1), area_after**2 / (at_risk * np.maximum(at_risk - 1, 1)), 0.0)
    se = math.sqrt(float(terms.sum()) * n / (n - 1))
    if se == 0:
        return Estimate(mean, mean, mean)
    half = t_quantile(0.975, n - 1) * se
    if censored[-1]:  # the longest is still running: the mean is at least this, how much more the data cannot say
        return Estimate(mean, max(mean - half, 0.0), None)
    return Estimate(mean, max(mean - half, 0.0), mean + half)


def ks_distance(data: Durations, family: str, params: dict[str, float]) -> float:
    """sup |F_KM - F_fitted| over the range of the data (both sides of each jump of F_KM)."""
    times, cdf_km = kaplan_meier(data)
    if len(times) == 0:
        return math.nan
    fitted = scipy_distribution(family, params).cdf(times)
    before = np.r_[0.0, cdf_km[:-1]]
    return float(max(np.abs(cdf_km - fitted).max(), np.abs(before - fitted).max()))


def _with_ks(fit: FamilyFit, data: Durations) -> FamilyFit:
    values = {name: e.value for name, e in fit.params.items()}
    from dataclasses import replace

    return replace(fit, ks=ks_distance(data, fit.family, values))
