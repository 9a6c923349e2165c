"""Running KPI accumulators (twin.kpis.accumulate) against compute_kpis of the whole log: at every increment of
random engine runs and plant feeds, for the warm-up's window and for windows opened along the way
(compute_kpis of the log clipped to the window)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_kpi_invariants import random_specs, valid
from twin.engine import simulate
from twin.eventlog import EventLog
from twin.kpis.accumulate import KpiAccumulator
from twin.kpis.report import clip_log, compute_kpis


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Two summaries equal: the same keys, numbers to 1e-9 (relative or absolute), None where None."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        assert (math.isnan(a) and math.isnan(b)) or b == pytest.approx(a, rel=1e-9, abs=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def feed_until(acc: KpiAccumulator, rows: Any, fed: int, cut: float) -> int:
    """Feed the rows after the first ``fed`` up to time ``cut``; the new count fed."""
    upto = int(np.searchsorted(rows["time"].to_numpy(), cut, side="right"))
    acc.feed(rows.iloc[fed:upto])
    return upto


def check_increments(log: EventLog, cuts: list[float], windows: list[int]) -> None:
    """Cut one replication's log at ``cuts``; after each, the accumulator's summaries equal compute_kpis's."""
    rows = log.table[log.table["event"] != "end"].reset_index(drop=True)
    acc = KpiAccumulator(log.meta)
    fed, opened = 0, []
    for i, cut in enumerate(cuts):
        fed = feed_until(acc, rows, fed, cut)
        assert_same(compute_kpis(clip_log(log, log.meta.warmup, cut)).summary, acc.summary(cut), f"cut {cut}")
        for since in opened:
            expected = compute_kpis(clip_log(log, since, cut)).summary
            assert_same(expected, acc.summary(cut, since=since), f"window ({since}, {cut}]")
        if i in windows:
            acc.add_window(cut)
            opened.append(cut)


@st.composite
def cut_points(draw: Any, horizon: float) -> list[float]:
    n = draw(st.integers(1, 8))
    cuts = sorted({round(draw(st.floats(0.0, horizon)), 3) for _ in range(n)} | {horizon})
    return cuts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=random_specs(), seed=st.integers(0, 2**16), draw=st.data())
def test_accumulators_equal_compute_kpis_at_every_increment_of_random_runs(
    data: dict[str, Any], seed: int, draw: st.DataObject
) -> None:
    spec = valid(data)
    log = simulate(spec, seed=seed)
    cuts = draw.draw(cut_points(spec.horizon_hours))
    windows = draw.draw(st.lists(st.integers(0, len(cuts) - 1), max_size=3))
    check_increments(log, cuts, windows)
