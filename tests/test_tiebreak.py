"""Who goes first at one instant: operators, cleaning skids and QC analysts are granted by the serve step at
the end of the instant, in order (time of request, station index, unit index) (docs/batch-rules.md).

Each line below is built so that requests collide at one instant; the timelines are worked out by hand.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kpi_invariants import assert_kpi_invariants, random_specs, valid

from twin.engine import simulate
from twin.spec.model import LineSpec


def line(stations: list[dict[str, Any]], batches: int = 3, horizon: float = 20.0, **extra: Any) -> LineSpec:
    """A line of product A; a plan of ``batches`` (0: one batch after another until the horizon)."""
    plan = {"mode": "plan", "plan": [{"product": "A", "batches": batches or 1}], "repeat": not batches}
    return LineSpec.from_dict(
        {"name": "tie", "horizon": horizon, "products": [{"name": "A", "batch_size": 100}], "release": plan,
         "stations": stations, **extra}
    )  # fmt: skip


def rows(table: Any, event: str, station: str | None = None, state: str | None = None) -> list[float]:
    picked = table[table["event"] == event]
    if station is not None:
        picked = picked[picked["station"] == station]
    if state is not None:
        picked = picked[picked["state"] == state]
    return [round(t, 9) for t in picked["time"]]


CLEANING_CREW = {"count": 1, "phases": ["cleaning"]}


def test_two_stations_asking_for_the_last_operator_at_once_the_lower_station_index_wins():
    # one operator cleans for a (1 h batches) and b (2 h batches); each clean takes 1 h. At 3 h both finish a
    # batch and ask for the operator: b's process was resumed first (its timer was set earlier), which used to
    # give b the operator; by the rule a (station 0) gets it, cleans 3-4, and b waits until 4.
    spec = line(
        [
            {"name": "a", "process_time": 1.0, "cleaning": {"minor": 1.0}, "operators": CLEANING_CREW},
            {"name": "b", "process_time": 2.0, "buffer": 1, "cleaning": {"minor": 1.0}, "operators": CLEANING_CREW},
        ],
        operators=[{"name": "team", "headcount": 1, "qualified": ["a", "b"]}],
    )
    table = simulate(spec).table
    assert rows(table, "clean", "a")[:2] == [1.0, 3.0]
    assert rows(table, "clean", "b")[0] == 4.0
    assert rows(table, "state", "b", "waiting_operator")[0] == 3.0
    assert 3.0 not in rows(table, "state", "a", "waiting_operator")


def test_two_units_asking_at_once_the_lower_unit_index_wins():
    # a station of two units, both start at 0 and finish at 1 h; one operator cleans (2 h): unit 0 first (1-3),
    # unit 1 from 3 to 5
    spec = line(
        [{"name": "m", "units": 2, "process_time": 1.0, "cleaning": {"minor": 2.0}, "operators": CLEANING_CREW}],
        batches=0,
        horizon=4.0,
        operators=[{"name": "team", "headcount": 1, "qualified": ["m"]}],
    )
    table = simulate(spec).table
    cleans = table[table["event"] == "clean"]
    assert list(zip(cleans["time"].round(9), cleans["unit"], strict=True)) == [(1.0, 0), (3.0, 1)]


def test_an_operator_freed_and_asked_for_at_once_serves_the_request_already_waiting():
    # one operator runs s1 and s2 (1 h each). At 1 h s1 asks again for batch 1 and s2 for batch 0: s1 (station 0)
    # wins. At 2 h s1 frees the operator and asks again at the same instant for batch 2, but s2 has waited
    # since 1 h: s2 gets it (time of request before station index).
    processing = {"count": 1, "phases": ["processing"]}
    spec = line(
        [
            {"name": "s1", "process_time": 1.0, "operators": processing},
            {"name": "s2", "process_time": 1.0, "buffer": 2, "operators": processing},
        ],
        operators=[{"name": "team", "headcount": 1, "qualified": ["s1", "s2"]}],
    )
    table = simulate(spec).table
    assert rows(table, "start", "s1") == [0.0, 1.0, 3.0]
    assert rows(table, "start", "s2") == [2.0, 4.0, 5.0]
    assert rows(table, "state", "s2", "waiting_operator") == [1.0, 3.0]


def test_a_skid_freed_and_asked_for_at_once_serves_the_clean_already_waiting():
    # one skid; s1 cleans 1-4 (3 h), s2 asks at 2 and s3 at 3 and both wait; at 4 s2 (waiting since 2) gets it.
    # At 5 s2 frees it and s1 asks for it at the same instant, but s3 has waited since 3: s3 cleans 5-6, s1 6-9.
    spec = line(
        [
            {"name": "s1", "process_time": 1.0, "cleaning": {"minor": 3.0, "skid": "cip"}},
            {"name": "s2", "process_time": 1.0, "buffer": 2, "cleaning": {"minor": 1.0, "skid": "cip"}},
            {"name": "s3", "process_time": 1.0, "buffer": 2, "cleaning": {"minor": 1.0, "skid": "cip"}},
        ],
        batches=2,
        skids=[{"name": "cip", "capacity": 1}],
    )
    table = simulate(spec).table
    assert rows(table, "clean", "s1") == [1.0, 6.0]
    assert rows(table, "clean", "s2")[0] == 4.0
    assert rows(table, "clean", "s3")[0] == 5.0
    assert rows(table, "state", "s2", "waiting_cleaning")[0] == 2.0
    assert rows(table, "state", "s3", "waiting_cleaning")[0] == 3.0
    assert rows(table, "state", "s1", "waiting_cleaning")[0] == 5.0


def test_a_qc_analyst_freed_and_asked_for_at_once_tests_the_batch_already_waiting():
    # one analyst, 2 h a test; batches leave the line at 1, 2, 3 h: batch 0 is tested 1-3, batch 1 waits from 2,
    # and at 3 h the analyst is freed as batch 2 arrives: batch 1 first (3-5), then batch 2 (5-7)
    spec = line(
        [{"name": "m", "process_time": 1.0}],
        qc={"analysts": 1, "test_time": 2.0, "oos_probability": 0.0},
    )
    table = simulate(spec).table
    started = table[table["event"] == "qc_start"]
    assert list(zip(started["batch"], started["time"].round(9), strict=True)) == [(0, 1.0), (1, 3.0), (2, 5.0)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=random_specs(), seed=st.integers(0, 10_000))
def test_random_rule_lines_are_deterministic_and_keep_their_kpi_invariants(data, seed):
    spec = valid(data)
    log = simulate(spec, replications=2, seed=seed)
    again = simulate(spec, replications=2, seed=seed)
    assert log.table.equals(again.table)
    assert_kpi_invariants(log)
