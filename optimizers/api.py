"""Optimize a line from Python (notebooks, dashboards): search with the evaluator, confirm with SimPy.

    >>> from optimizers import optimize
    >>> result = optimize("my_line.yaml", vary=["stations.*.buffer=0..6"], budget={"buffers": 12},
    ...                   objective="throughput", evaluations=500, callback=lambda p: print(p.best.throughput))
    >>> result.best.diff                    # [(variable, spec's value, best value), ...]
    >>> result.best.simpy["throughput_per_hour"], result.best.evaluator["throughput_per_hour"]
    >>> result.best_spec                    # a LineSpec to run; result.to_json() for a web page
    >>> optimize(spec, vary=["stations.m2.units=1..4"], costs=["stations.*.units=50000"],
    ...          objective=["throughput", "cost"]).pareto      # confirmed Pareto front, cheapest first
    >>> optimize("osd-tablet", vary=["operators.packaging-team.headcount=2..4"], objective="oee",
    ...          constraints=["scrapped_batches<=2"])          # a lever of the batch rules: engine evaluator

Designs are scored by the JAX kernel where it is exact for the spec and computes what is asked,
and by the SimPy engine itself otherwise (``evaluator="auto"``); ``evaluator="jax"`` forces the
kernel (a measured surrogate on lines with batch rules), ``"engine"`` forces the engine.

A callback receives a ``Progress`` (evaluations so far, budget, best so far) after each batch of
designs; returning True stops the search early (the designs found so far are still confirmed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optimizers.confirm import Confirmed, confirm
from optimizers.objectives import COST, OBJECTIVES
from optimizers.problem import LEVERS, Problem, build_problem
from optimizers.search import Progress, Scored, Search, run_method
from twin.errors import InputError
from twin.models import load_spec
from twin.spec.model import LineSpec

if TYPE_CHECKING:  # (JAX is imported when an evaluator is made, not when the options are checked)
    from optimizers.evaluator import Evaluator

MAX_FRONT = 8  # confirmed points of a Pareto front
EVALUATORS = ("auto", "jax", "engine")
ENGINE_EVALUATIONS = 200  # default designs to evaluate when the engine scores them (the kernel: 2000)
CHUNK = 16  # designs the JAX evaluator takes at once in a search (one compiled shape; a smaller space: fewer)


@dataclass(frozen=True)
class OptimizeResult:
    """The search's outcome: the best design confirmed by SimPy, the runners-up, and the Pareto front."""

    problem: Problem
    method: str
    evaluations: int
    best: Confirmed
    confirmed: list[Confirmed]  # every design SimPy re-ran (best first)
    pareto: list[Confirmed]  # confirmed Pareto front (cost vs throughput), cheapest first; [] for one objective
    front: list[Scored]  # the evaluator's Pareto front over everything evaluated
    history: list[tuple[int, float]]  # (evaluations, best score so far)
    approximations: tuple[str, ...]  # why the evaluator is a surrogate for the best design (empty: exact)
    settings: dict[str, Any] = field(default_factory=dict)
    target_met: bool | None = None  # cost objective: whether SimPy confirms the target

    @property
    def best_spec(self) -> LineSpec:
        return self.best.spec

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``twin optimize --json`` prints)."""
        return {
            "line": self.problem.spec.name,
            "objectives": list(self.problem.objectives),
            "method": self.method,
            "evaluations": self.evaluations,
            "exact": not self.approximations,
            "approximations": list(self.approximations),
            "evaluator": self.settings.get("evaluator"),
            "constraints": [str(c) for c in self.problem.constraints],
            "settings": self.settings,
            "best": _confirmed_json(self.best),
            "target_met": self.target_met,
            "confirmed": [_confirmed_json(c) for c in self.confirmed],
            "pareto": [_confirmed_json(c) for c in self.pareto],
            "history": [{"evaluations": n, "best_score": s} for n, s in self.history],
        }


def _confirmed_json(c: Confirmed) -> dict[str, Any]:
    return {
        "values": c.values,
        "changes": [{"variable": k, "spec": a, "design": b} for k, a, b in c.diff],
        "overrides": c.overrides,
        "cost": c.cost,
        "simpy": {
            "throughput_per_hour": c.simpy["throughput_per_hour"],
            "lead_time_hours": {k: c.simpy["lead_time_hours"][k] for k in ("mean", "ci95")},
            "oee": c.simpy["oee"],
            "replications": c.simpy["replications"],
            **({"makespan_hours": c.makespan} if c.makespan is not None else {}),
        },
        "kpis": c.kpis,
        "evaluator": c.evaluator,
        "evaluator_minus_simpy": c.error,
        "max_replication_error": c.max_error,
    }


def optimize(
    spec: LineSpec | str | Path,
    vary: Sequence[str] = (),
    *,
    budget: Mapping[str, float] | None = None,
    objective: str | Sequence[str] | None = None,
    target: float | None = None,
    costs: Sequence[str] = (),
    constraints: Sequence[str] = (),
    evaluations: int | None = None,
    replications: int | None = None,
    confirm_replications: int | None = None,
    method: str = "auto",
    seed: int = 1,
    device: str = "cpu",
    top: int = 3,
    callback: Callable[[Progress], Any] | None = None,
    evaluator: str = "auto",
    workers: int | None = None,
) -> OptimizeResult:
    """Search the designs of ``spec`` and confirm the best with the SimPy engine.

    Options left as None come from the spec's ``optimize`` block (then the defaults). The search
    uses replications 0.. of ``seed``; confirmation uses ``seed + 1``.
    """
    if not isinstance(spec, LineSpec):
        spec = load_spec(spec)
    block = spec.extension("optimize")
    problem = build_problem(spec, vary, budget, objective, target, costs, constraints)
    use_engine = _use_engine(problem, evaluator)
    if use_engine:
        from optimizers.evaluator import resolve_device

        resolve_device(device)  # a bad --device is an error whichever evaluator scores the designs
    default_evaluations = ENGINE_EVALUATIONS if use_engine else 2000
    evaluations = evaluations if evaluations is not None else (block.evaluations if block else default_evaluations)
    replications = replications if replications is not None else (block.replications if block else 5)
    confirm_reps = confirm_replications if confirm_replications is not None else (block.confirm if block else 10)
    for name, value, low in (
        ("evals", evaluations, 1),
        ("replications", replications, 1),
        ("confirm", confirm_reps, 2),
    ):
        if not isinstance(value, int) or value < low:
            raise InputError(f"--{name} must be a whole number >= {low} (got {value!r})")
    if use_engine:
        from optimizers.engine_eval import EngineEvaluator

        scorer: Any = EngineEvaluator(problem, seed, replications, workers)
    else:
        scorer = make_evaluator(problem, seed, replications, device)
    try:
        search = Search(problem, scorer, evaluations, callback)
        used = run_method(search, method, seed=seed, batch=max(4, 2 * scorer.workers) if use_engine else 64)
        if not search.ranked():
            invalid = getattr(scorer, "invalid", {})
            why = f": every design evaluated is an invalid spec ({next(iter(invalid.values()))})" if invalid else ""
            raise InputError(f"no feasible design was evaluated (check --budget and the ranges){why}")
        front = search.pareto() if len(problem.objectives) == 2 else []
        picks = _spread(front, MAX_FRONT) if front else [s.design for s in search.ranked()[:top]]
        confirmed = confirm(problem, picks, confirm_reps, seed + 1, device, engine=use_engine,
                            like=None if use_engine else scorer)  # fmt: skip
    finally:
        if use_engine:
            scorer.close()
    best, target_met = _best(problem, confirmed)
    confirmed.sort(key=lambda c: c is not best)
    most = tuple(int(x) for x in problem.arrays([best.design])["units"][0])  # the answer's own units
    approximations = () if use_engine else scorer.approximations(np.array([most]))
    return OptimizeResult(
        problem=problem,
        method=used,
        evaluations=len(search.archive),
        best=best,
        confirmed=confirmed,
        pareto=sorted(confirmed, key=lambda c: c.cost) if front else [],
        front=front,
        history=search.history,
        approximations=approximations,
        settings={
            "seed": seed,
            "replications": replications,
            "confirm_seed": seed + 1,
            "confirm_replications": confirm_reps,
            "evaluator": "engine" if use_engine else "jax",
            "device": str(scorer.device.platform),
        },
        target_met=target_met,
    )


def _use_engine(problem: Problem, evaluator: str) -> bool:
    """Whether the SimPy engine scores the designs: where the kernel is not exact or cannot compute the
    problem's figures (``auto``), or when asked."""
    if evaluator not in EVALUATORS:
        raise InputError(f"--evaluator {evaluator!r}: expected one of {', '.join(EVALUATORS)}")
    kernel_can = problem.kernel_only and all(OBJECTIVES[k].kernel for k in problem.kpis)
    if evaluator == "jax":
        if not kernel_can:
            computes = ", ".join(name for name, o in OBJECTIVES.items() if o.kernel)
            levers = ", ".join(lever.kind for lever in LEVERS if lever.in_kernel(problem.events))
            raise InputError(f"--evaluator jax: the JAX kernel varies buffers, units, speeds, campaign order and "
                             f"{levers}, and computes {computes} only; use --evaluator engine")  # fmt: skip
        return False
    if evaluator == "engine":
        return True
    if not kernel_can:
        return True
    return bool(make_evaluator(problem, 1, 1, "cpu").approximations())  # exact for the whole range, or not


def make_evaluator(
    problem: Problem, seed: int, replications: int, device: str, chunk: int | None = None
) -> Evaluator:
    """An evaluator sized for every design of ``problem`` (largest units, buffers, speeds and levers), taking designs
    in chunks of ``chunk`` (default: ``CHUNK``, or the power of two at or above the number of designs, if fewer: a
    small space's search and confirmation evaluate no more lanes than they need)."""
    from optimizers.evaluator import Evaluator, evaluator_sizes

    if chunk is None:
        chunk = CHUNK if problem.size >= CHUNK else 1 << (max(int(problem.size), 1) - 1).bit_length()
    sizes = evaluator_sizes(problem.arrays(problem.extremes()))
    return Evaluator(problem.spec, seed=seed, replications=replications, device=device, chunk=chunk, **sizes)


def _spread(front: list[Scored], most: int) -> list[tuple]:
    if len(front) <= most:
        return [s.design for s in front]
    picks = np.unique(np.linspace(0, len(front) - 1, most).round().astype(int))
    return [front[i].design for i in picks]


def _best(problem: Problem, confirmed: list[Confirmed]) -> tuple[Confirmed, bool | None]:
    """The best confirmed design by SimPy's figures; whether it meets the constraints (None: there are none)."""
    objective = problem.objectives[0]
    meets = [c for c in confirmed if all(k.met(c.kpis.get(k.kpi, np.nan)) for k in problem.constraints)]
    pool = meets or confirmed
    if objective == COST:
        best = min(pool, key=lambda c: c.cost) if meets else max(confirmed, key=lambda c: c.figure())
    else:
        sign = -1.0 if OBJECTIVES[objective].sense == "max" else 1.0
        best = min(pool, key=lambda c: (np.nan_to_num(sign * c.kpis.get(objective, np.nan), nan=np.inf), c.cost))
    return best, (bool(meets) if problem.constraints else None)
