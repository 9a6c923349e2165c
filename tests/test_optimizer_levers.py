"""The levers engineers pull (headcount, cleaning, campaigns, QC, WIP, skids), the objectives they report,
constraints, and the engine evaluator that scores designs exactly where the JAX kernel is not exact."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_cli

from optimizers import optimize
from optimizers.engine_eval import EngineEvaluator
from optimizers.lines import EVENT_RULES, KERNEL_RULES, line_arrays
from optimizers.objectives import OBJECTIVES, parse_constraint
from optimizers.problem import build_problem
from optimizers.search import Search, run_method
from twin.engine.rules.registry import RULES, rules_used
from twin.errors import InputError
from twin.experiment import run
from twin.models import load_spec
from twin.spec.model import LineSpec

SHORT = ["horizon=6 w", "warmup=1 w"]
# the tablet line's packaging units and team: the tests that search them run one compiled kernel (the same sizes:
# units 1..2, a team of up to 4, 6 weeks, 2 replications), compiled by the first and loaded from the cache after
TABLET_LEVERS = ["stations.packaging.units=1..2", "operators.packaging-team.headcount=2..4"]
TABLET_LEVERS_FROM_ONE = [TABLET_LEVERS[0], "operators.packaging-team.headcount=1..4"]


def _field(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list):
            named = [x for x in data if isinstance(x, dict) and x.get("name") == part]
            data = named[0] if named else data[int(part)]
        else:
            data = data[part]
    return data


@pytest.mark.parametrize(
    ("line", "vary", "kind", "count"),
    [
        ("osd-tablet", "operators.*.headcount=1..5", "headcount", 3),
        ("osd-tablet", "stations.*.cleaning.due.batches=5..20", "cleaning_due_batches", 3),
        ("osd-tablet", "stations.granulation.cleaning.due.hours=72..336", "cleaning_due_hours", 1),
        ("osd-tablet", "release.plan.*.batches=1..8", "campaign_batches", 3),
        ("osd-tablet", "release.plan.ibu-400.batches=1..8", "campaign_batches", 1),
        ("osd-tablet", "qc.analysts=1..6", "qc_analysts", 1),
        ("osd-tablet", "skids.wash-skid.capacity=1..2", "skid_capacity", 1),
        ("sterile-fill-finish", "release.wip_limit.batches=1..4", "wip_limit", 1),
    ],
)
def test_every_lever_sets_its_spec_field(line: str, vary: str, kind: str, count: int) -> None:
    spec = load_spec(line)
    problem = build_problem(spec, [vary])
    assert [d.kind for d in problem.dims] == [kind] * count
    base = problem.baseline()
    for i, d in enumerate(problem.dims):
        assert d.low <= d.base <= d.high or d.base < d.low or d.base > d.high  # the spec's own value is kept
        design = list(base)
        design[i] = d.high
        changed = problem.spec_for(tuple(design))
        value = _field(changed.to_data(), d.path)
        hours = float(str(value).split()[0]) if d.hours else value
        assert hours == d.high, (d.label, value)
        # every other lever keeps the spec's value
        for j, other in enumerate(problem.dims):
            if j != i:
                assert _field(changed.to_data(), other.path) == _field(spec.to_data(), other.path)
        assert problem.diff(tuple(design)) == [(d.label, int(d.base) if d.integer else d.base, d.high)]


def test_campaign_lengths_and_order_vary_together() -> None:
    spec = load_spec("osd-tablet")
    problem = build_problem(spec, ["release.plan.*.batches=1..6", "release.plan=order"])
    design = (2, 5, 1, (2, 0, 1))
    plan = problem.spec_for(design).release.plan
    assert [(c.product, c.batches) for c in plan] == [("para-500", 1), ("ibu-200", 2), ("ibu-400", 5)]


def test_operator_budget_limits_total_headcount() -> None:
    problem = build_problem(load_spec("osd-tablet"), ["operators.*.headcount=1..4"], budget={"operators": 7})
    assert problem.feasible((2, 2, 3)) and not problem.feasible((3, 2, 3))
    assert sum(problem.repair(np.array([4.0, 4.0, 4.0]))) == 7
    with pytest.raises(InputError, match="no headcount variable"):
        build_problem(load_spec("osd-tablet"), ["qc.analysts=1..3"], budget={"operators": 7})


@pytest.mark.slow
def test_designs_that_are_not_valid_specs_are_never_picked() -> None:
    spec = load_spec("osd-tablet", SHORT)  # packaging needs 2 operators: a team of 1 cannot run it
    result = optimize(spec, TABLET_LEVERS_FROM_ONE, replications=2, confirm_replications=2, top=6, workers=1)
    assert result.evaluations == 8
    assert sorted(c.values["operators.packaging-team.headcount"] for c in result.confirmed) == [2, 2, 3, 3, 4, 4]
    with pytest.raises(InputError, match=r"invalid spec.*needs 2 operators"):
        optimize(spec, ["operators.packaging-team.headcount=1..2"], budget={"operators": 1}, replications=2,
                 confirm_replications=2, workers=1)  # fmt: skip


def test_engine_evaluator_is_the_engine_on_the_same_draws() -> None:
    spec = load_spec("osd-tablet", SHORT)
    problem = build_problem(spec, TABLET_LEVERS,
                            objective="oee", constraints=["scrapped_batches<=5", "release_lead_time<=1000"])  # fmt: skip
    designs = [(1, 2), (2, 2), (2, 4)]
    parallel = EngineEvaluator(problem, seed=3, replications=2, workers=2)
    try:
        figures = parallel.kpis(problem, designs)
    finally:
        parallel.close()
    serial = EngineEvaluator(problem, seed=3, replications=2, workers=1).kpis(problem, designs)
    for i, design in enumerate(designs):
        per_rep = run(problem.spec_for(design), replications=2, seed=3).kpis.per_replication
        for name in ("oee", "scrapped_batches", "release_lead_time"):
            expected = per_rep[OBJECTIVES[name].column].to_numpy(dtype=float) * OBJECTIVES[name].scale
            assert np.array_equal(figures[name][i], expected, equal_nan=True), name
            assert np.array_equal(serial[name][i], expected, equal_nan=True), name


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.mark.parametrize(
    ("line", "vary"),
    [
        ("osd-tablet", TABLET_LEVERS),
        ("sterile-fill-finish", ["stations.lyophilization.units=1..3", "release.wip_limit.batches=1..3"]),
    ],
)
def test_search_ranks_designs_as_simpy_does(line: str, vary: list[str]) -> None:
    spec = load_spec(line, SHORT)
    problem = build_problem(spec, vary, objective="throughput")
    search = Search(problem, EngineEvaluator(problem, seed=5, replications=2, workers=1), 100)
    run_method(search, "exhaustive")
    designs = list(search.archive)
    assert len(designs) >= 6
    evaluator = np.array([search.archive[d].throughput for d in designs])
    simpy = np.array([run(problem.spec_for(d), 2, 5).kpis.summary["throughput_per_hour"]["mean"] for d in designs])
    assert np.array_equal(evaluator, simpy)  # same draws, same engine: equal to the last bit
    if np.ptp(simpy) > 0:
        assert _spearman(evaluator, simpy) == 1.0


def test_constraints_pick_the_best_design_that_meets_them() -> None:
    spec = load_spec("osd-tablet", SHORT)
    vary = TABLET_LEVERS
    free = optimize(spec, vary, objective="throughput", replications=2, confirm_replications=2, top=6, workers=1)
    leads = {c.design: c.kpis["lead_time"] for c in free.confirmed}
    bound = float(np.median(list(leads.values())))
    bounded = optimize(spec, vary, objective="throughput", constraints=[f"lead_time<={bound}"], replications=2,
                       confirm_replications=2, top=6, workers=1)  # fmt: skip
    assert bounded.target_met is True
    assert bounded.best.kpis["lead_time"] <= bound + 1e-12
    meeting = [c for c in bounded.confirmed if c.kpis["lead_time"] <= bound + 1e-12]
    assert bounded.best.kpis["throughput"] == max(c.kpis["throughput"] for c in meeting)
    report = bounded.to_json()
    assert report["exact"] is True and report["evaluator"] == "jax"  # (the event kernel: exact on the tablet line)
    assert report["constraints"] == [f"lead_time<={bound:g}"]


def test_objectives_other_than_throughput() -> None:
    spec = load_spec("osd-tablet", SHORT)
    vary = ["qc.analysts=1..3"]
    for objective in ("oee", "release_lead_time", "output_per_week", "scrapped_batches"):
        result = optimize(spec, vary, objective=objective, replications=2, confirm_replications=2, top=3, workers=1)
        sense = OBJECTIVES[objective].sense
        figures = [c.kpis[objective] for c in result.confirmed]
        best = max(figures) if sense == "max" else min(figures)
        assert result.best.kpis[objective] == best
        assert all(abs(e) < 1e-9 for e in result.best.error.values())  # an exact evaluator
    weekly = result.best.kpis["output_per_week"]
    assert weekly == pytest.approx(result.best.kpis["throughput"] * 168)


def test_constraint_parsing() -> None:
    assert str(parse_constraint("scrapped_batches<=2")) == "scrapped_batches<=2"
    assert parse_constraint("throughput=0.1").op == ">="
    for bad in ("oee", "oee<=x", "wip<=2", "oee=0.5", "lead_time<=-1", "lead_time<=inf"):
        with pytest.raises(InputError):
            parse_constraint(bad)


def test_exactness_is_derived_from_the_rule_registry() -> None:
    tablet = load_spec("osd-tablet")
    used = {rule.name for rule in rules_used(tablet)}
    assert {"cleaning", "operators", "qc", "hold_times", "rooms", "skids", "rate", "quality"} <= used <= EVENT_RULES
    assert line_arrays(tablet).approximations == ()  # the event kernel steps it
    # with a split (not an event-kernel rule) the scan kernel runs the line: the rules it leaves out are named
    data = tablet.to_data()
    data["stations"][0]["split"] = 2
    text = " ".join(line_arrays(LineSpec.from_dict(data)).approximations)
    for name in used:
        assert (RULES[name].label in text) == (name not in KERNEL_RULES), name


def test_cli_levers_exact_and_best_is_simpys_best() -> None:
    done = run_cli("optimize", "osd-tablet", "--vary", TABLET_LEVERS[0], "--vary", TABLET_LEVERS[1], "--objective",
                   "throughput", "--json", "--set", "horizon=6 w", "--set", "warmup=1 w", "-r", "2", "--confirm", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["exact"] is True and report["evaluator"] == "jax" and report["evaluations"] == 6
    best = report["best"]["simpy"]["throughput_per_hour"]["mean"]
    assert all(best >= c["simpy"]["throughput_per_hour"]["mean"] for c in report["confirmed"])
    assert all(abs(v) < 1e-9 for v in report["best"]["evaluator_minus_simpy"].values())
    table = run_cli("optimize", "osd-tablet", "--vary", "qc.analysts=2..3", "--objective", "release_lead_time",
                    "--target", "scrapped_batches<=50", "--set", "horizon=6 w", "--set", "warmup=1 w",
                    "-r", "2", "--confirm", "2")  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "subject to scrapped_batches<=50" in table.stdout and "by the JAX kernel" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "Release lead time" in line)
    simpy, evaluated, error = row.split(")")[-1].split()  # the KPI the evaluator computes: its figure beside SimPy's
    assert simpy == evaluated and error == "+0.0000", row


def test_jax_compilation_cache_is_kept_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "TWIN_JAX_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "flow.yaml"
    spec.write_text(
        "name: flow\nhorizon: 300\nwarmup: 30\nstations:\n"
        "  - {name: a, process_time: {dist: exponential, mean: 1.0}}\n"
        "  - {name: b, process_time: {dist: exponential, mean: 1.1}, buffer: 1}\n",
        encoding="utf-8",
    )
    done = run_cli("optimize", str(spec), "--vary", "stations.b.buffer=0..3", "--json", "-r", "2", "--confirm", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["evaluator"] == "jax"
    assert any((tmp_path / "cache").iterdir())  # compiled kernels stored for the next call


def test_a_search_and_its_confirmation_compile_one_kernel(caplog: pytest.LogCaptureFixture) -> None:
    import jax

    spec = LineSpec.from_dict({
        "name": "confirm-flow", "horizon": 317, "warmup": 31,  # (a horizon no other test's kernel has)
        "stations": [{"name": "a", "process_time": {"dist": "exponential", "mean": 1.0}},
                     {"name": "b", "process_time": {"dist": "exponential", "mean": 1.1}, "buffer": 1}],
    })  # fmt: skip
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        result = optimize(spec, ["stations.b.buffer=0..3"], replications=2, confirm_replications=3, top=3)
    compiled = [r for r in caplog.records if r.getMessage().startswith("Compiling jit(lane)")]
    assert len(compiled) == 1  # the confirmation (3 replications: two blocks of the search's 2) runs the search's kernel
    assert result.to_json()["evaluator"] == "jax" and len(result.confirmed) == 3
    for c in result.confirmed:  # on each of the 3 replications, the evaluator's figures are SimPy's
        assert all(e < 1e-9 for e in c.max_error.values()), c.max_error


def test_a_plan_done_before_the_warmup_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "plan.yaml"
    spec.write_text(
        "name: plan-line\nhorizon: 500\nwarmup: 100\n"
        "products: [{name: A, batch_size: 1}, {name: B, batch_size: 1}]\n"
        "release: {mode: plan, plan: [{product: A, batches: 3}, {product: B, batches: 3}]}\n"
        "stations:\n"
        "  - {name: m1, process_time: {dist: exponential, mean: 1.0}, setup: {'A->B': 2, 'B->A': 2}}\n"
        "  - {name: m2, process_time: {dist: exponential, mean: 1.2}, buffer: 2}\n",
        encoding="utf-8",
    )
    done = run_cli("optimize", str(spec), "--vary", "release.plan=order", "--objective", "makespan")
    assert done.returncode == 2 and "before the warm-up" in done.stderr and "Traceback" not in done.stderr
    fixed = run_cli("optimize", str(spec), "--vary", "release.plan=order", "--objective", "makespan", "--warmup", "0")
    assert fixed.returncode == 0, fixed.stderr
