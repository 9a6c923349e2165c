"""Optimizers: each finds the optimum that exhaustive enumeration finds with the same draws (CRN)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_cli, serial_line

from optimizers import optimize
from optimizers.api import make_evaluator
from optimizers.evaluator import Evaluator
from optimizers.problem import build_problem
from optimizers.search import Search, run_method
from twin.errors import InputError
from twin.experiment import run
from twin.spec.model import LineSpec

FAILURES = {"mtbf": {"dist": "exponential", "mean": 20.0}, "mttr": {"dist": "exponential", "mean": 2.0}}


def line(means: list[float], failures: bool = False, horizon: float = 1500.0, **extra: Any) -> LineSpec:
    data = serial_line(means, [None] + [0] * (len(means) - 1), horizon=horizon, warmup=100.0).to_data()
    if failures:
        for station in data["stations"]:
            station["failures"] = FAILURES
    data.update(extra)
    return LineSpec.from_dict(data)


def best_by(problem: Any, method: str, evaluations: int, replications: int = 8, evaluator: Any = None) -> Any:
    evaluator = evaluator or make_evaluator(problem, 1, replications, "cpu")
    search = Search(problem, evaluator, evaluations)
    assert run_method(search, method, seed=0) == method
    return search


CASES = {
    "buffers, balanced": (line([1, 1, 1, 1, 1]), ["stations.*.buffer=0..5"], {"buffers": 8}),
    "buffers, unbalanced": (line([0.8, 1.0, 1.3, 0.9, 1.0]), ["stations.*.buffer=0..5"], {"buffers": 8}),
    "buffers, unreliable": (line([1, 1, 1, 1], failures=True), ["stations.*.buffer=0..6"], {"buffers": 9}),
    "units, unbalanced": (line([1.0, 2.6, 1.4, 0.9, 2.0]), ["stations.*.units=1..4"], {"units": 10}),
    "units, unreliable": (line([1.0, 2.0, 1.5, 1.8], failures=True), ["stations.*.units=1..4"], {"units": 10}),
}


@pytest.mark.usefixtures("optimised_kernels")  # an exhaustive search: each kernel runs over hundreds of designs
@pytest.mark.parametrize("case", list(CASES))
def test_cmaes_finds_the_exhaustive_optimum(case: str) -> None:
    spec, vary, budget = CASES[case]
    problem = build_problem(spec, vary, budget)
    exhaustive = best_by(problem, "exhaustive", 10_000)
    optimum = exhaustive.ranked()[0]
    space = len(exhaustive.archive)
    assert space > 60
    # same evaluator, same draws: scores are comparable to the last bit
    cmaes = best_by(problem, "cmaes", evaluations=max(40, space // 3), evaluator=exhaustive.evaluator)
    assert len(cmaes.archive) < space
    found = cmaes.ranked()[0]
    assert found.throughput == pytest.approx(optimum.throughput, abs=1e-12), (found.design, optimum.design)
    assert problem.feasible(found.design)


@pytest.mark.usefixtures("optimised_kernels")  # an exhaustive search over every buffer split
def test_bowl_phenomenon_on_a_balanced_line() -> None:
    # a balanced line puts its extra space in the middle: with 6 places for 4 buffers, inner buffers get more
    problem = build_problem(line([1, 1, 1, 1, 1], horizon=2000.0), ["stations.*.buffer=0..6"], {"buffers": 6})
    search = best_by(problem, "exhaustive", 10_000, replications=10)
    best = search.ranked()[0].design
    assert sum(best) == 6
    assert best[1] + best[2] > best[0] + best[3], best
    # and the optimum is confirmed by SimPy: better than the reversed bowl, with paired replications
    mirrored = (best[1], best[0], best[3], best[2])
    a = run(problem.spec_for(best), replications=8, seed=5).kpis.per_replication["throughput_per_hour"]
    b = run(problem.spec_for(mirrored), replications=8, seed=5).kpis.per_replication["throughput_per_hour"]
    assert (a - b).mean() > 0


def test_campaign_order_minimizes_makespan() -> None:
    spec = LineSpec.from_dict(
        {
            "name": "campaigns",
            "horizon": 10000.0,
            "products": [{"name": p, "batch_size": 1} for p in "ABC"],
            "release": {"mode": "plan", "plan": [
                {"product": "A", "batches": 4}, {"product": "B", "batches": 3},
                {"product": "C", "batches": 3}, {"product": "A", "batches": 2}]},
            "stations": [
                {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0},
                 "setup": {"A->B": 1.0, "B->C": 1.0, "C->A": 1.0, "B->A": 8.0, "C->B": 8.0, "A->C": 8.0}},
                {"name": "m2", "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.2, "sd": 0.5}},
            ],
        }
    )  # fmt: skip
    problem = build_problem(spec, ["release.plan=order"], objective="makespan")
    exhaustive = best_by(problem, "exhaustive", 100)
    assert len(exhaustive.archive) == 24
    cmaes = best_by(problem, "cmaes", evaluations=12, evaluator=exhaustive.evaluator)
    assert cmaes.ranked()[0].makespan == pytest.approx(exhaustive.ranked()[0].makespan, abs=1e-9)
    # the plan A,B,C,A (cheap changeovers) beats the spec's worst orders by a wide margin
    assert exhaustive.ranked()[0].makespan < exhaustive.ranked()[-1].makespan - 10


@pytest.mark.usefixtures("optimised_kernels")  # 60 gradient evaluations of one kernel
def test_gradient_reaches_the_cheapest_speeds_on_a_grid() -> None:
    spec = line([1.0, 1.3], horizon=1500.0)
    data = spec.to_data()
    data["stations"][1]["buffer"] = 2
    spec = LineSpec.from_dict(data)
    problem = build_problem(spec, ["stations.*.speed=0.5..2"], objective="cost", target=0.8,
                            costs=["stations.s1.speed=1", "stations.s2.speed=2"])  # fmt: skip
    gradient = best_by(problem, "gradient", evaluations=60)
    found = gradient.ranked()[0]
    assert found.throughput >= 0.8
    grid = [(a, b) for a in np.arange(0.5, 2.0001, 0.05) for b in np.arange(0.5, 2.0001, 0.05)]
    search = Search(problem, gradient.evaluator, len(grid))
    search.evaluate([(float(a), float(b)) for a, b in grid])
    cheapest = search.ranked()[0]
    assert cheapest.throughput >= 0.8
    assert found.cost <= cheapest.cost * 1.03, (found.design, cheapest.design)


def test_speed_in_the_spec_equals_speed_in_the_evaluator() -> None:
    spec = line([1.0, 1.3, 0.8], failures=True)
    problem = build_problem(spec, ["stations.*.speed=0.5..2"])
    design = (1.5, 0.8, 1.25)
    ev = Evaluator(spec, seed=3, replications=2, max_speed=2.0, min_speed=0.5)
    res = ev.evaluate(speed=[design])
    core = run(problem.spec_for(design), replications=2, seed=3).kpis.per_replication
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], atol=1e-12)
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)


def test_pareto_front_confirmed_by_simpy() -> None:
    spec = line([1.0, 1.6, 1.2])
    result = optimize(spec, ["stations.*.units=1..3"], costs=["stations.*.units=100"],
                      objective=["throughput", "cost"], evaluations=100, replications=4, confirm_replications=3)  # fmt: skip
    assert result.method == "exhaustive"
    front = result.front
    assert all(a.cost < b.cost and a.throughput < b.throughput for a, b in itertools.pairwise(front))
    search_all = Search(result.problem, make_evaluator(result.problem, 1, 4, "cpu"), 100)
    search_all.evaluate([(a, b, c) for a in (1, 2, 3) for b in (1, 2, 3) for c in (1, 2, 3)])
    for s in search_all.archive.values():  # nothing evaluated dominates a point of the front
        assert not any(s.cost <= f.cost and s.throughput > f.throughput + 1e-12 for f in front)
    assert front[0].cost == 300
    for c in result.pareto:
        assert abs(c.error["throughput_per_hour"]) < 1e-12  # exact on the same (confirmation) draws
        lo, hi = c.simpy["throughput_per_hour"]["ci95"]
        assert lo <= c.evaluator["throughput_per_hour"] <= hi


def test_api_callback_sees_best_so_far_and_can_stop() -> None:
    seen: list[Any] = []

    def callback(progress: Any) -> bool:
        seen.append((progress.evaluations, progress.best.throughput))
        return progress.evaluations >= 40

    spec = line([1, 1, 1, 1, 1])
    result = optimize(spec, ["stations.*.buffer=0..5"], budget={"buffers": 8}, evaluations=500, method="cmaes",
                      replications=3, confirm_replications=2, callback=callback)  # fmt: skip
    assert 40 <= result.evaluations < 500
    assert [n for n, _ in seen] == sorted(n for n, _ in seen)
    assert [b for _, b in seen] == sorted(b for _, b in seen)  # best so far never gets worse
    assert result.best.simpy["replications"] == 2


def test_calendar_failures_run_exactly_on_one_unit_and_as_a_measured_surrogate_on_two() -> None:
    data = line([1.0, 1.2]).to_data()
    data["stations"][1]["failures"] = {**FAILURES, "basis": "calendar"}
    one = optimize(LineSpec.from_dict(data), ["stations.s2.buffer=0..3"], evaluations=6, replications=3,
                   confirm_replications=3, evaluator="jax")  # fmt: skip
    assert one.to_json()["exact"] is True and one.to_json()["evaluator"] == "jax"
    assert abs(one.best.error["throughput_per_hour"]) < 1e-12
    data["stations"][1]["units"] = 2
    spec = LineSpec.from_dict(data)
    result = optimize(spec, ["stations.s2.buffer=0..3"], evaluations=10, replications=3, confirm_replications=3,
                      evaluator="jax")  # fmt: skip
    assert result.approximations and "calendar" in result.approximations[0]
    report = result.to_json()
    assert report["exact"] is False and report["evaluator"] == "jax"
    assert "throughput_per_hour" in report["best"]["evaluator_minus_simpy"]
    # by default the engine scores the designs where the kernel is not exact
    exact = optimize(spec, ["stations.s2.buffer=0..3"], replications=3, confirm_replications=3, workers=1)
    assert exact.to_json()["exact"] is True and exact.to_json()["evaluator"] == "engine"
    assert exact.best.error["throughput_per_hour"] == 0.0


def test_rate_cleaning_a_shared_skid_and_an_investigating_hold_are_exact_and_a_surrogate_is_measured() -> None:
    # a rate-based press and a cleaning rule: both in the kernel, so the JAX search is exact
    data = {
        "name": "rules", "horizon": 400.0, "warmup": 40.0,
        "products": [{"name": "A", "batch_size": 1000}],
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0},
             "cleaning": {"minor": 0.1, "major": 0.6, "due": {"batches": 5}}},
            {"name": "s2", "buffer": 1, "rate": {"units_per_hour": 900, "startup": 0.1, "cv": 0.2}},
        ],
    }  # fmt: skip
    exact = optimize(LineSpec.from_dict(data), ["stations.s2.buffer=0..3"], evaluations=8, replications=3,
                     confirm_replications=3, evaluator="jax")  # fmt: skip
    report = exact.to_json()
    assert report["exact"] is True and report["evaluator"] == "jax"
    assert abs(exact.best.error["throughput_per_hour"]) < 1e-12
    # the clean on a shared skid: stepped event by event, exact too
    skid = {**data, "skids": [{"name": "cip", "capacity": 1}]}
    skid["stations"] = [{**data["stations"][0], "cleaning": {**data["stations"][0]["cleaning"], "skid": "cip"}},
                        data["stations"][1]]  # fmt: skip
    stepped = optimize(LineSpec.from_dict(skid), ["stations.s2.buffer=0..3"], evaluations=8, replications=3,
                       confirm_replications=3, evaluator="jax")  # fmt: skip
    assert stepped.to_json()["exact"] is True and abs(stepped.best.error["throughput_per_hour"]) < 1e-12
    # a hold time that sends late batches to investigation: stepped event by event, exact too
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 0.3, "action": "investigate", "investigation": 1.0}]
    held = optimize(LineSpec.from_dict(data), ["stations.s2.buffer=0..3"], evaluations=8, replications=3,
                    confirm_replications=3, evaluator="jax")  # fmt: skip
    assert held.to_json()["exact"] is True and abs(held.best.error["throughput_per_hour"]) < 1e-12
    # with a WIP limit behind two units of s1 (not in the event kernel) the scan kernel runs it: a surrogate (scraps),
    # which says so and is measured
    data["release"] = {"mode": "saturated", "wip_limit": {"batches": 4, "until": "s2"}}
    data["stations"] = [{**data["stations"][0], "units": 2}, data["stations"][1]]
    surrogate = optimize(LineSpec.from_dict(data), ["stations.s2.buffer=0..3"], evaluations=8, replications=3,
                         confirm_replications=3, evaluator="jax")  # fmt: skip
    assert "hold_times: s1->s2 investigates late batches (not scraps)" in surrogate.approximations
    assert surrogate.to_json()["exact"] is False and np.isfinite(surrogate.best.error["throughput_per_hour"])


def test_bad_problems_are_input_errors() -> None:
    spec = line([1, 1, 1])
    bad = [
        (dict(vary=["stations.nope.buffer=0..3"]), "no station named 'nope'"),
        (dict(vary=["stations.*.buffer=3..1"]), "empty range"),
        (dict(vary=["stations.*.buffer=0..3"], budget={"buffers": -1}), "no design meets it"),
        (dict(vary=["stations.*.buffer=2..3"], budget={"buffers": 3}), "no design meets it"),
        (dict(vary=["stations.*.buffer=0..3"], objective="wip"), "unknown"),
        (dict(vary=["stations.*.buffer=0..3"], objective=["oee", "lead_time"]), "one KPI against cost"),
        (dict(vary=["stations.*.buffer=0..3"], objective="cost", costs=["stations.*.buffer=1"]), "target"),
        (dict(vary=["stations.*.units=0..3"]), "1..1000"),
        (dict(vary=["stations.s1.buffer=0..3"]), "pulls its batches"),
        (dict(vary=["stations.*.speed=1..1"]), "empty range"),
        (dict(vary=["stations.*.buffer=0..3"], costs=["stations.*.units=5"]), "no varied variable"),
    ]
    for kwargs, message in bad:
        with pytest.raises(InputError, match=message):
            build_problem(spec, **kwargs)


@pytest.mark.slow
def test_cli_optimizes_writes_a_runnable_spec_and_json(tmp_path: Path) -> None:
    spec_path = tmp_path / "line.yaml"
    data = line([1.0, 1.2, 0.9]).to_data()
    data["extensions"] = {"optimize": {"vary": [{"path": "stations.*.buffer", "range": "0..4"}], "budget": {"buffers": 4},
                                       "evaluations": 50, "replications": 3, "confirm": 3}}  # fmt: skip
    spec_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert run_cli("validate", str(spec_path)).returncode == 0
    out = tmp_path / "result"
    done = run_cli("optimize", str(spec_path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Best design" in done.stdout and "SimPy" in done.stdout and "evaluator" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["best.yaml", "optimization.json", "run"]
    rerun = run_cli("run", str(out / "best.yaml"), "-r", "3", "--seed", "2", "--json")
    assert rerun.returncode == 0, rerun.stderr
    saved = json.loads((out / "optimization.json").read_text())
    assert json.loads(rerun.stdout)["throughput_per_hour"] == saved["best"]["simpy"]["throughput_per_hour"]
    store = tmp_path / "store"
    again = run_cli(
        "optimize", str(spec_path), "--json", "--evals", "20", "--vary", "stations.s2.buffer=0..2", "--store", str(store)
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["exact"] and report["evaluations"] == 3 and report["method"] == "exhaustive"
    from twin.store import RunStore

    (run_id,) = RunStore(store).run_ids()  # the best design's SimPy run, in the store the dashboard reads
    info = RunStore(store).info(run_id)
    assert info["tags"]["source"] == "optimizer" and info["tags"]["method"] == "exhaustive"
    assert RunStore(store).get(run_id).spec.station("s2").buffer == report["best"]["values"]["stations.s2.buffer"]
    assert run_cli("optimize", str(spec_path), "--out", str(out)).returncode == 2  # never overwrites


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vary", "stations.zz.buffer=0..3"], "no station named 'zz'"),
        (["--vary", "stations.*.buffer=4..2"], "empty range"),
        (["--vary", "stations.*.buffer=0..3", "--budget", "buffers=-2"], "must be >= 0"),
        (["--vary", "stations.*.buffer=2..3", "--budget", "buffers=1"], "no design meets it"),
        (["--vary", "stations.*.buffer=0..3", "--objective", "wip"], "unknown"),
        (["--vary", "operators.nobody.headcount=1..3"], "no item 'nobody'"),
        (["--vary", "stations.coating.cleaning.due.hours=1..9"], "sets no stations.coating.cleaning.due.hours"),
        (["--vary", "qc.analysts=0..3"], "must lie in 1..1000"),
        (["--vary", "qc.analysts=1..3", "--target", "scrapped<=2"], "unknown KPI 'scrapped'"),
        (["--vary", "qc.analysts=1..3", "--target", "oee=0.5"], "write oee<=0.5 or oee>=0.5"),
        (["--vary", "skids.wash-skid.capacity=1..2", "--evaluator", "jax"], "use --evaluator engine"),
        (["--vary", "stations.*.buffer=0..3", "--device", "tpu"], "expected cpu, gpu or auto"),
    ],
)
def test_cli_bad_input_exits_2(args: list[str], message: str) -> None:
    done = run_cli("optimize", "osd-tablet", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_gpu_without_a_gpu_is_a_clear_error() -> None:
    import jax

    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    done = run_cli("optimize", "osd-tablet", "--vary", "stations.coating.units=1..2", "--device", "gpu",
                   "--evals", "2", "-r", "2", "--confirm", "2")  # fmt: skip
    if has_gpu:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 2 and "no GPU" in done.stderr and "Traceback" not in done.stderr


def test_public_names_and_a_light_cli() -> None:
    import subprocess
    import sys

    import optimizers

    for name in optimizers.__all__:
        assert getattr(optimizers, name) is not None
    code = "import sys; from twin.cli.app import build_app; build_app(); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # registering `twin optimize` does not load JAX


def test_kernels_compiled_fast_give_the_optimised_kernels_results_to_the_last_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The suite compiles its kernels without LLVM's optimisations (``TWIN_KERNEL_COMPILE=fast``, tests/conftest.py);
    users get the optimised ones. Both give the same departures and KPIs, bit for bit."""
    from optimizers import kernel

    data = line([0.8, 1.0], failures=True, horizon=300.0).to_data()
    data["products"] = [{"name": "A", "batch_size": 10, "mass_kg": 40}, {"name": "B", "batch_size": 20, "mass_kg": 90}]
    data["release"] = {"mode": "saturated", "mix": {"A": 1, "B": 2}}
    data["stations"][1]["cleaning"] = {"minor": 0.2, "major": 1.0, "due": {"batches": 3}}
    data["stations"][1]["setup"] = {"A->B": {"time": 0.5, "major_clean": True}, "B->A": 0.3}
    spec = LineSpec.from_dict(data)
    results = {}
    for mode in ("fast", "default"):
        monkeypatch.setenv("TWIN_KERNEL_COMPILE", mode)
        kernel.compiled_kernel.cache_clear()
        assert (kernel.compiler_options() is None) == (mode == "default")
        results[mode] = Evaluator(spec, seed=5, replications=3, record=True).evaluate()
    kernel.compiled_kernel.cache_clear()
    fast, default = results["fast"], results["default"]
    assert fast.extra["valid"].sum() > 100
    for name in ("throughput", "lead_time", "states"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(default, name), err_msg=name)
    for name in ("departure", "batch", "valid"):
        np.testing.assert_array_equal(fast.extra[name], default.extra[name], err_msg=name)
