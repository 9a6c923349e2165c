"""Observations for calibration: every duration read from an event log equals the draw the engine made."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.calibrate.observations import Window, observe
from twin.engine import simulate
from twin.eventlog import EventLog, LogMeta, normalize_table
from twin.random import first_draws, stream_rng
from twin.spec.distributions import parse_distribution
from twin.spec.model import LineSpec


def exact_line(basis: str) -> LineSpec:
    return LineSpec.from_dict(
        {
            "name": "exact", "horizon": 400.0,
            "release": {"mode": "plan", "repeat": True,
                        "plan": [{"product": "A", "batches": 2}, {"product": "B", "batches": 1}]},
            "products": [{"name": "A", "batch_size": 100}, {"name": "B", "batch_size": 100}],
            "stations": [
                {"name": "m1",
                 "process_time": {"A": {"dist": "gamma", "mean": 2, "sd": 0.5}, "B": {"dist": "exponential", "mean": 1}},
                 "failures": {"mtbf": {"dist": "exponential", "mean": 6}, "basis": basis,
                              "mttr": {"dist": "lognormal", "mean": 1, "sd": 0.5}},
                 "setup": {"A->B": {"dist": "uniform", "low": 0.5, "high": 1.5}, "B->A": 0.25},
                 "cleaning": {"minor": {"dist": "gamma", "mean": 0.3, "sd": 0.1}}},
                {"name": "m2", "process_time": 1.0, "buffer": 1},
            ],
        }
    )  # fmt: skip


def draws(spec: LineSpec, dist: dict | float, stream: str, n: int, seed: int = 3) -> np.ndarray:
    sampler = parse_distribution(dist).sampler(spec.time_unit)
    return first_draws(sampler, stream_rng(seed, 0, "m1", stream), n)


def assert_draws(observed, expected: np.ndarray) -> None:
    """Exact observations equal the first draws in order; a censored last one is shorter than its draw."""
    exact = observed.values[~observed.censored]
    assert len(exact) >= 10
    np.testing.assert_allclose(exact, expected[: len(exact)], rtol=0, atol=1e-9)
    if observed.censored.any():
        assert observed.censored[-1] and observed.censored.sum() == 1
        assert 0 <= observed.values[-1] <= expected[len(exact)] + 1e-9


@pytest.mark.parametrize("basis", ["operating", "calendar"])
def test_every_duration_is_the_engines_draw(basis):
    spec = exact_line(basis)
    log = simulate(spec, seed=3)
    obs = observe(log, {"m1": basis})
    m1 = spec.station("m1")
    processing = obs.processing["m1"]
    for product in ("A", "B"):
        assert_draws(processing.durations({product}), draws(spec, m1.process_time[product].model_dump(), f"process:{product}", 500))  # fmt: skip
    failures = m1.failures.model_dump()
    assert_draws(obs.time_to_failure["m1"].durations(), draws(spec, failures["mtbf"], "ttf:0", 500))
    assert_draws(obs.repair["m1"].durations(), draws(spec, failures["mttr"], "ttr:0", 500))
    setups = obs.activities[("m1", "setup")]
    assert_draws(setups.durations({("A", "B")}), draws(spec, {"dist": "uniform", "low": 0.5, "high": 1.5}, "setup:A->B", 500))  # fmt: skip
    np.testing.assert_allclose(setups.durations({("B", "A")}).values, 0.25, atol=1e-9)
    assert_draws(obs.activities[("m1", "clean")].durations(), draws(spec, {"dist": "gamma", "mean": 0.3, "sd": 0.1}, "clean:minor", 2000))  # fmt: skip
    np.testing.assert_allclose(obs.processing["m2"].durations().values[:-1], 1.0, atol=1e-9)


def test_the_seed_puts_calendar_failures_inside_cleans_and_changeovers():
    # so that the exactness above covers taking down time out of cleans and changeovers
    log = simulate(exact_line("calendar"), seed=3)
    rows = log.table[(log.table["station"] == "m1") & log.table["state"].notna()]
    previous = rows["state"].astype(str).shift()
    interrupted = set(previous[rows["event"] == "fail"])
    assert {"cleaning", "setup"} <= interrupted


def handmade_log(rows: list[tuple], source: str = "plant", end: float = 20.0) -> EventLog:
    meta = LogMeta(line="hand", stations=["m1"], units=[1], products=["A"], batch_sizes=[10.0], horizon=end,
                   warmup=0.0, replications=1, source=source)  # fmt: skip
    full = [(*r, *(None,) * (6 - len(r))) for r in rows] + [(end, -1, None, "end", None, None)]
    frame = pd.DataFrame(
        {
            "time": [r[0] for r in full],
            "replication": 0,
            "batch": [r[1] for r in full],
            "product": ["A" if r[1] >= 0 else None for r in full],
            "station": [None if r[3] == "end" else "m1" for r in full],
            "unit": [-1 if r[3] == "end" else 0 for r in full],
            "event": [r[3] for r in full],
            "state": [r[4] for r in full],
            "quantity": [r[5] for r in full],
            "ideal": np.nan,
            "parent": -1,
        }
    )
    return EventLog(normalize_table(frame, meta), meta)


# time, batch, (unused), event, state, quantity
PLANT_ROWS = [
    (0.0, 0, None, "start", "processing"),
    (1.0, 0, None, "repair", "processing"),  # a repair whose failure came before the data
    (2.0, 0, None, "finish", None, 10.0),
    (2.0, -1, None, "clean", "cleaning"),
    (2.5, 1, None, "start", "processing"),
    (4.0, 1, None, "fail", "down"),  # 3.5 h of processing since the repair at 1.0
    (5.0, 1, None, "repair", "processing"),
    (6.5, 1, None, "finish", None, 10.0),  # 4 h less 1 h down
    (6.5, 1, None, "scrap", None, 1.0),
    (6.5, 1, None, "reject", None, 9.0),
    (6.5, 2, None, "setup", "setup"),
    (7.0, 2, None, "fail", "down"),  # 1 h processing since 5.0 (6.5 - 5.0 = 1.5 h)
    (8.0, 2, None, "repair", "setup"),
    (8.75, 2, None, "start", "processing"),  # the changeover: 2.25 h less 1 h down
    (19.0, 2, None, "fail", "down"),  # down at the end: a censored repair of 1 h
]


def test_hand_made_plant_log():
    obs = observe(handmade_log(PLANT_ROWS), {"m1": "operating"})
    processing = obs.processing["m1"].durations()
    assert processing.values.tolist() == pytest.approx([2.0, 3.0, 10.25])  # the batch in process at 20 h: censored
    assert processing.censored.tolist() == [False, False, True]
    ttf = obs.time_to_failure["m1"].durations()
    # from the repair at 1.0: processing 1.0-2.0 and 2.5-4.0 = 2.5 h; from 5.0: 1.5 h; from 8.0: 10.25 h
    assert ttf.values.tolist() == pytest.approx([2.5, 1.5, 10.25]) and not ttf.censored.any()
    assert obs.unused_failures == 0  # the failure before the data shows only as a repair
    repair = obs.repair["m1"].durations()
    assert repair.values.tolist() == pytest.approx([1.0, 1.0, 1.0]) and repair.censored.tolist() == [False, False, True]
    assert obs.activities[("m1", "clean")].durations().values.tolist() == pytest.approx([0.5])
    setup = obs.activities[("m1", "setup")]
    assert setup.durations().values.tolist() == pytest.approx([1.25]) and setup.keys == [("A", "A")]
    quality = obs.quality["m1"]
    assert quality.quantities == [10.0, 10.0] and quality.scrapped == [0.0, 1.0] and quality.rejected == [False, True]


def test_a_simulated_log_counts_time_to_failure_from_the_start_and_a_plant_log_does_not():
    rows = [(0.0, 0, None, "start", "processing"), (3.0, 0, None, "fail", "down"), (4.0, 0, None, "repair", "processing"),
            (6.0, 0, None, "finish", None, 10.0)]  # fmt: skip
    plant = observe(handmade_log(rows, "plant"), {"m1": "operating"})
    simulated = observe(handmade_log(rows, "simulation"), {"m1": "operating"})
    assert plant.unused_failures == 1
    assert plant.time_to_failure["m1"].durations().values.tolist() == pytest.approx([2.0])  # censored: 4.0 -> 6.0
    ttf = simulated.time_to_failure["m1"].durations()
    assert ttf.values.tolist() == pytest.approx([3.0, 2.0]) and ttf.censored.tolist() == [False, True]


def test_calendar_time_to_failure_is_wall_clock_and_stops_when_the_unit_goes_idle():
    rows = [(0.0, 0, None, "start", "processing"), (1.0, 0, None, "finish", None, 10.0),
            (1.0, -1, None, "state", "starved"), (5.0, -1, None, "fail", "down"), (6.0, -1, None, "repair", "starved"),
            (9.0, -1, None, "state", "idle")]  # fmt: skip
    obs = observe(handmade_log(rows, "simulation"), {"m1": "calendar"})
    ttf = obs.time_to_failure["m1"].durations()
    assert ttf.values.tolist() == pytest.approx([5.0, 3.0]) and ttf.censored.tolist() == [False, True]


def test_the_data_window():
    log = handmade_log(PLANT_ROWS)
    obs = observe(log, {"m1": "operating"}, Window(2.4, 7.5))
    processing = obs.processing["m1"].durations()
    assert processing.values.tolist() == pytest.approx([3.0])  # only the batch started in the window
    setup = obs.activities[("m1", "setup")].durations()
    assert setup.values.tolist() == pytest.approx([0.5]) and setup.censored.tolist() == [
        True
    ]  # 6.5 -> 7.5 less 0.5 down
    assert obs.repair["m1"].durations().values.tolist() == pytest.approx([1.0, 0.5])  # the second cut at 7.5
    assert obs.quality["m1"].quantities == [10.0]  # finishes in the window


def test_qc_and_hold_time_investigations():
    spec = LineSpec.from_dict(
        {
            "name": "qc", "horizon": 300.0,
            "stations": [{"name": "m1", "process_time": 1.0}, {"name": "m2", "process_time": 1.5, "buffer": 2}],
            "hold_times": [{"from": "m1", "to": "m2", "max": 0.5, "action": "investigate", "investigation": 0.75}],
            "qc": {"analysts": 1, "test_time": {"dist": "exponential", "mean": 0.8}, "incubation": 2.0,
                   "oos_probability": 0.3, "oos_action": "investigate", "investigation": 3.0},
        }
    )  # fmt: skip
    log = simulate(spec, seed=5)
    obs = observe(log, {})
    tests = obs.qc_test.durations()
    expected = first_draws(parse_distribution({"dist": "exponential", "mean": 0.8}).sampler("h"),
                           stream_rng(5, 0, "qc", "test"), 2000)  # fmt: skip
    exact = tests.values[~tests.censored]
    np.testing.assert_allclose(exact, expected[: len(exact)], atol=1e-9)
    incubation = obs.incubation.durations()
    assert np.allclose(incubation.values[~incubation.censored], 2.0)
    assert np.allclose(obs.qc_investigation.durations().values[~obs.qc_investigation.durations().censored], 3.0)
    approves = int((log.table["event"] == "approve").sum())
    investigated = int(((log.table["event"] == "investigation") & log.table["station"].isna()).sum())
    assert len(obs.oos) >= approves and sum(obs.oos) == investigated > 10
    holds = obs.hold_investigation["m2"].durations()
    assert holds.n > 10 and np.allclose(holds.values[~holds.censored], 0.75)
