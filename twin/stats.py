"""Confidence intervals over replications (Student t).

>>> interval([1.0, 1.2, 0.9, 1.1]).as_dict()
{'mean': 1.05, 'ci95': [0.84..., 1.25...]}
>>> paired_difference(baseline=[1.0, 1.1], scenario=[1.3, 1.35])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval; ``low``/``high`` are NaN with fewer than two values."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, object]:
        """``{"mean": m, "ci95": [lo, hi]}`` with ``None`` for undefined numbers (JSON-safe)."""
        return {"mean": _json_number(self.mean), "ci95": [_json_number(self.low), _json_number(self.high)]}


def interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean and two-sided Student-t confidence interval of independent values (NaNs ignored)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sd = float(x.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def t_quantile(p: float, df: float) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf(p, df)``, to the last bit).

    From ``scipy.special.stdtrit``, the function ``scipy.stats.t.ppf`` calls: a command that imports
    scipy.stats for it pays 0.5-1.3 s, scipy.special a fifth of that."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def paired_difference(
    baseline: Sequence[float] | np.ndarray, scenario: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> Interval:
    """Interval of ``scenario - baseline`` over paired replications (common random numbers)."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(scenario, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired samples need the same number of replications")
    return interval(b - a, confidence)


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
