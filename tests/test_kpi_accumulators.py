"""Running KPI accumulators (twin.kpis.accumulate) against compute_kpis of the whole log: at every increment of
random engine runs and plant feeds, for the warm-up's window and for windows opened along the way
(compute_kpis of the log clipped to the window)."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kpi_invariants import random_specs, valid
from test_opcua_sync import plant  # noqa: F401  (a fixture: the line, its map and certificates)
from test_plant_twin_observer import FEED_SETTINGS, SPEC, T0, TAGS, H, _append, feeds

from connectors.opcua.historian import Historian
from connectors.opcua.observer import PlantView
from connectors.opcua.plantlog import plant_event_log
from connectors.opcua.running import WINDOWS, window_figures
from twin.engine import simulate
from twin.eventlog import EventLog
from twin.kpis.accumulate import KpiAccumulator, window_from_totals
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


# ---------------------------------------------------------------------------------------------- the plant's view


def _view(folder: Path, shadow: bool = False, since: Any = None) -> PlantView:
    options = SimpleNamespace(warmup=0.0, shadow=shadow, until=None, seed=3, forecast_every=None, kpis_since=since)
    return PlantView(SPEC, TAGS, T0, options, str(folder / "h.db"))


def assert_windows(snap: dict[str, Any], log: EventLog, hours: float) -> None:
    """Each window of a snapshot: the figures of compute_kpis over the log clipped to it."""
    assert set(snap["windows"]) >= set(WINDOWS)
    for name, window in snap["windows"].items():
        since = window["since"]
        assert since <= hours
        if hours > since:
            expected = window_figures(compute_kpis(clip_log(log, since, hours)).per_replication.reset_index().iloc[0])
            assert_same(expected, window["plant"], f"{name} window since {since}")


def assert_marks(marks: dict[float, Any], now: dict[str, Any], log: EventLog, hours: float, turn: int) -> None:
    """The KPIs since a whole hour from the hourly totals kept so far (the latest of each hour, as the historian
    keeps them) and those of now: those of compute_kpis over the log clipped there (the exact ones). The
    first, middle or last hour kept, by ``turn`` (called at every tick, each tick checks one)."""
    kept = sorted(h for h in marks if h < hours)
    for since in [kept[0], kept[len(kept) // 2], kept[-1]][turn % 3 : turn % 3 + 1] if kept else ():
        got = window_from_totals(marks[since], now)
        row = compute_kpis(clip_log(log, since, hours)).per_replication.iloc[0]
        for key in ("throughput_per_hour", "units_per_hour", "wip", "lead_time_hours"):
            expected = float(row[key])
            assert (got[key] is None) if math.isnan(expected) else got[key] == pytest.approx(expected, abs=1e-9), (
                key, since, hours, got[key], expected
            )  # fmt: skip


@pytest.mark.slow
@FEED_SETTINGS
@given(feeds())
def test_the_views_running_kpis_equal_compute_kpis_of_a_full_decode_at_every_tick(feed):
    # random feeds with late samples (the decoder rolls back: the accumulators are fed again), restarts from the
    # historian's checkpoint, batches whose product comes later; the view's summary and windows at every tick
    arrived, chunks, restarts, _late = feed
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        h = Historian(folder / "h.db")
        ids = h.register_tags(TAGS.all_tags())
        view = _view(folder)
        position, tick, marks = 0, 0, {}
        while position < len(arrived):
            size = chunks[tick % len(chunks)]
            _append(h, ids, arrived[position : position + size])
            position += size
            if tick in restarts and view.observer.decoder is not None:
                h.save_checkpoint(view.observer.key, *view.observer.checkpoint())
                view.close()
                view = _view(folder)
            end_us = max(t for _tag, t, _v, _s in arrived[:position])
            snap = view.tick(end_us, {})
            log = plant_event_log(SPEC, TAGS, h.query(raw_times=True), T0, end_us).log
            hours = log.meta.horizon
            assert snap["plant_hours"] == hours
            marks.update(snap["marks"])
            if hours > 0:
                assert_same(compute_kpis(log).summary, snap["plant"], f"tick {tick}")
                assert_windows(snap, log, hours)
                assert_marks(marks, snap["totals"], log, hours, turn=tick)
            tick += 1
        view.close()
        h.close()


def test_a_restart_from_a_checkpoint_gives_the_same_accumulators(tmp_path):
    # a view that restarts from the historian's checkpoint goes on with the same KPIs, windows included, as one
    # that never stopped: both against compute_kpis of the whole decode
    h = Historian(tmp_path / "h.db")
    ids = h.register_tags(TAGS.all_tags())
    rng = np.random.default_rng(7)
    rows, done, good, t = [], 0, 0, T0
    for k in range(400):
        t += int(rng.integers(H // 10, H))
        lot = f"L{k // 3}"
        rows += [("LOT", t, lot, 0), ("PROD", t, "AB"[k % 2], 0), ("ST", t, "RUN", 0)]
        t += int(rng.integers(H // 4, 2 * H))
        good = (good + 90) % 1000
        done = (done + 1) % 4
        rows += [("GOOD", t, good, 0), ("DONE", t, done, 0), ("ST", t, str(rng.choice(["WAIT", "CIP"])), 0)]
    half = len(rows) // 2
    _append(h, ids, rows[:half])
    since = datetime.fromtimestamp(T0 / 1e6, tz=UTC).replace(tzinfo=None) + timedelta(hours=100)  # --kpis-since
    steady = _view(tmp_path, since=since)
    steady.tick(rows[half - 1][1], {})
    h.save_checkpoint(steady.observer.key, *steady.observer.checkpoint())
    _append(h, ids, rows[half:])
    restarted = _view(tmp_path, since=since)
    end_us = rows[-1][1]
    a, b = steady.tick(end_us, {}), restarted.tick(end_us, {})
    assert restarted.observer.resumed_from == rows[half - 1][1]
    assert_same(a["plant"], b["plant"])
    assert_same(a["windows"], b["windows"])
    log = plant_event_log(SPEC, TAGS, h.query(raw_times=True), T0, end_us).log
    assert_same(compute_kpis(log).summary, b["plant"])
    assert_windows(b, log, log.meta.horizon)
    assert b["windows"]["day"]["since"] == math.ceil(log.meta.horizon - 24)  # the first whole hour of the last day
    assert b["windows"]["since"]["since"] == 100.0
    steady.close()
    restarted.close()
    h.close()


def test_a_real_sync_stores_windowed_kpis_equal_to_an_offline_computation(plant: Path):  # noqa: F811
    # `twin sync --shadow` against the emulator: the stored view's "this shift" and "last 24 h" figures (plant and
    # twin) equal compute_kpis of the plant's log and of the twin's, clipped to each window; --json reports them
    import json

    import yaml
    from opcua_helpers import LINE_YAML, call, endpoint
    from test_opcua_sync import emulator, sync

    from connectors.opcua.shadow import Shadow
    from twin.runfolder import read_run
    from twin.spec.loader import spec_from_data

    folder = plant
    ep = endpoint()
    with emulator(folder, ep, "--speed", "max", "--paused"):
        with sync(folder, ep, "--until", "150 h", "--out", "sync-run", "--shadow", "--seed", "3") as feed:
            feed.wait_for("subscribed to 35 tags")
            call(ep, "urn:twin:plc:mini", "PLC", "Start")
            assert feed.proc.wait(300) == 0, feed.log()  # a cap that only a hang reaches
        report = json.loads(feed.stdout())
    h = Historian(folder / "h.db", readonly=True)
    view = h.view()
    h.close()
    hours = view["plant_hours"]
    assert hours == pytest.approx(150.0)
    assert report["windows"] == view["windows"]
    plant_log = read_run(folder / "sync-run").log
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    twin_log = Shadow(spec, 3, max(150.0, spec.horizon_hours, 24 * 365 * 10)).replay(hours)
    assert view["windows"]["day"]["since"] == math.ceil(hours - 24)
    for name, window in view["windows"].items():
        since = window["since"]
        assert 0 < since < hours, name
        for who, log in (("plant", plant_log), ("twin", twin_log)):
            expected = window_figures(compute_kpis(clip_log(log, since, hours)).per_replication.reset_index().iloc[0])
            assert_same(expected, window[who], f"{who} {name}")
            # the window's start follows the wall clock (the emulator's plant starts now): "this shift" may have begun
            # minutes ago; a window of hours has made tablets
            assert expected["throughput_per_hour"] > 0 or hours - since < 4, (who, name, since, hours)
    assert_same(compute_kpis(plant_log).summary, report["plant"])
    # "KPIs since" any whole hour (the Live page), the plant's and the twin's: the hourly totals the sync kept
    h = Historian(folder / "h.db", readonly=True)
    try:
        for since in [float(h) for h in range(24, math.floor(hours), 7)]:
            for who, log, now in (("plant", plant_log, view["totals"]), ("twin", twin_log, view["twin_totals"])):
                mark = h.kpi_mark(since, who=who)
                assert mark is not None and mark[0] == since, (who, since, mark)
                assert_marks({since: mark[1]}, now, log, hours, turn=0)
    finally:
        h.close()


def test_shift_spans_follow_the_calendars_or_three_shifts_a_day():
    from datetime import datetime

    from twin.clock import RunClock, shift_span, shift_windows
    from twin.models import load_spec

    plain = RunClock(datetime(2027, 1, 4, 0, 0))  # a Monday; no calendars: 06-14, 14-22, 22-06
    assert shift_span(plain, 0.0) == (-2.0, "shift 22:00–06:00")
    assert shift_span(plain, 6.0) == (6.0, "shift 06:00–14:00")
    assert shift_span(plain, 13.99) == (6.0, "shift 06:00–14:00")
    assert shift_span(plain, 23.5) == (22.0, "shift 22:00–06:00")
    spec = load_spec("osd-tablet")  # a round-the-clock calendar Mon-Fri and a day shift 06-22 beside it
    clock = RunClock(datetime(2027, 1, 4, 0, 0), shift_windows(spec.calendars))
    for hours in (0.5, 6.0, 6.5, 21.9, 22.5, 100.0, 130.0, 150.0):
        start, label = shift_span(clock, hours)
        assert start <= hours and clock.shift(hours) == label
        assert clock.shift(start) == label and clock.shift(start - 1 / 3600) != label  # a change of shift there
        assert all(clock.shift(start + f * (hours - start)) == label for f in (0.25, 0.5, 0.75))


def test_only_the_forecasts_due_and_not_scored_are_read(tmp_path):
    h = Historian(tmp_path / "h.db")
    scored = h.add_forecast(8.0, 8.0, {"completed": {}})
    h.set_forecast_score(scored, {"completed": 1})
    due = h.add_forecast(16.0, 8.0, {"completed": {"p50": 2}})
    h.add_forecast(24.0, 8.0, {"completed": {}})  # its horizon ends at 32 h
    got = h.forecasts_due(30.0)
    assert got["id"].tolist() == [due] and got["predicted"].tolist() == [{"completed": {"p50": 2}}]
    assert len(h.forecasts_due(32.0)) == 2
    h.close()


def test_a_bad_kpis_since_exits_2_in_one_line(tmp_path):
    from conftest import run_cli

    done = run_cli("sync", "osd-tablet", "--endpoint", "opc.tcp://127.0.0.1:4999", "--historian",
                   str(tmp_path / "h.db"), "--kpis-since", "next tuesday", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--kpis-since 'next tuesday': not a date and time" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "h.db").exists()
