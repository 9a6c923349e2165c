"""KPIs since any whole hour from the running totals the sync keeps every hour (``KpiAccumulator.totals``,
``window_from_totals``) against compute_kpis of the log clipped to the window; and the Live page's free-form
window in a real browser."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kpi_invariants import random_specs, valid

from connectors.opcua.running import RunningKpis
from twin.clock import RunClock
from twin.engine import simulate
from twin.eventlog import EventLog
from twin.kpis.accumulate import window_from_totals
from twin.kpis.report import clip_log, compute_kpis
from twin.models import load_spec

CLOCK = RunClock(datetime(2027, 1, 4, 6, 0))
EXACT = ("throughput_per_hour", "units_per_hour", "wip", "lead_time_hours")


def marks_of(log: EventLog, ticks: list[float]) -> tuple[dict[float, dict[str, Any]], dict[str, Any], RunningKpis]:
    """Feed the log tick by tick as the sync does; the marks made, the totals at the last tick."""
    rows = log.table[log.table["event"] != "end"].reset_index(drop=True)
    times = rows["time"].to_numpy()
    kpis = RunningKpis(log.meta, CLOCK, marks=True)
    fed, marks = 0, {}
    for hours in ticks:
        kpis.prepare(hours)
        upto = int(np.searchsorted(times, hours, side="right"))
        kpis.feed(rows.iloc[fed:upto])
        fed = upto
        marks.update(kpis.take_marks())
    return marks, kpis.acc.totals(ticks[-1]), kpis


def check(log: EventLog, ticks: list[float], starts: list[int], oee_tol: float) -> None:
    marks, now, _ = marks_of(log, ticks)
    end = ticks[-1]
    assert sorted(marks) == [float(h) for h in range(math.ceil(log.meta.warmup), math.floor(end) + 1)]
    for start in starts:
        if not log.meta.warmup <= start < end:
            continue
        got = window_from_totals(marks[float(start)], now)
        row = compute_kpis(clip_log(log, start, end)).per_replication.iloc[0]
        for key in EXACT:
            expected = float(row[key])
            if math.isnan(expected):
                assert got[key] is None, (key, start)
            else:
                assert got[key] == pytest.approx(expected, rel=1e-9, abs=1e-9), (key, start, got[key], expected)
        if not math.isnan(float(row["oee"])) and got["oee"] is not None:
            assert got["oee"] == pytest.approx(float(row["oee"]), abs=oee_tol), (start, got["oee"], row["oee"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=random_specs(), seed=st.integers(0, 2**16), steps=st.integers(1, 12), draw=st.data())
def test_kpis_since_any_whole_hour_from_two_marks_equal_compute_kpis_of_the_clipped_log(
    data: dict[str, Any], seed: int, steps: int, draw: st.DataObject
) -> None:
    spec = valid(data)
    log = simulate(spec, seed=seed)
    horizon = log.meta.horizon
    ticks = [horizon * (i + 1) / steps for i in range(steps)]
    starts = draw.draw(st.lists(st.integers(0, max(math.floor(horizon) - 1, 0)), min_size=1, max_size=4))
    check(log, ticks, starts, oee_tol=1.0)  # the OEE is only bounded here (its edge: see window_from_totals)


def test_a_month_of_the_tablet_line_since_any_hour_and_its_oee_edge() -> None:
    spec = load_spec("osd-tablet")
    log = simulate(spec, seed=2, horizon=24 * 30.0)
    ticks = [float(h) for h in range(5, 24 * 30 + 1, 5)]  # a tick every 5 plant hours
    check(log, ticks, [0, 1, 7, 30, 100, 333, 500, 719], oee_tol=0.01)
