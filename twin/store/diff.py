"""What differs between two stored runs: their specs and settings, and their KPIs.

    >>> spec_changes(a_spec_data, b_spec_data)
    [('stations.m2.buffer', 2, 4)]
    >>> deltas = kpi_deltas(per_rep_a, per_rep_b, paired=True)
    >>> deltas["throughput_per_hour"]          # Interval of b - a (paired over common replications)

Specs are compared as flat dotted paths in ``--set`` form (list items by name), so a change reads
like the override that would make it. With the same seed, replication ``r`` of both runs used the
same random numbers (common random numbers), so deltas are paired over the common replications;
otherwise they are Welch intervals of the difference of means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from twin.kpis.line import LINE_KPIS
from twin.stats import Interval, paired_difference, t_quantile

MISSING = "(not set)"
STATION_FACTORS = ("oee", "utilization", "availability")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values; list items that have a ``name`` are keyed by it."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(data, list) and data and all(isinstance(x, Mapping) and "name" in x for x in data):
        out = {}
        for item in data:
            out.update(flatten({k: v for k, v in item.items() if k != "name"}, f"{prefix}{item['name']}."))
        return out
    return {prefix.rstrip("."): data}


def spec_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(path, value in a, value in b)`` for every path whose value differs (``MISSING`` when absent).

    A run stored before plug-in blocks moved under ``extensions`` (a top-level ``layout:``) is read in
    today's form, so the move alone is no difference.
    """
    fa, fb = (flatten(_current(spec)) for spec in (a, b))
    paths = list(dict.fromkeys([*fa, *fb]))
    return [(p, fa.get(p, MISSING), fb.get(p, MISSING)) for p in paths if fa.get(p, MISSING) != fb.get(p, MISSING)]


def _current(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    from twin.spec.extensions import lift_deprecated
    from twin.spec.model import LineSpec

    return lift_deprecated(dict(spec), LineSpec.model_fields, warn=False) if isinstance(spec, Mapping) else spec


def welch_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Interval:
    """Interval of mean(b) - mean(a) for independent samples (Welch)."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not len(a) or not len(b):
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return Interval(mean, math.nan, math.nan, min(len(a), len(b)))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(mean, mean, mean, min(len(a), len(b)))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * se
    return Interval(mean, mean - half, mean + half, min(len(a), len(b)))


def compared_metrics(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The line KPIs, then each common station's factors, present in both per-replication tables."""
    line = [k.column for k in LINE_KPIS if k.column in a.columns and k.column in b.columns]
    stations = [c[: -len(".oee")] for c in a.columns if c.endswith(".oee") and ".unit" not in c]
    factors = [f"{s}.{f}" for s in stations for f in STATION_FACTORS]
    return line + [m for m in factors if m in a.columns and m in b.columns]


def kpi_deltas(a: pd.DataFrame, b: pd.DataFrame, paired: bool) -> dict[str, Interval]:
    """Per metric, the interval of b - a from per-replication KPI tables (indexed by replication)."""
    out = {}
    common = a.index.intersection(b.index)
    for metric in compared_metrics(a, b):
        if paired and len(common):
            pa, pb = a.loc[common, metric].to_numpy(float), b.loc[common, metric].to_numpy(float)
            out[metric] = paired_difference(pa, pb)
        else:
            out[metric] = welch_difference(a[metric].to_numpy(float), b[metric].to_numpy(float))
    return out
