"""The shadow twin over a long run: it holds only the rows its readers have not taken (bounded however long it
runs), its readers' KPIs equal compute_kpis of the whole log, and ``replay`` makes the same log again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kpi_accumulators import assert_same
from test_kpi_invariants import random_specs, valid

from connectors.opcua.running import RunningKpis
from connectors.opcua.shadow import Shadow
from twin.clock import RunClock
from twin.kpis.report import clip_log, compute_kpis
from twin.models import load_spec

CLOCK = RunClock(datetime(2027, 1, 4, 6, 0))


def follow(shadow: Shadow, ticks: list[float]) -> tuple[RunningKpis, list[tuple[int, int, int]], pd.DataFrame]:
    """Advance the shadow tick by tick with two readers (the KPIs and a scene that keeps every row it took);
    the KPIs, after each tick the rows kept for readers, the rows in the recorder and the index there of the
    oldest row it holds back (ahead of its clock), and the scene's rows."""
    kpis = RunningKpis(shadow.meta(0.0), CLOCK)
    retained, scene = [], []
    for hours in ticks:
        kpis.prepare(hours)
        shadow.advance(hours)
        rows = shadow.take("kpis")
        # in time order across ticks: a unit on a wall-clock failure clock records the failures of a wait when
        # the wait ends, so rows after one due are held back until then (``Replication.settled``)
        assert not len(rows) or rows["time"].min() >= kpis.acc.now
        kpis.feed(rows)
        scene.append(shadow.take("scene"))
        kept, recorded = shadow.row_count - shadow.first, len(shadow.rep.rec.times)
        assert shadow.retained() == kept + recorded
        assert kept == len(rows)  # the rows of this tick, no older ones
        retained.append((kept, recorded, min(shadow.rep._held, default=recorded)))
    return kpis, retained, pd.concat(scene, ignore_index=True)


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) == len(b)
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=column)
        else:
            assert list(x.astype(str)) == list(y.astype(str)), column


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=random_specs(), seed=st.integers(0, 2**16), steps=st.integers(3, 40))
def test_a_shadow_of_a_random_line_keeps_only_untaken_rows_and_its_kpis_equal_a_full_run(
    data: dict[str, Any], seed: int, steps: int
) -> None:
    spec = valid(data)
    horizon = spec.horizon_hours
    ticks = [horizon * (i + 1) / steps for i in range(steps)]
    shadow = Shadow(spec, seed, 10 * horizon)
    kpis, retained, scene = follow(shadow, ticks)
    whole = shadow.replay(horizon)
    rows = whole.table[whole.table["event"] != "end"].reset_index(drop=True)
    same_rows(rows, scene)  # a fresh replication makes the rows the shadow handed out, in the same order
    # held after a tick: that tick's rows (``follow``) and the recorder's rows from the oldest one it holds back
    # (a failure decided ahead of the clock) on, nothing older
    assert all(oldest_held == 0 for _, _, oldest_held in retained), retained
    assert_same(compute_kpis(whole).summary, kpis.summary(horizon))


@pytest.mark.parametrize("seed", [1, 7])
def test_a_months_long_shadow_holds_a_flat_number_of_rows_and_its_kpis_equal_an_offline_run(seed: int) -> None:
    spec = load_spec("osd-tablet")
    hours = 24 * 120.0  # four months, a tick every 6 plant hours
    ticks = list(np.arange(6.0, hours + 1e-9, 6.0))
    shadow = Shadow(spec, seed, 24 * 365 * 10)
    kpis, retained, scene = follow(shadow, ticks)
    whole = shadow.replay(hours)
    assert len(whole.table) > 10_000  # the log the shadow no longer holds
    held = [kept + recorded for kept, recorded, _ in retained]
    first, last = max(held[: len(held) // 4]), max(held[-len(held) // 4 :])
    assert last <= max(2 * first, 60), (first, last)  # the last month holds no more than the first
    assert max(held) < len(whole.table) / 50
    assert shadow.first > 0.95 * len(scene)  # the rows taken by every reader are gone
    assert_same(compute_kpis(whole).summary, kpis.summary(hours))
    since = kpis.window_starts(hours)["day"]  # and the last day's window, from the same accumulators
    expected = compute_kpis(clip_log(whole, since, hours)).summary
    assert_same(expected, kpis.acc.summary(hours, since=since))


def test_a_reader_that_begins_late_gets_the_rows_still_kept_and_dropped_rows_are_refused() -> None:
    spec = load_spec("osd-tablet")
    shadow = Shadow(spec, 1, 24 * 365 * 10)
    shadow.advance(48.0)
    early = shadow.take("kpis")
    shadow.advance(96.0)  # drops the rows of (0, 48] that every reader (only "kpis") has taken
    assert shadow.first == len(early) > 0
    late = shadow.take("scene")  # begins now: the rows of (48, 96], still kept for "kpis"
    assert len(late) and late["time"].min() >= 48.0 - 1e-9
    same_rows(late, shadow.take("kpis"))
    with pytest.raises(ValueError, match="replay"):
        shadow.rows_since(0)
    shadow.release("scene")
    shadow.advance(144.0)
    assert shadow.readers == {"kpis": shadow.first}


def test_failures_found_at_the_end_of_a_wait_are_handed_out_in_time_order() -> None:
    """A unit on a wall-clock failure clock that waits a long time (a slow first station) records the failures
    due during its wait when the wait ends, back in time: the shadow holds rows after the first one due until
    then, so the rows it hands out tick by tick are in time order and equal a whole run's."""
    spec = load_spec("osd-tablet")
    data = spec.model_dump(mode="json", exclude_none=True)
    for station in data["stations"]:
        if "failures" in station:
            station["failures"]["basis"] = "calendar"
    spec = type(spec).from_dict(data)
    horizon = 3 * 168.0
    shadow = Shadow(spec, 3, 10 * horizon)
    kpis, _, scene = follow(shadow, [0.37 * i for i in range(1, int(horizon / 0.37))] + [horizon])
    whole = shadow.replay(horizon)
    rows = whole.table[whole.table["event"] != "end"].reset_index(drop=True)
    same_rows(rows, scene)
    assert (rows["event"].astype(str) == "fail").any()
    assert_same(compute_kpis(whole).summary, kpis.summary(horizon))
