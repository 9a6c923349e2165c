"""The event-log table: schema, ordering, state intervals and Parquet round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import serial_line

from twin.engine import simulate
from twin.errors import InputError
from twin.eventlog import COLUMNS, EVENTS, STATES, EventLog, state_intervals
from twin.spec.model import LineSpec


@pytest.fixture(scope="module")
def log() -> EventLog:
    spec = LineSpec.from_dict(
        {
            "name": "log", "horizon": 400.0, "warmup": 50.0,
            "products": [{"name": "A", "batch_size": 100}, {"name": "B", "batch_size": 50}],
            "release": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}]},
            "stations": [
                {"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0},
                 "failures": {"mtbf": {"dist": "exponential", "mean": 20.0}, "mttr": 2.0, "basis": "calendar"}},
                {"name": "s2", "units": 2, "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.8, "sd": 0.5},
                 "setup": {"A->B": 1.0, "B->A": 0.5},
                 "failures": {"mtbf": {"dist": "exponential", "mean": 15.0}, "mttr": {"dist": "exponential", "mean": 1.0}}},
                {"name": "s3", "buffer": 0, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.2}},
            ],
        }
    )  # fmt: skip
    return simulate(spec, replications=3, seed=8)


def test_schema(log: EventLog):
    table = log.table
    assert tuple(table.columns) == COLUMNS
    assert table["time"].dtype == np.float64 and table["batch"].dtype == np.int64
    assert list(table["event"].cat.categories) == list(EVENTS)
    assert list(table["state"].cat.categories) == list(STATES)
    assert set(table["event"].dropna().unique()) >= {"release", "arrive", "setup", "start", "finish", "leave", "fail",
                                                     "repair", "state", "end"}  # fmt: skip


def test_rows_are_in_time_order_within_each_replication(log: EventLog):
    for _, rows in log.table.groupby("replication"):
        assert (np.diff(rows["time"].to_numpy()) >= 0).all()
        assert rows["event"].iloc[-1] == "end"


def test_every_batch_follows_its_route_in_causal_order(log: EventLog):
    table = log.table[log.table["replication"] == 0]
    done = table[(table["event"] == "leave") & (table["station"] == "s3")]["batch"]
    order = ["release", "arrive", "start", "finish", "leave"]
    for batch in done.iloc[:50]:
        rows = table[table["batch"] == batch]
        events = [e for e in rows["event"] if e in order]
        assert events[:2] == ["release", "arrive"]
        assert events[2:] == ["start", "finish", "leave", "arrive"] * 2 + ["start", "finish", "leave"]


def test_state_intervals_partition_each_units_time(log: EventLog):
    intervals = state_intervals(log.table)
    ends = log.end_times()
    assert (intervals["end"] >= intervals["start"]).all()
    for (rep, _station, _unit), rows in intervals.groupby(["replication", "station", "unit"], observed=True):
        rows = rows.sort_values("start", kind="stable")
        assert rows["start"].iloc[0] == 0.0
        np.testing.assert_allclose(rows["start"].to_numpy()[1:], rows["end"].to_numpy()[:-1])
        assert rows["end"].iloc[-1] == pytest.approx(ends[rep])
    down = intervals[intervals["state"] == "down"]
    assert len(down) > 10


def test_parquet_round_trip_keeps_table_and_metadata(log: EventLog, tmp_path):
    path = tmp_path / "e.parquet"
    log.to_parquet(path)
    again = EventLog.from_parquet(path)
    pd.testing.assert_frame_equal(log.table, again.table)
    assert again.meta == log.meta


def test_a_parquet_file_that_is_not_an_event_log_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1, 2]}).to_parquet(path)
    with pytest.raises(InputError, match="not a twin event log"):
        EventLog.from_parquet(path)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable event log"):
        EventLog.from_parquet(tmp_path / "junk.parquet")


def test_one_million_events_fit_in_compact_columns():
    spec = serial_line([1.0] * 10, [None] + [2] * 9, horizon=1e6, warmup=0.0,
                       release={"mode": "plan", "plan": [{"product": "batch", "batches": 25000}]})  # fmt: skip
    log = simulate(spec)
    assert len(log.table) > 1_000_000
    assert log.table.memory_usage(deep=True).sum() / len(log.table) < 60  # bytes per row
