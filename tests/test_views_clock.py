"""Calendar time: the spec's ``start``, ``twin.clock`` and the CLI trace shown as dates."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from conftest import run_cli

from twin.clock import DATE_FORMAT, RunClock, clock_for, next_monday
from twin.errors import SpecError
from twin.models import load_spec
from twin.spec.loader import spec_from_data

SMALL = {
    "name": "small", "horizon": "100 h", "products": [{"name": "A", "batch_size": 100}],
    "release": {"mode": "plan", "plan": [{"product": "A", "batches": 4}]},
    "stations": [{"name": "s1", "process_time": "1 h"}, {"name": "s2", "process_time": "30 min"}],
}  # fmt: skip


def test_start_is_display_only_and_keeps_existing_hashes():
    spec = spec_from_data(SMALL)
    started = spec_from_data({**SMALL, "start": "2027-01-06T06:00"})
    assert spec.start is None and started.start == datetime(2027, 1, 6, 6, 0)
    assert started.spec_hash == spec.spec_hash  # what a simulation does is unchanged
    assert spec_from_data(started.to_data()) == started  # round-trips through plain data
    assert "start" not in spec.to_data()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("next tuesday", "expected a date and time such as 2027-01-04T06:00"),
        ("2027-01-04T06:00+01:00", "without a time zone"),
        (42, "expected a date and time"),
    ],
)
def test_bad_start_names_the_field(value, message):
    with pytest.raises(SpecError) as err:
        spec_from_data({**SMALL, "start": value})
    assert "start" in str(err.value) and message in str(err.value)


def test_a_start_mid_week_moves_the_shift_calendars_as_the_clock_shows_them():
    """A run that starts Monday 06:00 is 6 h into the calendars' week at time 0: its event log equals that
    of a run from Monday 00:00 whose shifts are written 6 h earlier, and the start is part of the hash."""
    staffed = {
        **SMALL, "horizon": "200 h", "release": {"mode": "saturated"},
        "calendars": {"days": {"shifts": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "06:00",
                                           "end": "22:00"}]}},
        "operators": [{"name": "team", "headcount": 1, "calendar": "days", "qualified": ["s1", "s2"]}],
        "stations": [{"name": "s1", "process_time": "1 h", "operators": {"count": 1}},
                     {"name": "s2", "process_time": "30 min", "operators": {"count": 1}}],
    }  # fmt: skip
    early = {**staffed, "calendars": {"days": {"shifts": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                                                           "start": "00:00", "end": "16:00"}]}}}  # fmt: skip
    from twin.engine import simulate

    moved = spec_from_data({**staffed, "start": "2027-01-04T06:00"})
    assert moved.week_offset_hours == 6.0
    log_moved = simulate(moved, seed=3).table
    log_early = simulate(spec_from_data({**early, "start": "2027-01-04"}), seed=3).table
    assert log_moved.equals(log_early)
    off = log_moved[log_moved["state"] == "off_shift"]["time"]
    assert len(off) and min(off) >= 16.0  # the first shift ends at 22:00, 16 h after the start
    assert moved.spec_hash != spec_from_data({**staffed, "start": "2027-01-04"}).spec_hash
    assert spec_from_data({**staffed, "start": "2027-01-11"}).spec_hash == spec_from_data(staffed).spec_hash
    clock = clock_for(moved)
    assert clock.shift(1.0) == "days 06:00–22:00" and clock.shift(17.0) == "off shift"


def test_clock_dates_and_shifts_follow_the_calendars():
    spec = spec_from_data({**load_spec("osd-tablet").to_data(), "start": "2027-01-04"})
    clock = clock_for(spec)
    assert clock.at(30.5) == datetime(2027, 1, 5, 6, 30)
    assert clock.text(30.5) == "Tue 05 Jan 06:30"
    assert clock.hours(clock.at(1234.25)) == pytest.approx(1234.25)
    for calendar in spec.calendars.values():
        for shift in calendar.shifts:
            lo, hi = shift.intervals()[0]
            inside = (lo + hi) / 2
            label = clock.shift(inside)  # the shortest shift covering the moment
            assert any(w.label == label and w.start <= inside < w.end and w.end - w.start <= hi - lo
                       for w in clock.shifts)  # fmt: skip
    assert clock.shift(30.5) == "two-shifts 06:00–22:00"  # Tuesday 06:30: the day shift, not the 24 h one
    dates = clock.dates([0.0, 24.0, float("nan")])
    assert str(dates[1])[:16] == "2027-01-05T00:00" and str(dates[2]) == "NaT"


def test_default_start_is_the_monday_after_the_run_was_made():
    assert next_monday(datetime(2026, 12, 6, 15, 20)) == datetime(2026, 12, 7)
    assert next_monday(datetime(2026, 12, 7, 0, 0)) == datetime(2026, 12, 14)  # strictly after
    clock = clock_for(spec_from_data(SMALL), "2026-12-09T10:00:00+00:00")
    assert clock.start == datetime(2026, 12, 14) and not clock.stated
    assert "no start in the spec" in clock.describe()


def test_trace_prints_calendar_dates_consistent_with_the_start(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(json.dumps({**SMALL, "start": "2027-03-03T06:00"}), encoding="utf-8")
    out = tmp_path / "run"
    assert run_cli("run", str(path), "-r", "1", "--warmup", "0", "--out", str(out)).returncode == 0
    data = json.loads(run_cli("trace", str(out), "2", "--json").stdout)
    assert data["start"] == "2027-03-03T06:00"
    hours = [r["time"] for r in data["history"]["2"] if r["event"] in ("start", "finish")]
    text = run_cli("trace", str(out), "2").stdout
    assert "t = 0 is Wed 2027-03-03 06:00 (the spec's start)" in text
    shown = re.findall(r"([A-Z][a-z]{2} \d\d [A-Z][a-z]{2} \d\d:\d\d) (?:start|finish)", text)
    start = datetime(2027, 3, 3, 6, 0)
    assert shown == [(start + timedelta(hours=h)).strftime(DATE_FORMAT) for h in hours]
    assert " h start" not in text  # no hours-since-start left for a person to read


def test_run_clock_text_of_missing_values():
    clock = RunClock(datetime(2027, 1, 4))
    assert clock.text(None) == "–" and clock.text(float("nan")) == "–"
    assert clock.shift(5.0) is None  # no calendars: no shift names


def test_twin_run_shows_throughput_in_the_lines_own_unit(tmp_path):
    """The CLI, the dashboard and the report use one rule (twin.clock.rate_unit); JSON keeps batches/h."""
    from twin.clock import rate_unit

    args = ("run", "osd-tablet", "-r", "2", "--seed", "3", "--horizon", "3 w", "--warmup", "1 w")
    summary = json.loads(run_cli(*args, "--json").stdout)
    mean = summary["throughput_per_hour"]["mean"]  # JSON keeps batches/h
    unit, scale = rate_unit(mean)
    assert unit == "batches/day"  # the tablet line makes about two batches a day
    row = next(ln for ln in run_cli(*args).stdout.splitlines() if ln.strip().startswith("Throughput"))
    assert f"{mean * scale:.4f}" in row and row.rstrip().endswith("batches/day")
