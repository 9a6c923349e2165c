"""A replication advanced step by step hands out the same rows as a run to the end."""

from __future__ import annotations

import pandas as pd
from conftest import serial_line

from twin.engine.compiled import compile_line
from twin.engine.simulate import Replication
from twin.spec.model import LineSpec


def test_stepping_gives_every_row_once_in_order_and_never_ahead_of_the_clock():
    spec = LineSpec.from_dict(
        {
            "name": "live", "horizon": 300.0,
            "stations": [
                {"name": "a", "process_time": {"dist": "exponential", "mean": 1.0},
                 "failures": {"mtbf": {"dist": "exponential", "mean": 10.0}, "mttr": 1.0}},
                {"name": "b", "buffer": 1, "process_time": {"dist": "exponential", "mean": 1.1},
                 "failures": {"mtbf": {"dist": "exponential", "mean": 8.0}, "mttr": 0.5, "basis": "calendar"}},
            ],
        }
    )  # fmt: skip
    line = compile_line(spec)
    whole = Replication(line, seed=4, replication=0, horizon=300.0).run_to_end()
    live = Replication(line, seed=4, replication=0, horizon=300.0)
    parts = []
    t = 0.0
    while not live.finished:
        t += 7.3
        live.advance(t)
        rows = live.new_rows()
        assert (rows["time"] <= live.now + 1e-12).all()
        parts.append(rows)
    stepped = pd.concat(parts, ignore_index=True)
    expected = whole[whole["event"] != "end"].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        stepped.sort_values(["time"], kind="stable").reset_index(drop=True)[["time", "batch", "event", "station"]],
        expected[["time", "batch", "event", "station"]],
    )


def test_a_finished_plan_stops_advancing():
    spec = serial_line([1.0], dist="constant", horizon=100.0, warmup=0.0,
                       release={"mode": "plan", "plan": [{"product": "batch", "batches": 3}]})  # fmt: skip
    live = Replication(compile_line(spec), seed=0, replication=0, horizon=100.0)
    live.advance(50.0)
    assert live.finished and live.now == 3.0
    assert list(live.new_rows()["event"]).count("finish") == 3
