"""Line OEE from the JAX kernel: per design and replication, equal to ``compute_kpis(log).per_replication["oee"]``
of the engine's run of the same spec and seed (rtol 1e-9), and valued at the same station, on every line the kernel
is exact for; ``--objective oee`` then runs on the kernel.

Compilation is the cost (10-30 s a kernel shape here): the random lines of a test share one structure (stations,
products, units and buffers at most, which rules are on) and vary what is a number (times, probabilities, warm-up,
horizon, units and buffers within it; a rule "off" by its numbers, a failure every 10^6 h)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizers.api import _use_engine
from optimizers.evaluator import Evaluation, Evaluator
from optimizers.objectives import OBJECTIVES
from optimizers.problem import build_problem
from tests.conftest import run_cli
from tests.test_optimizer_exactness import DISTS, assert_departures_match
from tests.test_optimizer_multiunit import evaluator as multiunit_evaluator
from tests.test_optimizer_multiunit import multiunit_lines
from twin.engine import simulate
from twin.eventlog import EventLog
from twin.kpis.report import compute_kpis
from twin.models import load_spec
from twin.spec.model import LineSpec

BATCHES = 300  # fixed: one kernel shape per test
FAILURES = 200
OFF = 1e6  # a failure every 10^6 h: the rule is there (the same shape), and never fires


def assert_oee_equal(res: Evaluation, log: EventLog, spec: LineSpec) -> np.ndarray:
    """The kernel's line OEE and constraint station of the first design equal ``compute_kpis``'s, per replication
    (NaN where it gives NaN); returns the engine's OEE."""
    core = compute_kpis(log).per_replication
    kept = core.index.to_numpy() if len(core) else np.zeros(0, int)  # (a replication over by the warm-up has none)
    skipped = np.setdiff1d(np.arange(res.oee.shape[1]), kept)
    assert (res.window_end[0, skipped] <= spec.warmup_hours).all()
    if not len(core):
        return np.zeros(0)
    np.testing.assert_allclose(res.oee[0, kept], core["oee"].to_numpy(dtype=float), rtol=1e-9, atol=0)
    names = [s.name for s in spec.stations]
    kernel = [names[c] if c >= 0 else None for c in res.constraint[0, kept]]
    engine = [c if isinstance(c, str) else None for c in core["constraint"]]  # (none: None, or NaN in a column)
    assert kernel == engine  # (stations that tie in exact arithmetic too: told apart alike)
    return core["oee"].to_numpy(dtype=float)


def exact_oee(ev: Evaluator, spec: LineSpec, seed: int, replications: int) -> tuple[Evaluation, np.ndarray]:
    """Evaluate the spec's own design with ``ev`` (exact for it) and compare OEE with the engine's run."""
    assert ev.approximations() == ()
    res = ev.evaluate()
    log = simulate(spec, seed=seed, replications=replications)
    if ev.record:
        assert_departures_match(res, log.table, spec)
    return res, assert_oee_equal(res, log, spec)


# -- 1. rules on single- and multi-unit stations, rate-based stations, two products by plan, QC, CONWIP -------------

IDEALS = [None, 0.6, {"A": 0.9, "B": 1.4}]


@st.composite
def rules_lines(draw: Any) -> tuple[LineSpec, int]:
    """Two products by a repeating plan through s1 (one unit: cleaning, changeovers, operating-basis failures), s2
    (rate-based, 1-2 units, yields, ideal time from the rate or given) and s3 (the last, one unit: calendar-basis
    failures, yields, rejects, a hold time from s1 that scraps), under a WIP limit until s2 and with a QC lab after
    the line (OEE counts the line's exits, not QC's approvals). Warm-up 0 (a batch begun at the log's first
    instant), or one that batches straddle; a horizon that ends with batches in process."""
    cleaning: dict[str, Any] = {"major": draw(st.sampled_from([0.5, {"dist": "exponential", "mean": 0.4}]))}
    if draw(st.booleans()):
        cleaning["minor"] = 0.1
    cleaning["due"] = {"batches": draw(st.integers(2, 6))}
    s1: dict[str, Any] = {
        "name": "s1", "process_time": {"A": draw(st.sampled_from(DISTS)), "B": draw(st.sampled_from(DISTS))},
        "setup": {"A->B": draw(st.sampled_from([0.4, {"dist": "exponential", "mean": 0.3}])), "B->A": 0.2},
        "cleaning": cleaning,
        "failures": {"mtbf": draw(st.sampled_from([{"dist": "exponential", "mean": 5.0}, OFF])), "mttr": 0.6},
    }  # fmt: skip
    s2: dict[str, Any] = {
        "name": "s2", "units": draw(st.integers(1, 2)), "buffer": draw(st.integers(0, 2)),
        "rate": {"units_per_hour": draw(st.sampled_from([8.0, 15.0])), "startup": 0.2,
                 "cv": draw(st.sampled_from([0.0, 0.3]))},
        "quality": {"yield": draw(st.sampled_from([1.0, 0.9]))},
        "failures": {"mtbf": draw(st.sampled_from([{"dist": "exponential", "mean": 8.0}, OFF])), "mttr": 0.4},
    }  # fmt: skip
    s3: dict[str, Any] = {
        "name": "s3", "buffer": draw(st.integers(0, 2)), "process_time": draw(st.sampled_from(DISTS)),
        "quality": {"yield": draw(st.sampled_from([1.0, 0.95])),
                    "reject_probability": draw(st.sampled_from([1e-9, 0.2]))},
        "failures": {"mtbf": draw(st.sampled_from([{"dist": "exponential", "mean": 6.0}, OFF])), "mttr": 0.5,
                     "basis": "calendar"},
    }  # fmt: skip
    for station in (s1, s2, s3):
        ideal = draw(st.sampled_from(IDEALS))
        if ideal is not None:
            station["ideal_time"] = ideal
    data = {
        "name": "oee-rules", "horizon": draw(st.sampled_from([37.3, 60.0, 91.7])),
        "warmup": draw(st.sampled_from([0.0, 4.1, 15.0])), "stations": [s1, s2, s3],
        "products": [{"name": "A", "batch_size": 10, "mass_kg": 4}, {"name": "B", "batch_size": 20, "mass_kg": 9}],
        "release": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": draw(st.integers(1, 3))},
                                                           {"product": "B", "batches": draw(st.integers(1, 3))}],
                    "wip_limit": {"batches": draw(st.integers(1, 4)), "until": "s2"}},
        "hold_times": [{"from": "s1", "to": "s3", "max": draw(st.sampled_from([2.0, 5.0, OFF]))}],
        "qc": {"analysts": draw(st.integers(1, 2)), "test_time": {"dist": "exponential", "mean": 1.5},
               "oos_probability": draw(st.sampled_from([0.0, 0.3]))},
    }  # fmt: skip
    return LineSpec.from_dict(data), draw(st.integers(0, 2**31))


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rules_lines())
def test_oee_equals_compute_kpis_on_lines_with_batch_rules(case: tuple[LineSpec, int]) -> None:
    spec, seed = case
    ev = Evaluator(spec, seed=seed, replications=3, max_units=(1, 2, 1), max_buffer=2, batches=BATCHES,
                   wip_limits=(1, 4), max_analysts=2)  # fmt: skip
    ev.failures = FAILURES
    exact_oee(ev, spec, seed, 3)


# -- 2. stations of several units: cleaning, changeovers, rejects and scraps; two products by mix ----------------


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=multiunit_lines(), warmup=st.sampled_from([0.0, 10.0, 33.3]), ideal=st.sampled_from(IDEALS),
       horizon=st.sampled_from([57.1, 120.0]))  # fmt: skip
def test_oee_equals_compute_kpis_on_stations_of_several_units(
    case: tuple[LineSpec, int], warmup: float, ideal: Any, horizon: float
) -> None:
    spec, seed = case
    data = spec.to_data()
    data.update(warmup=warmup, horizon=horizon)
    if ideal is not None:  # the multi-unit station valued at a given ideal time
        data["stations"][1]["ideal_time"] = ideal
    spec = LineSpec.from_dict(data)
    exact_oee(multiunit_evaluator(spec, seed, 3, (1, 3, 2)), spec, seed, 3)


# -- 3. released by arrivals, a plan that ends (before the horizon or not), failures while waiting ------------------


@st.composite
def arrival_lines(draw: Any) -> tuple[LineSpec, int]:
    """One product, a plan of 5-40 batches released at random interarrival times (no repeat: the window ends with
    the last batch out, or at the horizon with batches in process), through s1 (calendar-basis failures: while it
    waits too), s2 (1-2 units, operating-basis failures) and s3 (rate-based, yields)."""
    failures = [{"dist": "exponential", "mean": 5.0}, OFF]
    stations = [
        {"name": "s1", "process_time": draw(st.sampled_from(DISTS)),
         "failures": {"mtbf": draw(st.sampled_from(failures)), "mttr": 0.7, "basis": "calendar"}},
        {"name": "s2", "units": draw(st.integers(1, 2)), "buffer": draw(st.integers(0, 2)),
         "process_time": draw(st.sampled_from(DISTS)),
         "failures": {"mtbf": draw(st.sampled_from(failures)), "mttr": {"dist": "exponential", "mean": 0.5}}},
        {"name": "s3", "buffer": draw(st.integers(0, 2)), "quality": {"yield": draw(st.sampled_from([1.0, 0.85]))},
         "rate": {"units_per_hour": draw(st.sampled_from([7.0, 20.0])), "startup": 0.1,
                  "cv": draw(st.sampled_from([0.0, 0.2]))}},
    ]  # fmt: skip
    for station in stations:
        ideal = draw(st.sampled_from([None, 0.8]))
        if ideal is not None:
            station["ideal_time"] = ideal
    data = {
        "name": "oee-arrivals", "horizon": draw(st.sampled_from([25.0, 48.5, 90.0])),
        "warmup": draw(st.sampled_from([0.0, 3.3, 12.0])), "stations": stations,
        "products": [{"name": "P", "batch_size": 12}],
        "release": {"mode": "plan", "repeat": False, "plan": [{"product": "P", "batches": draw(st.integers(5, 40))}],
                    "interarrival": {"dist": "exponential", "mean": draw(st.sampled_from([0.5, 1.6]))}},
    }  # fmt: skip
    return LineSpec.from_dict(data), draw(st.integers(0, 2**31))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=arrival_lines())
def test_oee_equals_compute_kpis_on_finite_plans_released_by_arrivals(case: tuple[LineSpec, int]) -> None:
    spec, seed = case
    ev = Evaluator(spec, seed=seed, replications=3, max_units=(1, 2, 1), max_buffer=2, batches=40)
    ev.failures = FAILURES
    exact_oee(ev, spec, seed, 3)


# -- 4. edge cases -------------------------------------------------------------------------------------------------


def two_stations(first: Any, second: Any, **top: Any) -> LineSpec:
    data: dict[str, Any] = {
        "name": "edge", "horizon": 30.0, "warmup": 5.0,
        "stations": [{"name": "s1", **first}, {"name": "s2", **second}], **top,
    }  # fmt: skip
    return LineSpec.from_dict(data)


def kernel_and_engine(spec: LineSpec, seed: int = 5, replications: int = 2) -> tuple[Evaluation, np.ndarray]:
    return exact_oee(Evaluator(spec, seed=seed, replications=replications, batches=64), spec, seed, replications)


def test_no_batch_out_in_the_window_and_no_finish_at_all() -> None:
    # s1 finishes batches, none leaves s2 before the horizon: the line made nothing (0, valued nowhere)
    res, engine = kernel_and_engine(two_stations({"process_time": 1.0}, {"process_time": 50.0}))
    assert (engine == 0).all() and (res.constraint[0] == -1).all()
    # nothing finishes anywhere: no OEE (NaN), as compute_kpis says
    res, engine = kernel_and_engine(two_stations({"process_time": 40.0}, {"process_time": 1.0}))
    assert np.isnan(engine).all() and np.isnan(res.oee[0]).all()


def test_batches_in_process_across_the_window_start_and_end() -> None:
    # s2 (the constraint) takes 7 h a batch: batches straddle the warm-up (5 h, 12 h) and the horizon; failures
    # split processing, so a straddling batch earns its ideal hours by the share of its processing in the window
    failures = {"mtbf": {"dist": "exponential", "mean": 4.0}, "mttr": {"dist": "exponential", "mean": 0.7}}
    for warmup, horizon in ((5.0, 30.0), (12.0, 40.0), (0.0, 33.0)):
        spec = two_stations(
            {"process_time": 0.5}, {"process_time": 7.0, "ideal_time": 6.0, "failures": failures},
            warmup=warmup, horizon=horizon,
        )  # fmt: skip
        res, engine = kernel_and_engine(spec, replications=3)
        assert (res.constraint[0] == 1).all() and (engine > 0).all()


def test_a_batch_begun_at_the_log_start_earns_at_most_its_processing() -> None:
    # warm-up 0: the first batch (A, 0.3 h against an ideal 1 h) starts at 0, where the log begins, so it earns at
    # most the 0.3 h of processing the log shows; later A batches earn their full hour. The station's hours earned
    # bind: 13 batches out by 19.25 h, a B batch 0.05 h into its processing at the horizon, 12.35 h earned
    data = {
        "name": "censored", "horizon": 19.25, "warmup": 0.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 10}],
        "release": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": 1},
                                                           {"product": "B", "batches": 3}]},
        "stations": [{"name": "s1", "process_time": {"A": 0.3, "B": 2.0}, "ideal_time": 1.0}],
    }  # fmt: skip
    _, engine = kernel_and_engine(LineSpec.from_dict(data), replications=1)
    assert engine[0] == pytest.approx(12.35 / 19.25, rel=1e-12)


def test_a_rate_based_constraint_with_yields() -> None:
    # s1 loses 20% of the units; s2, rate-based, is the constraint: its ideal hours are the units it got over the
    # nameplate rate, and the line's good output is what is left after both yields and rejects
    spec = two_stations(
        {"process_time": {"dist": "exponential", "mean": 0.5}, "quality": {"yield": 0.8}},
        {"rate": {"units_per_hour": 10.0, "startup": 0.3, "cv": 0.2, "speed_loss": 0.1},
         "quality": {"yield": 0.9, "reject_probability": 0.2}},
        products=[{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 25}],
        release={"mode": "saturated", "mix": {"A": 1, "B": 1}}, horizon=80.0,
    )  # fmt: skip
    res, engine = kernel_and_engine(spec, replications=3)
    assert (res.constraint[0] == 1).all() and (engine > 0).all()


def test_oee_is_of_the_line_exits_not_of_qc_approvals() -> None:
    # every batch fails QC: none is approved, yet the line's OEE counts what left the last station
    spec = two_stations({"process_time": 1.0}, {"process_time": {"dist": "exponential", "mean": 1.2}},
                        qc={"analysts": 1, "test_time": 0.5, "oos_probability": 1.0}, horizon=60.0)  # fmt: skip
    res, engine = kernel_and_engine(spec)
    assert (engine > 0).all() and (res.rejected[0] > 0).all()


# -- 5. the objective runs on the kernel where it is exact, on the engine elsewhere ---------------------------------


def test_designs_with_other_speeds_and_units_value_oee_as_their_specs_do() -> None:
    # a design's speeds divide processing and ideal times (its spec: ``Problem.spec_for``); a rate-based station's
    # ideal time stays its units over the nameplate rate; the units of a design divide the hours per unit
    spec = two_stations(
        {"process_time": {"dist": "gamma", "mean": 0.9, "sd": 0.3}, "ideal_time": 0.7},
        {"units": 1, "process_time": {"dist": "uniform", "low": 0.6, "high": 1.6}, "quality": {"yield": 0.9}},
        horizon=50.0,
    )  # fmt: skip
    problem = build_problem(spec, ["stations.*.speed=0.6..1.5", "stations.s2.units=1..2"], objective="oee")
    designs = [(1.3, 0.7, 2), (0.8, 1.45, 1), (1.0, 1.0, 2)]
    arrays = problem.arrays(designs)
    ev = Evaluator(spec, seed=9, replications=2, max_speed=1.5, min_speed=0.6, max_units=(1, 2))
    res = ev.evaluate(**arrays)
    for i, design in enumerate(designs):
        one = Evaluation(**{k: v[i : i + 1] for k, v in vars(res).items() if k != "extra"})
        assert_oee_equal(one, simulate(problem.spec_for(design), seed=9, replications=2), problem.spec_for(design))


def test_stations_that_tie_are_valued_at_the_first_of_them() -> None:
    # three products through two stations with the same ideal hours per unit and no yield between them: their needed
    # hours are equal in exact arithmetic and differ in the last bits, in an order that depends on how a sum is
    # rounded; the stated rule (twin.kpis.report.OEE_TIE) makes the first the constraint, in compute_kpis and in the
    # kernel alike, on any machine
    ideal = {"A": 0.5, "B": 0.7, "C": 0.3}
    spec = LineSpec.from_dict({
        "name": "tie", "horizon": 120.0, "warmup": 10.0,
        "products": [{"name": "A", "batch_size": 7}, {"name": "B", "batch_size": 11}, {"name": "C", "batch_size": 13}],
        "release": {"mode": "saturated", "mix": {"A": 1, "B": 1, "C": 1}},
        "stations": [
            {"name": "s1", "process_time": {"dist": "gamma", "mean": 0.6, "sd": 0.2}, "ideal_time": ideal},
            {"name": "s2", "process_time": {"dist": "uniform", "low": 0.5, "high": 0.8}, "ideal_time": ideal},
            {"name": "s3", "process_time": 0.2, "ideal_time": 0.1},
        ],
    })  # fmt: skip
    res, engine = kernel_and_engine(spec, seed=3, replications=4)
    assert (res.constraint[0] == 0).all() and len(engine) == 4
    # and the rule itself: within the tolerance the first station, beyond it the largest
    from twin.kpis.report import OEE_TIE, valued_oee

    def constraint(needed: list[float]) -> int:
        ideal_sum, quantity_sum = np.array(needed)[:, None], np.ones((len(needed), 1))
        return valued_oee(ideal_sum, quantity_sum, [1] * len(needed), np.ones(1), lambda c: (1.0, 1.0), 1.0)[1]

    assert constraint([3.0, 3.0 * (1 + OEE_TIE / 2), 1.0]) == 0
    assert constraint([3.0, 3.0 * (1 + OEE_TIE * 2), 1.0]) == 1
    assert constraint([1.0, 3.0, 3.0 - 1e-15]) == 1


def test_oee_is_a_kernel_objective() -> None:
    assert OBJECTIVES["oee"].kernel == "oee"


def test_cli_oee_search_runs_on_the_kernel_and_agrees_with_simpy(tmp_path: Any) -> None:
    path = tmp_path / "line.yaml"
    path.write_text(
        """\
name: oee-cli
horizon: 80 h
warmup: 8 h
products: [{name: A, batch_size: 10}]
stations:
  - {name: s1, process_time: {dist: exponential, mean: 1 h}, quality: {yield: 0.9}}
  - {name: s2, buffer: 1, rate: {units_per_hour: 9, startup: 0.2 h, cv: 0.2}, ideal_time: 1 h}
  - {name: s3, buffer: 1, process_time: {dist: gamma, mean: 1.1 h, sd: 0.4 h}, quality: {reject_probability: 0.1}}
"""
    )
    done = run_cli("optimize", str(path), "--vary", "stations.*.buffer=0..2", "--objective", "oee", "--json",
                   "--evals", "12", "-r", "2", "--confirm", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["exact"] is True and report["evaluator"] == "jax"
    best = report["best"]
    assert abs(best["evaluator_minus_simpy"]["oee"]) < 1e-9
    assert best["max_replication_error"]["oee"] < 1e-9
    assert best["evaluator"]["oee"] == pytest.approx(best["simpy"]["oee"]["mean"], rel=1e-9)
    table = run_cli("optimize", str(path), "--vary", "stations.s2.buffer=0..2", "--objective", "oee",
                    "--evals", "3", "-r", "2", "--confirm", "2")  # fmt: skip
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "Line OEE" in line)
    figures = row.split(")", 1)[1].split()  # SimPy's mean ± half-width, the evaluator's, the difference
    assert figures[-1] == "+0.0" and figures[-2] == figures[0], row


def test_oee_of_the_built_in_lines_runs_on_the_kernel() -> None:
    for name in ("osd-tablet", "sterile-fill-finish"):  # every rule of both in the event kernel
        spec = load_spec(name)
        assert not _use_engine(build_problem(spec, ["qc.analysts=1..3"], objective="oee"), "auto")
        assert Evaluator(spec).approximations() == ()
    # a rule the kernels do not follow (a split): the engine runs OEE, and the evaluator says why
    data = load_spec("osd-tablet").to_data()
    data["stations"][0]["split"] = 2
    spec = LineSpec.from_dict(data)
    assert _use_engine(build_problem(spec, ["qc.analysts=1..3"], objective="oee"), "auto")
    assert Evaluator(spec).approximations()
