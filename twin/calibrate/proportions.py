"""Proportions with confidence intervals: reject and OOS rates (Wilson), yields (ratio over batches).

    >>> wilson(3, 400)                       # 3 rejected batches of 400
    Estimate(value=0.0075, low=0.0026, high=0.0218)
    >>> batch_yield([300000, 300000], [3000, 2900])   # units processed and scrapped, per batch

A yield is a ratio of units, but units of one batch are not independent draws (a batch is made or
lost as a whole process), so its interval treats batches as the sampled units: the ratio estimator
sum(good) / sum(processed) with the linearized (cluster) standard error and a Student t quantile.
When every batch has the same yield, the interval is that value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from twin.calibrate.fit import Z95, Estimate
from twin.stats import t_quantile


def wilson(successes: int, trials: int, z: float = Z95) -> Estimate:
    """Share ``successes / trials`` with the Wilson score interval (95% by default)."""
    if trials <= 0:
        raise ValueError("no trials")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Estimate(p, low, high)


def batch_yield(processed: Sequence[float], lost: Sequence[float]) -> Estimate:
    """Share of units that come out good, over batches (ratio estimator, t interval over batches)."""
    q = np.asarray(processed, dtype=float)
    good = q - np.asarray(lost, dtype=float)
    n = len(q)
    if n == 0 or q.sum() <= 0:
        raise ValueError("no units processed")
    ratio = float(good.sum() / q.sum())
    if n < 2:
        return Estimate(ratio)
    residuals = (good - ratio * q) / q.mean()
    se = math.sqrt(float((residuals**2).sum()) / (n * (n - 1)))
    half = t_quantile(0.975, n - 1) * se
    return Estimate(ratio, max(0.0, ratio - half), min(1.0, ratio + half))
