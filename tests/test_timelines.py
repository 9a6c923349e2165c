"""Small deterministic scenarios whose timelines are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.engine import simulate
from twin.eventlog import state_intervals
from twin.spec.model import LineSpec


def times(table: pd.DataFrame, event: str, station: str | None = None) -> list[float]:
    rows = table[table["event"] == event]
    if station is not None:
        rows = rows[rows["station"] == station]
    return [round(t, 9) for t in rows["time"]]


def state_hours(table: pd.DataFrame, station: str, unit: int = 0) -> dict[str, float]:
    iv = state_intervals(table)
    iv = iv[(iv["station"] == station) & (iv["unit"] == unit)]
    hours = (iv["end"] - iv["start"]).groupby(iv["state"], observed=True).sum()
    return {k: round(v, 9) for k, v in hours.items() if v > 0}


def test_operating_failures_suspend_and_resume_the_batch():
    # process 1 h; a failure every 2.3 h of processing (2.3 and 4.6 operating hours), 0.5 h to repair:
    # batch 2 fails at 2.3, resumes at 2.8, ends 3.5; batch 4 fails at 5.1 (4.6 h of processing + 0.5 h down)
    spec = LineSpec.from_dict(
        {
            "name": "op", "horizon": 7.0,
            "stations": [{"name": "m", "process_time": 1.0,
                          "failures": {"mtbf": 2.3, "mttr": 0.5, "basis": "operating"}}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "fail") == [2.3, 5.1]
    assert times(table, "repair") == [2.8, 5.6]
    assert times(table, "finish") == [1.0, 2.0, 3.5, 4.5, 6.0, 7.0]
    assert state_hours(table, "m") == {"processing": 6.0, "down": 1.0}


def test_calendar_failures_hit_a_waiting_unit_and_delay_its_next_batch():
    # s1 takes 2 h a batch; s2 1 h, failing every 2.4 h of wall clock after its last repair, 1 h to repair.
    # s2: batch 0 from 2.0, fails 2.4-3.4, done 4.0; batch 1 4.0-5.0; fails while starved at 5.8,
    # so batch 2 (ready at 6.0) waits until 6.8 and ends 7.8; batch 3 8.0-9.0; fails at 9.2 while
    # starved, so batch 4 (ready at 10.0) starts at 10.2.
    spec = LineSpec.from_dict(
        {
            "name": "cal", "horizon": 11.0,
            "stations": [
                {"name": "s1", "process_time": 2.0},
                {"name": "s2", "process_time": 1.0, "buffer": 0,
                 "failures": {"mtbf": 2.4, "mttr": 1.0, "basis": "calendar"}},
            ],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "fail", "s2") == [2.4, 5.8, 9.2]
    assert times(table, "repair", "s2") == [3.4, 6.8, 10.2]
    assert times(table, "start", "s2") == [2.0, 4.0, 6.8, 8.0, 10.2]
    assert times(table, "finish", "s2") == [4.0, 5.0, 7.8, 9.0]
    assert state_hours(table, "s2") == {"processing": 4.8, "down": 3.0, "starved": 3.2}


def test_changeovers_follow_the_plan_and_the_run_ends_with_it():
    # A, A, B, B, A with 1 h per batch; A->B takes 2 h, B->A 30 min, A->A nothing
    spec = LineSpec.from_dict(
        {
            "name": "co", "horizon": 100.0,
            "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 5}],
            "release": {"mode": "plan", "plan": [{"product": "A", "batches": 2}, {"product": "B", "batches": 2},
                                                 {"product": "A", "batches": 1}]},
            "stations": [{"name": "m", "process_time": 1.0, "setup": {"A->B": "2 h", "B->A": "30 min"}}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "setup") == [2.0, 6.0]
    assert times(table, "start") == [0.0, 1.0, 4.0, 5.0, 6.5]
    assert times(table, "end") == [7.5]  # the plan is done: the run ends when the last batch leaves
    finished = table[table["event"] == "finish"]
    assert list(finished["product"]) == ["A", "A", "B", "B", "A"]
    assert list(finished["quantity"]) == [10, 10, 5, 5, 10]
    assert state_hours(table, "m") == {"processing": 5.0, "setup": 2.5}


def test_wildcard_changeovers_and_repeated_plans():
    spec = LineSpec.from_dict(
        {
            "name": "co", "horizon": 14.0,
            "products": [{"name": "A", "batch_size": 1}, {"name": "B", "batch_size": 1}],
            "release": {"mode": "plan", "repeat": True,
                        "plan": [{"product": "A", "batches": 1}, {"product": "B", "batches": 1}]},
            "stations": [{"name": "m", "process_time": 1.0, "setup": {"*->*": 1.0, "B->B": 0.25}}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    # A, B, A, B, ...: every batch after the first changes product, so each needs the 1 h changeover;
    # the run includes what happens at the horizon itself (a start at 14 h)
    assert times(table, "start") == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
    assert list(table[table["event"] == "start"]["product"]) == ["A", "B"] * 4


def test_interarrival_release_waits_before_a_full_first_buffer():
    # a batch every 1 h into a 1-place buffer in front of a 3 h station: releases keep their times,
    # batches enter the line when a place frees
    spec = LineSpec.from_dict(
        {
            "name": "rel", "horizon": 10.5,
            "release": {"mode": "interarrival", "interarrival": 1.0},
            "stations": [{"name": "m", "process_time": 3.0, "buffer": 1}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "release") == [float(t) for t in range(1, 11)]
    assert times(table, "arrive", "m") == [1.0, 2.0, 4.0, 7.0, 10.0]
    assert times(table, "start", "m") == [1.0, 4.0, 7.0, 10.0]


def test_blocking_after_service_timeline():
    # s1 1 h, s2 3 h, no buffer: s1 finishes batch 1 at 2 h and stays blocked until s2 frees at 4 h
    spec = LineSpec.from_dict(
        {
            "name": "bas", "horizon": 10.0,
            "stations": [{"name": "s1", "process_time": 1.0}, {"name": "s2", "process_time": 3.0, "buffer": 0}],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "finish", "s1") == [1.0, 2.0, 5.0, 8.0]
    assert times(table, "leave", "s1") == [1.0, 4.0, 7.0, 10.0]
    hours = state_hours(table, "s1")
    assert hours == {"processing": 4.0, "blocked": 6.0}
    assert np.isclose(sum(state_hours(table, "s2").values()), 10.0)


def test_calendar_failures_while_blocked_and_at_the_end_of_the_run():
    # s1 1 h a batch, failing every 1.5 h after its last repair, 0.9 h to repair; s2 3 h, no buffer.
    # batch 1: fails 1.5-2.4, done 2.9, blocked; fails 3.9 while blocked, hands over at 4.0 while down,
    # takes batch 2 at 4.8 (repaired), done 5.8, blocked; fails 6.3, hands over at 7.0, batch 3 at 7.2,
    # done 8.2, blocked; fails 8.7 and is still down when the run ends at 9.
    spec = LineSpec.from_dict(
        {
            "name": "calb", "horizon": 9.0,
            "stations": [
                {"name": "s1", "process_time": 1.0, "failures": {"mtbf": 1.5, "mttr": 0.9, "basis": "calendar"}},
                {"name": "s2", "process_time": 3.0, "buffer": 0},
            ],
        }
    )  # fmt: skip
    table = simulate(spec).table
    assert times(table, "fail", "s1") == [1.5, 3.9, 6.3, 8.7]
    assert times(table, "repair", "s1") == [2.4, 4.8, 7.2]
    assert times(table, "start", "s1") == [0.0, 1.0, 4.8, 7.2]
    assert times(table, "finish", "s1") == [1.0, 2.9, 5.8, 8.2]
    assert times(table, "leave", "s1") == [1.0, 4.0, 7.0]
    assert state_hours(table, "s1") == {"processing": 4.0, "down": 3.0, "blocked": 2.0}
