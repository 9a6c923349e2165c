"""From one target's observations to its new value in the spec, or the reason it keeps the old one.

    >>> result = estimate(target, Settings(time_unit="h", min_observations=10, provenance="2025-06-02, data 0-4368 h"))
    >>> result.status, result.new, result.estimates["mean"]

Durations: the family with the lowest AICc among the candidates (the constant when every duration
is the same), fitted by maximum likelihood with censoring. Rates: the gamma factor of the
processing time over its nameplate time after start-up, whose mean gives the speed loss and whose
coefficient of variation is ``cv``. Yields, reject and OOS probabilities: proportions with their
intervals. New durations are written in the unit the spec used for the value (4 significant digits).

Only what the data contradict changes: a value is kept ("consistent") when it lies in the estimate's
95% interval (a duration: its mean lies in the interval of the data's mean, ``restricted_mean``, and
its whole distribution passes a 5% Kolmogorov-Smirnov test against the data; a rate: both speed loss
and variation). A probability estimated from no events at all (0 rejects in 115 batches) is written
as the Jeffreys estimate (k + 1/2) / (n + 1), never 0. A family whose mean lies outside the data's
mean interval (a family that cannot take the data's shape, such as a triangular distribution) gives
way to the best-fitting family whose mean agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from twin.calibrate.fit import (
    AICC_TIE,
    FAMILIES,
    PARAMETERS,
    Z95,
    Durations,
    Estimate,
    FamilyFit,
    fit_best,
    kaplan_meier,
    restricted_mean,
)
from twin.calibrate.observations import QualityCounts
from twin.calibrate.proportions import batch_yield, wilson
from twin.calibrate.report import CHANGED, KEPT, ParameterResult
from twin.calibrate.targets import Target
from twin.durations import HOURS_PER_UNIT, format_hours, parse_duration
from twin.spec.distributions import parse_distribution

DURATION_KINDS = frozenset(
    {"processing", "time_to_failure", "repair", "changeover", "clean", "major_clean", "line_clearance",
     "hold_investigation", "qc_test", "incubation", "qc_investigation"}
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    time_unit: str = "h"
    min_observations: int = 10
    families: tuple[str, ...] = FAMILIES
    keep_families: bool = False  # fit each value in the family the spec has (when it is one of FAMILIES)
    provenance: str = ""  # when and on which data, for the comments


def estimate(target: Target, settings: Settings) -> ParameterResult:
    """The calibration of one target."""
    base = ParameterResult(
        path=target.dotted, label=target.label, kind=target.kind, station=target.station,
        status=KEPT, reason="", old=target.old, new=None,
    )  # fmt: skip
    if target.data is None:
        return _kept(base, "unusable" if target.note else "no_data", target.note or "no data")
    if target.kind in DURATION_KINDS:
        return _duration(target, base, settings)
    if target.kind == "rate":
        return _rate(target, base, settings)
    return _proportion(target, base, settings)


def _kept(result: ParameterResult, code: str, reason: str) -> ParameterResult:
    return replace(result, status=KEPT, code=code, reason=reason)


# -- durations ------------------------------------------------------------------------------------


def _too_few(data: Durations, settings: Settings) -> str | None:
    if data.n == 0:
        return "no observations in the data"
    if data.n_exact < settings.min_observations:
        censored = f" (and {data.n_censored} censored)" if data.n_censored else ""
        return (
            f"{data.n_exact} uncensored observations{censored}, fewer than the {settings.min_observations} "
            "needed (--min-observations)"
        )
    return None


def _old_family(old: Any) -> str | None:
    if old is None:
        return None
    return old.get("dist") if isinstance(old, dict) else "constant"


def _candidates(target: Target, settings: Settings) -> tuple[str, ...]:
    old_family = _old_family(target.old)
    if settings.keep_families and old_family in settings.families:
        return (old_family,)
    return settings.families


def _how(best: FamilyFit, tried: dict[str, FamilyFit]) -> str:
    if best.family == "constant":
        return f"all {best.n} durations are equal"
    if len(tried) == 1:
        return f"{best.family} (the only family tried)"
    how = f"{best.family} by AICc of {len(tried)} families"
    lowest = min(tried.values(), key=lambda f: f.aicc)
    if lowest.family != best.family:
        why = "fewer parameters" if best.k < lowest.k else "the spec's family"
        how += f" (within {AICC_TIE:g} of {lowest.family}'s; {why})"
    return how


def _duration(target: Target, base: ParameterResult, settings: Settings) -> ParameterResult:
    assert isinstance(target.data, Durations)
    data = target.data.usable()
    old_mean = _old_mean(target.old, settings.time_unit)
    base = replace(base, n=data.n, censored=data.n_censored, old_mean_hours=old_mean,
                   method="maximum likelihood, right-censored")  # fmt: skip
    reason = _too_few(data, settings)
    if reason:
        return _kept(base, "no_data" if data.n == 0 else "too_few", reason)
    try:
        best, tried = fit_best(data, _candidates(target, settings), prefer=_old_family(target.old))
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        return _kept(base, "failed", f"the fit failed ({err})")
    if not best.converged:
        return _kept(replace(base, family=best.family), "failed", f"the {best.family} fit did not converge")
    data_mean = restricted_mean(data) if best.family != "constant" else best.mean
    how = _how(best, tried)
    if not _inside(data_mean, best.mean.value):
        agree = [f for f in tried.values() if f.converged and _inside(data_mean, f.mean.value)]
        if agree:
            chosen = min(agree, key=lambda f: f.aicc)
            how = (
                f"{chosen.family}: the best fit by AICc ({best.family}) puts the mean at {describe(best.mean.value)}, "
                f"outside the data's mean interval [{describe(data_mean.low)}, {describe(data_mean.high)}]"
            )
            best = chosen
    unit = _unit_of(target.old)
    new = _distribution_data(best, unit, settings.time_unit)
    result = replace(
        base,
        family=best.family,
        estimates=best.params,
        mean_hours=best.mean,
        aicc={name: fit.aicc for name, fit in tried.items()},
        ks=best.ks,
        ks_reference=best.ks_reference if best.family != "constant" else None,
        old_inside=_inside(data_mean, old_mean),
    )
    if _same(new, target.old, settings.time_unit):
        return _kept(result, "same", f"the estimate equals the current value ({how})")
    agrees = _spec_agrees(data, target.old, data_mean, settings.time_unit)
    if agrees:
        return _kept(result, "consistent", agrees)
    ci = ", ".join(
        f"{name} [{_show(e.low, name, unit, settings.time_unit)}, {_show(e.high, name, unit, settings.time_unit)}]"
        for name, e in best.params.items()
        if e.low is not None and best.family != "constant"
    )
    comment = f"calibrated {settings.provenance}: {how}, n={data.n} ({data.n_censored} censored)"
    comment += f"; 95% CI {ci}" if ci else ""
    assignments = {target.dotted: new}
    return replace(result, status=CHANGED, code=CHANGED, reason=how, new=new, assignments=assignments, comment=comment)


def _distribution_data(fit: FamilyFit, unit: str | None, time_unit: str) -> Any:
    if fit.family == "constant":
        return duration_value(fit.params["value"].value, unit, time_unit)
    data: dict[str, Any] = {"dist": fit.family}
    for name in PARAMETERS[fit.family]:
        value = fit.params[name].value
        data[name] = significant(value) if name == "shape" else duration_value(value, unit, time_unit)
    return data


def _old_mean(old: Any, time_unit: str) -> float | None:
    if old is None:
        return None
    try:
        return parse_distribution(old, time_unit).mean_hours(time_unit)
    except (ValueError, TypeError):
        return None


def _inside(estimate: Estimate | None, value: float | None) -> bool | None:
    """``value`` lies in the estimate's interval (one without an upper end reaches to infinity); None: no interval."""
    if estimate is None or value is None or estimate.low is None:
        return None
    return estimate.low <= value <= (math.inf if estimate.high is None else estimate.high)


KS_DRAWS = 100_000  # draws that stand for the spec's distribution function in its KS test


def _spec_agrees(data: Durations, old: Any, data_mean: Estimate, time_unit: str) -> str:
    """Why the spec's distribution stands (its mean in the data's interval, its KS distance below the 5% critical
    value for a distribution known in advance), or "" where the data contradict it."""
    if old is None or not _inside(data_mean, _old_mean(old, time_unit)):
        return ""
    try:
        sampler = parse_distribution(old, time_unit).sampler(time_unit)
    except (ValueError, TypeError):
        return ""
    draws = np.sort(sampler(np.random.default_rng(0), KS_DRAWS))
    times, cdf_km = kaplan_meier(data)
    if not len(times):
        return ""
    cdf = np.searchsorted(draws, times, side="right") / len(draws)
    before = np.r_[0.0, cdf_km[:-1]]
    distance = float(max(np.abs(cdf_km - cdf).max(), np.abs(before - cdf).max()))
    critical = 1.36 / math.sqrt(data.n)
    if distance > critical:
        return ""
    return (
        f"the data agree with the current value: its mean {describe(_old_mean(old, time_unit))} lies in the data's "
        f"95% interval [{describe(data_mean.low)}, {describe(data_mean.high)}] and its distribution passes "
        f"Kolmogorov-Smirnov (distance {distance:.3f} < {critical:.3f})"
    )


def _same(new: Any, old: Any, time_unit: str) -> bool:
    if old is None:
        return False
    try:
        a = parse_distribution(new, time_unit).model_dump(mode="json", exclude_none=True)
        b = parse_distribution(old, time_unit).model_dump(mode="json", exclude_none=True)
    except (ValueError, TypeError):
        return False
    return a == b


# -- rates ----------------------------------------------------------------------------------------


def _rate(target: Target, base: ParameterResult, settings: Settings) -> ParameterResult:
    assert isinstance(target.data, Durations)
    data = target.data.usable()
    old = target.old or {}
    base = replace(base, n=data.n, censored=data.n_censored, method="maximum likelihood, right-censored")
    reason = _too_few(data, settings)
    if reason:
        return _kept(base, "no_data" if data.n == 0 else "too_few", reason)
    try:
        best, _ = fit_best(data, ("gamma",))
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        return _kept(base, "failed", f"the fit failed ({err})")
    notes = []
    if best.family == "constant":
        factor = best.params["value"].value
        speed_loss, cv = Estimate(1 - 1 / factor, 1 - 1 / factor, 1 - 1 / factor), Estimate(0.0, 0.0, 0.0)
    else:
        if not best.converged:
            return _kept(base, "failed", "the gamma fit did not converge")
        mean = best.params["mean"]
        speed_loss = Estimate(1 - 1 / mean.value, *(None if v is None else 1 - 1 / v for v in (mean.low, mean.high)))
        cv = _ratio_estimate(best)
    new_loss, new_cv = significant(speed_loss.value), significant(cv.value)
    if new_loss < 0:
        notes.append(f"faster than the nameplate rate (speed loss {new_loss:.3g}): speed_loss set to 0")
        new_loss = 0.0
    if new_cv > 2:
        notes.append(f"variation {new_cv:.3g} above the spec's limit: cv set to 2")
        new_cv = 2.0
    assignments: dict[str, Any] = {}
    if new_loss != old.get("speed_loss", 0.0):
        assignments[f"{target.dotted}.speed_loss"] = new_loss
    if new_cv != old.get("cv", 0.0):
        assignments[f"{target.dotted}.cv"] = new_cv
    how = "gamma factor on the nameplate time after start-up (start-up and nameplate rate kept)"
    result = replace(
        base,
        family="gamma" if best.family != "constant" else "constant",
        estimates={"speed_loss": speed_loss, "cv": cv},
        ks=best.ks,
        ks_reference=best.ks_reference if best.family != "constant" else None,
        old_inside=_inside(speed_loss, old.get("speed_loss", 0.0)),
        new={**old, "speed_loss": new_loss, "cv": new_cv},
        reason="; ".join([how, *notes]),
    )
    if not assignments:
        return _kept(replace(result, new=None), "same", f"the estimate equals the current value ({how})")
    if _inside(speed_loss, old.get("speed_loss", 0.0)) and _inside(cv, old.get("cv", 0.0)):
        return _kept(
            replace(result, new=None),
            "consistent",
            "the data agree with the current value: speed_loss and cv lie in their 95% intervals",
        )
    ci = ", ".join(f"{k} [{_num(e.low)}, {_num(e.high)}]" for k, e in result.estimates.items() if e.low is not None)
    comment = f"calibrated {settings.provenance}: speed_loss and cv from a gamma rate factor, n={data.n} "
    comment += f"({data.n_censored} censored); 95% CI {ci}"
    return replace(result, status=CHANGED, code=CHANGED, assignments=assignments, comment=comment)


def _ratio_estimate(fit: FamilyFit) -> Estimate:
    """cv = sd / mean with its delta-method interval on the log scale."""
    cv = fit.params["sd"].value / fit.params["mean"].value
    if fit.covariance is None:
        return Estimate(cv)
    gradient = np.array([-1.0, 1.0])
    se = math.sqrt(float(gradient @ fit.covariance @ gradient))
    return Estimate(cv, cv * math.exp(-Z95 * se), cv * math.exp(Z95 * se))


# -- proportions ----------------------------------------------------------------------------------


def _proportion(target: Target, base: ParameterResult, settings: Settings) -> ParameterResult:
    old = target.old
    default = 1.0 if target.kind == "yield" else 0.0
    current = default if old is None else float(old)
    if target.kind == "yield":
        assert isinstance(target.data, QualityCounts)
        counts = target.data
        n = counts.batches
        base = replace(base, n=n, method="ratio of good to processed units over batches, t interval")
        if n < settings.min_observations:
            return _kept(base, "no_data" if n == 0 else "too_few", _few_batches(n, settings))
        value = batch_yield(counts.quantities, counts.scrapped)
        if value.value <= 0:
            return _kept(base, "unusable", "every unit was lost: a yield of 0 cannot be modelled")
    else:
        assert isinstance(target.data, tuple)
        k, n = target.data
        what = "rejected batches per batch processed" if target.kind == "reject_probability" else "OOS per result"
        base = replace(base, n=n, method=f"{what}, Wilson interval")
        if n < settings.min_observations:
            return _kept(base, "no_data" if n == 0 else "too_few", _few_batches(n, settings))
        value = wilson(k, n)
        if value.value >= 1:
            return _kept(base, "unusable", "every batch was rejected: a probability of 1 cannot be modelled")
        if k == 0:  # no event seen: not a probability of 0, the Jeffreys estimate
            value = Estimate((k + 0.5) / (n + 1), value.low, value.high)
            base = replace(base, method=f"{base.method}; none seen: Jeffreys estimate (k + 1/2) / (n + 1)")
    name = target.path[-1]
    new = significant(value.value)
    result = replace(base, estimates={name: value}, old_inside=_inside(value, current))
    if new == current:
        return _kept(result, "same", "the estimate equals the current value")
    if result.old_inside:
        return _kept(
            result,
            "consistent",
            f"the data agree with the current value: {current:g} lies in the 95% interval "
            f"[{_num(value.low)}, {_num(value.high)}] ({_num(value.value)} estimated)",
        )
    ci = f"[{_num(value.low)}, {_num(value.high)}]" if value.low is not None else "(no interval)"
    comment = f"calibrated {settings.provenance}: {new:g} of {n} {'batches' if n != 1 else 'batch'}; 95% CI {ci}"
    return replace(result, status=CHANGED, code=CHANGED, reason=base.method, new=new, assignments={target.dotted: new},
                   comment=comment)  # fmt: skip


def _few_batches(n: int, settings: Settings) -> str:
    if n == 0:
        return "no batches in the data"
    return f"{n} batches, fewer than the {settings.min_observations} needed (--min-observations)"


# -- numbers --------------------------------------------------------------------------------------


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(np.format_float_positional(value, precision=digits, unique=False, fractional=False, trim="-"))


def _num(value: float | None) -> str:
    return "—" if value is None else f"{significant(value):g}"


def duration_value(hours: float, unit: str | None, time_unit: str) -> float | str:
    """A duration as the spec writes it: a bare number in ``time_unit`` (unit None), else ``"<number> <unit>"``."""
    magnitude = significant(hours / HOURS_PER_UNIT[unit or time_unit])
    if unit is None:
        return magnitude
    return f"{np.format_float_positional(magnitude, trim='-')} {unit}"


def _unit_of(old: Any) -> str | None:
    """The unit the spec wrote a value in (None for bare numbers)."""
    values = old.values() if isinstance(old, dict) else [old]
    for value in values:
        if isinstance(value, str):
            try:
                _, unit = parse_duration(value)
            except ValueError:
                continue
            if unit is not None:
                return unit
    return None


def _show(hours: float | None, name: str, unit: str | None, time_unit: str) -> str:
    if hours is None:
        return "—"
    if name == "shape":
        return f"{significant(hours, 3):g}"
    value = duration_value(hours, unit, time_unit)
    return value if isinstance(value, str) else f"{value:g} {time_unit}"


def describe(hours: float | None) -> str:
    """A short human duration for tables."""
    return "—" if hours is None else format_hours(hours)
