"""GMP batch rules: for each rule a small deterministic line whose timeline is worked out by hand."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from twin.engine import simulate
from twin.eventlog import genealogy, state_intervals
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec


def line(stations: list[dict[str, Any]], horizon: float = 100.0, batches: int | None = None, **extra: Any) -> LineSpec:
    release = {"mode": "plan", "plan": [{"product": "A", "batches": batches}]} if batches else {"mode": "plan",
               "repeat": True, "plan": [{"product": "A", "batches": 1}]}  # fmt: skip
    data = {"name": "rules", "horizon": horizon, "products": [{"name": "A", "batch_size": 100}],
            "release": release, "stations": stations, **extra}  # fmt: skip
    return LineSpec.from_dict(data)


def times(table: pd.DataFrame, event: str, station: str | None = None, state: str | None = None) -> list[float]:
    rows = table[table["event"] == event]
    if station is not None:
        rows = rows[rows["station"] == station]
    if state is not None:
        rows = rows[rows["state"] == state]
    return [round(t, 9) for t in rows["time"]]


def test_major_clean_falls_due_after_n_batches():
    # 1 h a batch; a 15 min clean after each, but every third a 2 h major clean
    spec = line(
        [{"name": "m", "process_time": 1.0, "cleaning": {"minor": 0.25, "major": 2.0, "due": {"batches": 3}}}],
        batches=7,
    )
    table = simulate(spec).table
    assert times(table, "start") == [0.0, 1.25, 2.5, 5.5, 6.75, 8.0, 11.0]
    assert times(table, "major_clean") == [3.5, 9.0]
    assert times(table, "clean") == [1.0, 2.25, 6.5, 7.75, 12.0]
    assert times(table, "end") == [12.0]


def test_skid_contention_makes_dirty_equipment_overrun_its_dirty_hold():
    # two stations share one CIP skid; a 2 h minor clean, but dirty for more than 30 min -> 3 h major clean.
    # s1 cleans 1-3 (minor); s2 dirty at 2 waits for the skid until 3 -> major 3-6; s1 dirty at 4 waits
    # until 6 -> major 6-9; s2 (batch 1 from 6 to 7) waits until 9 -> major 9-12; s1 (batch 2 from 9 to 10)
    # waits until 12 -> major at 12 (the horizon: what happens then is in the run).
    cleaning = {"minor": 2.0, "major": 3.0, "skid": "cip", "dirty_hold": 0.5}
    spec = line(
        [
            {"name": "s1", "process_time": 1.0, "cleaning": cleaning},
            {"name": "s2", "process_time": 1.0, "cleaning": cleaning},
        ],
        horizon=12.0,
        skids=[{"name": "cip", "capacity": 1}],
    )
    table = simulate(spec).table
    assert times(table, "clean", "s1") == [1.0]
    assert times(table, "major_clean", "s1") == [6.0, 12.0]
    assert times(table, "major_clean", "s2") == [3.0, 9.0]
    assert times(table, "state", "s2", "waiting_cleaning") == [2.0, 7.0]
    assert times(table, "state", "s1", "waiting_cleaning") == [4.0, 10.0]
    assert times(table, "start", "s2") == [1.0, 6.0, 12.0]
    hours = state_intervals(table).query("station == 's2'").assign(h=lambda d: d.end - d.start)
    assert hours.groupby("state", observed=True)["h"].sum()["waiting_cleaning"] == pytest.approx(3.0)


def test_equipment_left_clean_too_long_is_cleaned_again():
    # a batch every 5 h, 1 h each, 30 min clean after it; clean hold 3 h: the first batch (clean since 0)
    # and the third (clean since 11.5) need a clean first, the second (clean since 7) does not
    spec = LineSpec.from_dict(
        {
            "name": "hold", "horizon": 17.0,
            "release": {"mode": "interarrival", "interarrival": 5.0},
            "stations": [{"name": "m", "process_time": 1.0, "cleaning": {"minor": 0.5, "clean_hold": 3.0}}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "clean") == [5.0, 6.5, 11.0, 15.0, 16.5]
    assert times(table, "start") == [5.5, 10.0, 15.5]


def test_hold_time_scrap_and_investigation():
    # s1 1 h, s2 3 h, granulate may wait at most 2.5 h: batches 2 and 3 wait 4 h and 3 h at 7 h
    stations = [{"name": "s1", "process_time": 1.0}, {"name": "s2", "process_time": 3.0}]
    scrap = line(stations, batches=4, hold_times=[{"from": "s1", "to": "s2", "max": 2.5}])
    table = simulate(scrap).table
    violations = table[table["event"] == "hold_violation"]
    assert list(violations["batch"]) == [2, 3] and list(violations["time"]) == [7.0, 7.0]
    assert list(violations["quantity"]) == [4.0, 3.0]  # how long they had waited
    assert times(table, "reject", "s2") == [7.0, 7.0]
    assert times(table, "start", "s2") == [1.0, 4.0] and times(table, "end") == [7.0]
    row = compute_kpis(simulate(scrap)).per_replication.iloc[0]
    assert row["hold_violations"] == 2 and row["rejected_batches"] == 2 and row["lost_units"] == 200

    investigate = line(
        stations,
        batches=4,
        hold_times=[{"from": "s1", "to": "s2", "max": 2.5, "action": "investigate", "investigation": 2.0}],
    )
    table = simulate(investigate).table
    assert times(table, "investigation", "s2") == [7.0, 7.0]
    assert times(table, "investigation_end", "s2") == [9.0, 9.0]
    assert times(table, "start", "s2") == [1.0, 4.0, 9.0, 12.0] and times(table, "end") == [15.0]


def test_qc_lab_capacity_queues_batches_in_quarantine():
    # 1 h a batch, then 3 h of testing by one of two analysts: the third batch waits for the first analyst
    spec = line([{"name": "m", "process_time": 1.0}], batches=4, qc={"analysts": 2, "test_time": 3.0})
    table = simulate(spec).table
    assert times(table, "quarantine") == [1.0, 2.0, 3.0, 4.0]
    assert times(table, "qc_start") == [1.0, 2.0, 4.0, 5.0]
    assert times(table, "approve") == [4.0, 5.0, 7.0, 8.0]
    assert times(table, "end") == [8.0]
    row = compute_kpis(simulate(spec)).per_replication.iloc[0]
    assert row["release_lead_time_hours"] == pytest.approx((4 + 4 + 5 + 5) / 4)  # from release to approval
    assert row["quarantine_max"] == 3  # at 3 h: two under test, one waiting for an analyst


def test_qc_out_of_spec_investigation_and_incubation():
    spec = line(
        [{"name": "m", "process_time": 1.0}],
        batches=2,
        qc={"analysts": 1, "test_time": 2.0, "incubation": 10.0, "oos_probability": 1.0, "oos_action": "investigate",
            "investigation": 5.0},
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "qc_end") == [3.0, 5.0]
    assert times(table, "investigation") == [13.0, 15.0]
    assert times(table, "approve") == [18.0, 20.0]


def test_operators_on_shift_calendars():
    # one operator on Mondays and Tuesdays 06:00-14:00 runs a 3 h process: Monday 6-9, 9-12, 12-15 (the
    # batch started at 12 is finished after the shift), then the station is off shift until Tuesday 6:00 (30 h)
    spec = line(
        [{"name": "m", "process_time": 3.0, "operators": {"count": 1, "phases": ["processing"]}}],
        batches=4,
        calendars={"day": {"shifts": [{"days": ["mon", "tue"], "start": "06:00", "end": "14:00"}]}},
        operators=[{"name": "crew", "headcount": 1, "calendar": "day", "qualified": ["m"]}],
    )
    table = simulate(spec).table
    assert times(table, "start") == [6.0, 9.0, 12.0, 30.0]
    assert times(table, "state", "m", "off_shift") == [0.0, 15.0]
    row = compute_kpis(simulate(spec)).per_replication.iloc[0]
    assert row["m.state.off_shift"] == pytest.approx(21.0 / 33.0)
    assert row["m.availability"] == pytest.approx(1.0)  # time off shift is not planned busy time


def test_gowning_into_a_grade_a_room_and_waiting_for_the_operator():
    # one operator for two stations; s2 sits in a grade A room (gowning 30 min). At 1 h s2 waits for the
    # operator busy at s1; at 2 h the operator gowns, s2 runs 2.5-3.5, then again 3.5-4.5 without gowning
    spec = line(
        [
            {"name": "s1", "process_time": 1.0, "operators": {"phases": ["processing"]}},
            {"name": "s2", "process_time": 1.0, "operators": {"phases": ["processing"]}},
        ],
        batches=2,
        operators=[{"name": "crew", "headcount": 1, "qualified": ["s1", "s2"]}],
        rooms=[{"name": "aseptic", "grade": "A", "max_people": 2, "gowning": "30 min", "stations": ["s2"]}],
    )
    table = simulate(spec).table
    assert times(table, "state", "s2", "waiting_operator") == [1.0]
    assert times(table, "gowning", "s2") == [2.0]
    assert times(table, "start", "s2") == [2.5, 3.5]
    assert times(table, "end") == [4.5]


def test_room_headcount_limits_operators_at_work():
    # two operators, but the room holds one at a time: s2 waits for s1's operator to leave the room
    spec = LineSpec.from_dict(
        {
            "name": "room", "horizon": 10.0,
            "release": {"mode": "plan", "plan": [{"product": "batch", "batches": 2}]},
            "stations": [
                {"name": "s1", "process_time": 2.0, "operators": {"phases": ["processing"]}},
                {"name": "s2", "process_time": 1.0, "operators": {"phases": ["processing"]}},
            ],
            "operators": [{"name": "crew", "headcount": 2, "qualified": ["s1", "s2"]}],
            "rooms": [{"name": "suite", "grade": "C", "max_people": 1, "stations": ["s1", "s2"]}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    # s1 2 h (0-2), s2 batch 0 waits while s1 runs batch 1 (2-4), then 4-5; batch 1 5-6
    assert times(table, "start", "s1") == [0.0, 2.0]
    assert times(table, "start", "s2") == [4.0, 5.0]


def test_split_and_merge_keep_the_genealogy():
    # s1 splits each batch in two lots, s3 blends two lots into one batch
    spec = line(
        [
            {"name": "s1", "process_time": 1.0, "split": 2},
            {"name": "s2", "process_time": 0.5},
            {"name": "s3", "process_time": 1.0, "merge": 2},
        ],
        batches=2,
    )
    log = simulate(spec)
    table = log.table
    tree = genealogy(table)
    assert sorted(zip(tree["parent"], tree["child"], tree["kind"], strict=True)) == [
        (0, 1, "split"), (0, 2, "split"), (1, 6, "merge"), (2, 6, "merge"),
        (3, 4, "split"), (3, 5, "split"), (4, 7, "merge"), (5, 7, "merge"),
    ]  # fmt: skip
    assert list(table[table["event"] == "split"]["quantity"]) == [50.0] * 4
    assert times(table, "start", "s2") == [1.0, 1.5, 2.0, 2.5]
    assert times(table, "start", "s3") == [2.0, 3.0]
    leave = table[(table["event"] == "leave") & (table["station"] == "s3")]
    assert list(leave["batch"]) == [6, 7] and list(leave["quantity"]) == [100.0, 100.0]
    row = compute_kpis(log, warmup=0.0).per_replication.iloc[0]
    assert row["lead_time_hours"] == pytest.approx(3.0)  # from the release of the first ancestor


def test_rate_based_station_yield_and_oee_quality():
    # 800 units at 1,000/h with 20% speed loss and a 30 min start-up: 1.5 h; 10% of units scrapped
    spec = LineSpec.from_dict(
        {
            "name": "rate", "horizon": 15.0, "warmup": 0.0,
            "products": [{"name": "A", "batch_size": 800}],
            "stations": [{"name": "press", "rate": {"units_per_hour": 1000, "startup": "30 min", "speed_loss": 0.2},
                          "quality": {"yield": 0.9}}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "finish") == [1.5 * k for k in range(1, 11)]
    scrap = table[table["event"] == "scrap"]
    assert list(scrap["quantity"].round(9)) == [80.0] * 10
    finish = table[table["event"] == "finish"]
    assert list(finish["ideal"].round(9)) == [0.8] * 10  # nameplate time of the units processed
    row = compute_kpis(simulate(spec)).per_replication.iloc[0]
    assert row["press.performance"] == pytest.approx(0.8 / 1.5)
    assert row["press.quality"] == pytest.approx(0.9)
    assert row["units_per_hour"] == pytest.approx(10 * 720 / 15.0)


def test_changeover_with_major_clean_and_line_clearance():
    # A then B: the plan tells the station the next product, so the major clean comes right after A
    spec = LineSpec.from_dict(
        {
            "name": "co", "horizon": 100.0,
            "products": [{"name": "A", "batch_size": 1}, {"name": "B", "batch_size": 1}],
            "release": {"mode": "plan", "plan": [{"product": "A", "batches": 1}, {"product": "B", "batches": 1}]},
            "stations": [{"name": "m", "process_time": 1.0,
                          "setup": {"A->B": {"time": 1.0, "major_clean": True, "line_clearance": True}},
                          "cleaning": {"major": 2.0, "line_clearance": "30 min"}}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "major_clean") == [1.0]
    assert times(table, "setup") == [3.0]
    assert times(table, "line_clearance") == [4.0]
    assert times(table, "start") == [0.0, 4.5]
    assert times(table, "end") == [5.5]


def test_rules_loop_matches_the_lean_loop_on_a_plain_line():
    plain = {
        "name": "x", "horizon": 300.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}]},
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0},
             "setup": {"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}},
             "failures": {"mtbf": {"dist": "exponential", "mean": 10.0}, "mttr": 1.0, "basis": "calendar"}},
            {"name": "s2", "units": 2, "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.8, "sd": 0.5},
             "failures": {"mtbf": {"dist": "exponential", "mean": 8.0}, "mttr": {"dist": "exponential", "mean": 0.5}}},
            {"name": "s3", "buffer": 0, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.2}},
        ],
    }  # fmt: skip
    ruled = {**plain, "stations": [*plain["stations"][:2], {**plain["stations"][2], "quality": {"yield": 1.0}}]}
    lean = simulate(LineSpec.from_dict(plain), replications=2, seed=3).table
    full = simulate(LineSpec.from_dict(ruled), replications=2, seed=3).table
    pd.testing.assert_frame_equal(lean, full)


def test_qc_analysts_start_tests_only_in_their_working_time():
    # batches leave at 1 h and 2 h on Monday; analysts work 06:00-14:00, so both tests start at 6 h
    # (one analyst each), take 4 h, and the second analyst's next test waits for Tuesday 06:00
    spec = line(
        [{"name": "m", "process_time": 1.0}],
        batches=3,
        calendars={"lab": {"shifts": [{"days": ["mon", "tue"], "start": "06:00", "end": "14:00"}]}},
        qc={"analysts": 2, "calendar": "lab", "test_time": 4.0},
    )
    table = simulate(spec).table
    assert times(table, "quarantine") == [1.0, 2.0, 3.0]
    assert times(table, "qc_start") == [6.0, 6.0, 10.0]
    assert times(table, "approve") == [10.0, 10.0, 14.0]
