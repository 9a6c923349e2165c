"""Determinism, independence of replications and common random numbers across scenarios."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
from conftest import serial_line

from twin.engine import simulate
from twin.eventlog import EventLog


def processing_durations(table: pd.DataFrame, station: str) -> np.ndarray:
    """Processing times in the order batches started (the order a station draws them)."""
    rows = table[table["station"] == station]
    start = rows[rows["event"] == "start"].set_index("batch")["time"]
    finish = rows[rows["event"] == "finish"].set_index("batch")["time"]
    start = start[finish.index].sort_values(kind="stable")
    return (finish[start.index] - start).to_numpy()


def test_same_seed_gives_bit_identical_logs():
    spec = serial_line([1.0, 1.5, 0.7], [None, 1, 0], horizon=300.0)
    a = simulate(spec, replications=3, seed=42).table
    b = simulate(spec, replications=3, seed=42).table
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    c = simulate(spec, replications=3, seed=43).table
    assert not a["time"].equals(c["time"])


def test_a_replication_is_the_same_alone_in_another_process(tmp_path):
    spec = serial_line([1.0, 1.5, 0.7], [None, 1, 0], horizon=300.0)
    together = simulate(spec, replications=4, seed=7)
    path = tmp_path / "rep2.parquet"
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from conftest import serial_line; from twin.engine import simulate;"
        "spec = serial_line([1.0, 1.5, 0.7], [None, 1, 0], horizon=300.0);"
        f"simulate(spec, replications=1, seed=7, first_replication=2).to_parquet({str(path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    alone = EventLog.from_parquet(path).table
    expected = together.table[together.table["replication"] == 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, expected, check_exact=True)


def test_changing_one_station_leaves_every_other_stations_draws_unchanged():
    base = serial_line([1.0, 1.5, 0.7, 1.2], [None, 1, 0, 2], horizon=400.0)
    changed = serial_line([1.0, 1.5, 1.9, 1.2], [None, 1, 4, 2], horizon=400.0, units=[1, 1, 2, 1])
    a, b = simulate(base, seed=3).table, simulate(changed, seed=3).table
    for station in ("s1", "s2", "s4"):
        da, db = processing_durations(a, station), processing_durations(b, station)
        n = min(len(da), len(db))
        assert n > 100
        np.testing.assert_allclose(da[:n], db[:n], rtol=0, atol=1e-9)
    assert not np.array_equal(processing_durations(a, "s3")[:50], processing_durations(b, "s3")[:50])


def test_adding_a_station_leaves_the_others_draws_unchanged():
    base = serial_line([1.0, 1.5], [None, 1], horizon=300.0)
    longer = serial_line([1.0, 1.5, 0.5], [None, 1, 1], horizon=300.0)
    a, b = simulate(base, seed=5).table, simulate(longer, seed=5).table
    for station in ("s1", "s2"):
        da, db = processing_durations(a, station), processing_durations(b, station)
        n = min(len(da), len(db))
        np.testing.assert_allclose(da[:n], db[:n], rtol=0, atol=1e-9)
