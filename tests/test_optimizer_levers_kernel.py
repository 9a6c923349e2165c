"""The levers of the batch rules as variables of the JAX kernel: QC analysts, cleaning due thresholds, the WIP
limit and campaign lengths (and operator headcounts, in the event kernel) take a value per design, so one compilation
serves every design of a range, and every batch's departure and QC approval equals the engine's run of that design's
spec to 1e-9 on the same draws.

Each test compiles one kernel for all its designs (compiling is the cost); the engine runs each design's spec
(``Problem.spec_for``: the same overrides ``twin optimize`` confirms with).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_optimizer_exactness import engine_departures, line_specs
from test_optimizer_qc import LAB_SHIFTS, engine_qc, qc_line

from optimizers.api import _use_engine, make_evaluator
from optimizers.engine_eval import EngineEvaluator
from optimizers.evaluator import Evaluator, evaluator_sizes
from optimizers.lines import EVENT_RULES, KERNEL_RULES, lever_inputs, line_arrays
from optimizers.problem import LEVERS, Problem, build_problem
from twin.engine import simulate
from twin.errors import InputError
from twin.kpis.report import compute_kpis
from twin.models import load_spec
from twin.spec.model import LineSpec

QC_TIMES = ("qc_start", "qc_end", "qc_out")
CHUNK = 9  # designs per kernel call: tests of one line share its compilation


def assert_designs_equal_engine(
    problem: Problem, designs: list[tuple], seed: int, replications: int = 2, kpis: bool = False
) -> Any:
    """One evaluator (one compilation) for ``designs``: every departure of every station and every QC start, end
    and outcome before the horizon equals the engine's run of the design's spec (1e-9), and the engine has no other
    (``kpis``: so do throughput, lead time, line OEE and utilizations, against ``compute_kpis``).
    Returns the evaluation and each design's engine departures (to check that the levers change the run)."""
    arrays = problem.arrays(designs)
    sizes = evaluator_sizes(problem.arrays(problem.extremes()))  # as ``twin optimize`` makes it: the whole range
    ev = Evaluator(problem.spec, seed=seed, replications=replications, record=True, chunk=CHUNK, **sizes)
    assert ev.approximations() == ()
    res = ev.evaluate(**arrays)
    seen = []
    for i, design in enumerate(designs):
        spec = problem.spec_for(design)
        own = lever_inputs(line_arrays(spec))  # the design's inputs are what its spec compiles to, to the bit
        for key, value in own.items():
            assert np.array_equal(arrays[key][i], value), (design, key, arrays[key][i], value)
        horizon = spec.horizon_hours
        log = simulate(spec, seed=seed, replications=replications)
        table = log.table
        if kpis:
            core = compute_kpis(log).per_replication
            for kpi, column in (("throughput", "throughput_per_hour"), ("lead_time", "lead_time_hours"),
                                ("oee", "oee")):  # fmt: skip
                np.testing.assert_allclose(getattr(res, kpi)[i], core[column], rtol=1e-9, err_msg=f"{design} {kpi}")
            for j, s in enumerate(spec.stations):
                np.testing.assert_allclose(res.utilization[i, :, j], core[f"{s.name}.utilization"], rtol=1e-9)
        for r in range(replications):
            rows = table[table["replication"] == r]
            engine = engine_departures(rows, [s.name for s in spec.stations])
            dep, batch, valid = (res.extra[k][i, r] for k in ("departure", "batch", "valid"))
            compared = 0
            for t, j in zip(*np.nonzero(valid & (dep <= horizon)), strict=True):
                key = (int(j), int(batch[t, j]))
                assert key in engine, f"design {design}, replication {r}: {key} leaves in the kernel only"
                assert abs(engine[key] - dep[t, j]) < 1e-9, (design, r, key, engine[key], dep[t, j])
                compared += 1
            assert compared == sum(1 for t in engine.values() if t <= horizon), (design, r)
            seen.append(engine)
            if spec.qc is None:
                continue
            qc = engine_qc(rows)
            compared = 0
            for t in np.flatnonzero(valid[:, -1]):
                b = int(batch[t, -1])
                for event in QC_TIMES:
                    x = res.extra[event][i, r, t]
                    if x <= horizon:
                        assert abs(qc[(event, b)] - x) < 1e-9, (design, r, b, event, qc[(event, b)], x)
                        compared += 1
                if res.extra["qc_out"][i, r, t] <= horizon:
                    assert ("approve" if res.extra["qc_approved"][i, r, t] else "reject", b) in qc, (design, r, b)
            assert compared == sum(1 for (e, _), x in qc.items() if e in QC_TIMES and x <= horizon), (design, r)
    return res, seen


def lever_line(repeat: bool = True) -> LineSpec:
    """Cleaning due in batches, hours and kg at two stations, a two-unit station, CONWIP at the last station, a
    plan of two campaigns, and a QC lab on a shift calendar: every lever of the batch rules the kernel takes."""
    data: dict[str, Any] = {
        "name": "levers", "horizon": 400.0 if repeat else 2000.0, "warmup": 20.0, "start": "2026-12-04T16:20",
        "products": [{"name": "A", "batch_size": 10, "mass_kg": 40}, {"name": "B", "batch_size": 20, "mass_kg": 90}],
        "release": {"mode": "plan", "repeat": repeat, "plan": [{"product": "A", "batches": 3}, {"product": "B",
                    "batches": 2}], "wip_limit": {"batches": 3, "until": "s3"}},
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0},
             "cleaning": {"minor": 0.2, "major": {"dist": "gamma", "mean": 1.2, "sd": 0.3},
                          "due": {"batches": 4, "hours": 9.0, "kg": 300.0}}},
            {"name": "s2", "units": 2, "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.6, "sd": 0.5}},
            {"name": "s3", "buffer": 2, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.3},
             "cleaning": {"major": 1.0, "due": {"batches": 3}}},
        ],
        "calendars": {"lab": {"shifts": LAB_SHIFTS}},
        "qc": {"analysts": 2, "calendar": "lab", "test_time": {"dist": "exponential", "mean": 1.2},
               "incubation": {"dist": "triangular", "low": 2, "mode": 4, "high": 12}, "oos_probability": 0.2},
    }  # fmt: skip
    if not repeat:
        data["release"]["plan"] = [{"product": "A", "batches": 30}, {"product": "B", "batches": 20}]
    return LineSpec.from_dict(data)


VARY = [
    "qc.analysts=1..5",  # (above 4: more analyst slots than the spec's count needs)
    "stations.*.cleaning.due.batches=2..6",
    "stations.s1.cleaning.due.hours=5..30",
    "stations.s1.cleaning.due.kg=150..600",
    "release.wip_limit.batches=2..5",
    "release.plan.*.batches=1..4",
]


@pytest.mark.slow
@pytest.mark.parametrize("repeat", [True, False])
def test_every_lever_in_one_kernel_equals_the_engine(repeat: bool) -> None:
    spec = lever_line(repeat)
    vary = VARY if repeat else [*VARY[:-1], "release.plan.*.batches=10..40"]  # a plan that ends: 20 to 80 batches
    problem = build_problem(spec, vary)
    assert problem.kernel_only and not _use_engine(problem, "auto")
    assert [d.kind for d in problem.dims] == ["qc_analysts", "cleaning_due_batches", "cleaning_due_batches",
                                              "cleaning_due_hours", "cleaning_due_kg", "wip_limit",
                                              "campaign_batches", "campaign_batches"]  # fmt: skip
    rng = np.random.default_rng(5)
    designs = [problem.baseline(), tuple(d.low for d in problem.dims), tuple(d.high for d in problem.dims)]
    for _ in range(3):  # hours and kg off the grid: a threshold as the engine reads it from the override
        designs.append(tuple(
            int(rng.integers(d.low, d.high + 1)) if d.integer else float(rng.uniform(d.low, d.high))
            for d in problem.dims
        ))  # fmt: skip
    res, seen = assert_designs_equal_engine(problem, designs, seed=3)
    assert len({tuple(sorted(e.items())) for e in seen}) == len(seen)  # every design runs its own way
    if not repeat:  # the plan ends after the design's campaigns: every batch of them leaves, no other
        lengths = problem.arrays(designs)["campaigns"].sum(axis=1)
        for i in range(len(designs)):
            for r in range(2):
                assert res.extra["valid"][i, r, :, -1].sum() == lengths[i]
                assert sum(1 for j, _ in seen[2 * i + r] if j == 2) == lengths[i]


def test_each_lever_changes_the_run_alone() -> None:
    """Each lever moved alone from the spec's value changes the engine's departures (or QC times) and the kernel
    follows it: no lever is passed over (a mutation that ignored one would fail here)."""
    spec = lever_line()
    problem = build_problem(spec, VARY)
    base = problem.baseline()
    designs = [base]
    for i, d in enumerate(problem.dims):
        moved = list(base)
        moved[i] = d.low if d.low != d.base else d.high
        designs.append(tuple(moved))
    res, seen = assert_designs_equal_engine(problem, designs, seed=11)
    qc = res.extra["qc_out"][:, 0]
    for i, d in enumerate(problem.dims, start=1):
        changed = seen[2 * i] != seen[0] or not np.array_equal(qc[i], qc[0])
        assert changed, f"{d.label} = {designs[i][i - 1]} changes nothing"


@st.composite
def lever_problems(draw: Any) -> Problem:
    """A random kernel-exact line with batch rules (``line_specs(rules=True)``), a QC lab on one of them, and
    every lever of the batch rules it has varied around the spec's value (the WIP limit never below it: below, the
    kernel may leave CONWIP to the engine)."""
    spec = draw(line_specs(rules=True))
    vary = []
    for s in spec.stations:
        due = s.cleaning.due if s.cleaning is not None else None
        if due is not None and due.batches is not None:
            vary.append(f"stations.{s.name}.cleaning.due.batches=1..{due.batches + 3}")
        if due is not None and due.kg is not None:
            vary.append(f"stations.{s.name}.cleaning.due.kg={due.kg / 2:g}..{due.kg * 2:g}")
    if spec.release.wip_limit is not None:
        vary.append(f"release.wip_limit.batches={spec.release.wip_limit.batches}..{spec.release.wip_limit.batches + 3}")
    if spec.release.plan:  # (a plan that ends: its number of batches per design too)
        vary.append("release.plan.*.batches=1..5" if spec.release.repeat else "release.plan.*.batches=5..40")
    if draw(st.booleans()) or not vary:  # a QC lab after the line
        data = spec.to_data()
        data["qc"] = {"analysts": draw(st.integers(1, 2)), "test_time": {"dist": "exponential", "mean": 1.0},
                      "oos_probability": 0.2}  # fmt: skip
        spec = LineSpec.from_dict(data)
        vary.append("qc.analysts=1..4")
    return build_problem(spec, vary)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=lever_problems(), seed=st.integers(0, 2**31), picks=st.randoms(use_true_random=False))
def test_random_lines_with_levers_equal_the_engine(problem: Problem, seed: int, picks: Any) -> None:
    """Random lines, two a run (each compiles once; the fixed line above tries every lever): three designs of the
    levers' ranges in one kernel."""
    designs = [problem.baseline()]
    for _ in range(2):
        designs.append(tuple(
            picks.randint(int(d.low), int(d.high)) if d.integer else picks.uniform(d.low, d.high) for d in problem.dims
        ))  # fmt: skip
    assert_designs_equal_engine(problem, designs, seed)


def test_twin_optimize_of_qc_analysts_runs_on_the_kernel_and_is_exact(tmp_path: Path) -> None:
    qc = {"analysts": 1, "test_time": {"dist": "exponential", "mean": 1.5}, "oos_probability": 0.2,
          "incubation": {"dist": "triangular", "low": 1, "mode": 2, "high": 5}}  # fmt: skip
    path = tmp_path / "qc.yaml"
    path.write_text(yaml.safe_dump(qc_line(qc).to_data(), sort_keys=False))
    done = run_cli("optimize", str(path), "--vary", "qc.analysts=1..3", "--objective", "release_lead_time",
                   "--json", "-r", "2", "--confirm", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["evaluator"] == "jax" and report["exact"] is True, report["approximations"]
    assert report["evaluations"] == 3
    for c in report["confirmed"]:
        assert c["max_replication_error"], c
        assert all(gap < 1e-9 for gap in c["max_replication_error"].values()), c["max_replication_error"]
    # more analysts, shorter waits for QC: SimPy's best is the most analysts
    assert report["best"]["values"]["qc.analysts"] == 3


def test_a_lever_the_kernel_cannot_take_goes_to_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skid capacity has no kernel input (its rule is not in the kernel), headcount is the event kernel's only (on a
    line with other rules, the scan kernel's, it is not a kernel variable): with them, or on a line the kernel is not
    exact for, or a WIP limit whose range leaves the kernel's CONWIP, the engine scores."""
    taken = {lever.kind for lever in LEVERS if lever.in_kernel(events=False)}
    assert taken == {"qc_analysts", "cleaning_due_batches", "cleaning_due_hours", "cleaning_due_kg", "wip_limit",
                     "campaign_batches"}  # fmt: skip
    assert {lever.kind for lever in LEVERS if lever.in_kernel(events=True)} == {*taken, "headcount"}
    for events in (False, True):
        rules = (None, *KERNEL_RULES, *(EVENT_RULES if events else ()))
        assert all(lever.in_kernel(events) == (lever.kernel is not None and lever.rule in rules) for lever in LEVERS)
    tablet = load_spec("osd-tablet")  # (every rule in the event kernel: headcount is a kernel lever there)
    problem = build_problem(tablet, ["skids.wash-skid.capacity=1..2"])
    assert not problem.kernel_only and _use_engine(problem, "auto")
    assert _use_engine(build_problem(tablet, ["operators.packaging-team.headcount=2..4"]), "auto") is False
    # a minor clean off the skid with a dirty hold is not in the event kernel: there the scan kernel would run, which
    # leaves the operators out, so headcount goes to the engine, and a kernel lever too (the kernel is not exact)
    data = tablet.to_data()
    granulation = next(s for s in data["stations"] if s["name"] == "granulation")
    granulation["cleaning"] = {**granulation["cleaning"], "skid_for": ["major"], "dirty_hold": "24 h"}
    outside = LineSpec.from_dict(data)
    problem = build_problem(outside, ["operators.packaging-team.headcount=2..4"])
    assert not problem.kernel_only and _use_engine(problem, "auto")
    problem = build_problem(outside, ["qc.analysts=1..3"])
    assert problem.kernel_only and _use_engine(problem, "auto")
    line = lever_line()
    assert _use_engine(build_problem(line, ["qc.analysts=1..3", "stations.s2.buffer=0..2"]), "auto") is False
    # a WIP limit of 1 is within the extra unit before s3: the kernel leaves CONWIP, and says so
    low = build_problem(line, ["release.wip_limit.batches=1..3"])
    assert low.kernel_only and _use_engine(low, "auto")
    (why,) = make_evaluator(low, 1, 1, "cpu").approximations()
    assert why.startswith("release.wip_limit: CONWIP of 1 batches within the extra units before s3")
    assert make_evaluator(build_problem(line, ["release.wip_limit.batches=2..3"]), 1, 1, "cpu").approximations() == ()
    # derived from the kernel's rule coverage: without the QC rule in the kernel, QC analysts go to the engine
    monkeypatch.setattr("optimizers.problem.KERNEL_RULES", KERNEL_RULES - {"qc"})
    assert not build_problem(line, ["qc.analysts=1..3"]).kernel_only
    assert build_problem(line, ["release.wip_limit.batches=2..3"]).kernel_only


def test_the_wip_limit_varies_where_batches_leave_before_its_station() -> None:
    """CONWIP whose release waits for the L-th latest start or early exit (rejects and a hold time that scraps before
    the limit's station, which has two units with changeovers): each design's own limit, in one kernel."""
    spec = LineSpec.from_dict({
        "name": "wip-exits", "horizon": 200.0, "warmup": 10.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 10}],
        "release": {"mode": "saturated", "mix": {"A": 1, "B": 1}, "wip_limit": {"batches": 2, "until": "s3"}},
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 0.8},
             "quality": {"yield": 0.9, "reject_probability": 0.25}},
            {"name": "s2", "buffer": 1, "process_time": {"dist": "gamma", "mean": 0.9, "sd": 0.4}},
            {"name": "s3", "units": 2, "buffer": 1, "process_time": {"dist": "exponential", "mean": 2.2},
             "setup": {"A->B": 0.4, "B->A": {"dist": "exponential", "mean": 0.3}}},
            {"name": "s4", "buffer": 2, "process_time": 0.7},
        ],
        "hold_times": [{"from": "s1", "to": "s2", "max": 1.5, "action": "scrap"}],
    })  # fmt: skip
    problem = build_problem(spec, ["release.wip_limit.batches=1..4"])
    _, seen = assert_designs_equal_engine(problem, [(1,), (2,), (3,), (4,)], seed=5)
    assert seen[0] != seen[2] != seen[4]  # the limit binds: each design's run differs (two replications each)


# -- operator headcounts: inputs of the event kernel ------------------------------------------------------------------


def crews_line() -> LineSpec:
    """Three single-unit stations and two operator pools: the day team (a weekday shift) qualified for s1 and s2, an
    always-on crew for s3 and s2, whose crew of two is taken from the team first (pool order)."""
    days = ["mon", "tue", "wed", "thu", "fri"]
    return LineSpec.from_dict({
        "name": "crews", "horizon": 150.0, "warmup": 10.0,
        "calendars": {"day": {"shifts": [{"days": days, "start": "06:00", "end": "22:00"}]}},
        "operators": [{"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s1", "s2"]},
                      {"name": "crew", "headcount": 1, "qualified": ["s3", "s2"]}],
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 0.9}, "operators": {"count": 1}},
            {"name": "s2", "buffer": 2, "process_time": {"dist": "gamma", "mean": 1.0, "sd": 0.3},
             "operators": {"count": 2}},
            {"name": "s3", "buffer": 1, "process_time": {"dist": "uniform", "low": 0.4, "high": 1.2},
             "operators": {"count": 1}},
        ],
    })  # fmt: skip


HEADCOUNTS = ["operators.team.headcount=1..3", "operators.crew.headcount=1..3"]


def test_headcounts_per_design_in_one_event_kernel_equal_the_engine() -> None:
    """Every pair of headcounts in one evaluate call (one compilation): each design's departures and KPIs are the
    engine's for the spec with those headcounts, on the same draws; the pools' designs (1, 2) and (2, 1) differ."""
    problem = build_problem(crews_line(), HEADCOUNTS)
    assert problem.events and problem.kernel_only and not _use_engine(problem, "auto")
    designs = [(a, b) for a in (1, 2, 3) for b in (1, 2, 3)]
    _, seen = assert_designs_equal_engine(problem, designs, seed=4, kpis=True)
    by_design = {d: seen[2 * i : 2 * i + 2] for i, d in enumerate(designs)}
    assert by_design[(1, 2)] != by_design[(2, 1)] and by_design[(1, 3)] != by_design[(3, 1)]
    assert by_design[(1, 1)] != by_design[(2, 2)] != by_design[(3, 3)]


def test_headcounts_below_a_crew_are_invalid_designs_as_for_the_engine() -> None:
    """A design whose pools cannot staff a station's crew is an invalid spec: the kernel's evaluator marks it so with
    the spec's reason (as the engine evaluator does) and gives it no figures; ``evaluate`` refuses it, and a headcount
    below 1. (Nothing here compiles: the refused designs never reach the kernel.)"""
    data = crews_line().to_data()
    data["operators"][1]["qualified"] = ["s3"]  # s2's crew of two: the team's only
    problem = build_problem(LineSpec.from_dict(data), ["operators.team.headcount=1..3"])
    ev = make_evaluator(problem, 1, 1, "cpu")
    figures = ev.kpis(problem, [(1,)])
    assert np.isnan(figures["throughput"]).all() and np.isnan(figures["utilization"]).all()
    engine = EngineEvaluator(problem, 1, 1, workers=1)
    engine.kpis(problem, [(1,)])
    assert ev.invalid[(1,)].split(": ", 1)[1] in engine.invalid[(1,)], (ev.invalid, engine.invalid)
    for headcount in ([[1, 1]], [[0, 3]]):
        with pytest.raises(InputError, match="headcount"):
            ev.evaluate(headcount=headcount)


def test_twin_optimize_of_headcounts_runs_on_the_event_kernel_and_is_exact(tmp_path: Path) -> None:
    """``twin optimize --vary operators.POOL.headcount`` with a budget on operators: the event kernel scores every
    design (``exact: true``, ``evaluator: jax``), SimPy's confirmation agrees on the same draws, and the best design
    is SimPy's best on the search's draws (the engine's figures of every feasible design)."""
    spec = crews_line()
    path = tmp_path / "crews.yaml"
    path.write_text(yaml.safe_dump(spec.to_data(), sort_keys=False))
    done = run_cli("optimize", str(path), *(x for v in HEADCOUNTS for x in ("--vary", v)), "--budget", "operators=4",
                   "--objective", "lead_time", "--json", "-r", "2", "--confirm", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["evaluator"] == "jax" and report["exact"] is True, report["approximations"]
    assert report["evaluations"] == 6  # every design within 4 operators
    for c in report["confirmed"]:
        assert all(gap < 1e-9 for gap in c["max_replication_error"].values()), c["max_replication_error"]
        assert sum(c["values"].values()) <= 4
    problem = build_problem(spec, HEADCOUNTS, budget={"operators": 4}, objective="lead_time")
    feasible = [(a, b) for a in (1, 2, 3) for b in (1, 2, 3) if problem.feasible((a, b))]
    lead = {d: float(np.mean(compute_kpis(simulate(problem.spec_for(d), seed=1, replications=2))
                             .per_replication["lead_time_hours"])) for d in feasible}  # fmt: skip
    best = min(lead, key=lead.__getitem__)
    assert tuple(report["best"]["values"].values()) == best, (report["best"]["values"], lead)
    assert abs(report["history"][-1]["best_score"] - lead[best]) < 1e-9


def test_headcount_is_an_engine_lever_where_the_event_kernel_does_not_run() -> None:
    """On a line outside the event kernel's scope (failures on the wall clock at the station where a hold time ends),
    the scan kernel would run, leaving operators out: headcount goes to the engine, and ``--evaluator jax`` refuses
    it, naming the levers the kernel takes there. With buffers or a range of units (a slot per unit) varied too, it
    stays an event-kernel variable."""
    spec = crews_line()
    data = spec.to_data()
    data["stations"][1]["failures"] = {"mtbf": 20.0, "mttr": 0.5, "basis": "calendar"}
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 2.0, "action": "scrap"}]
    problem = build_problem(LineSpec.from_dict(data), HEADCOUNTS)
    assert not problem.events and not problem.kernel_only and _use_engine(problem, "auto")
    assert make_evaluator(problem, 1, 1, "cpu").events is False
    with pytest.raises(InputError, match="--evaluator jax") as err:
        _use_engine(problem, "jax")
    assert "headcount" not in str(err.value).split("varies")[1].split("and computes")[0]
    for varied in ("stations.s2.buffer=0..3", "stations.s1.units=1..2"):
        single = build_problem(spec, [*HEADCOUNTS, varied])
        assert single.events and single.kernel_only and make_evaluator(single, 1, 1, "cpu").events
