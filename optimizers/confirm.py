"""Confirm designs with the SimPy engine: replications, confidence intervals, and the evaluator beside them.

    >>> confirmed = confirm(problem, [design], replications=10, seed=2)
    >>> confirmed[0].simpy["throughput_per_hour"]        # {"mean": ..., "ci95": [lo, hi]}
    >>> confirmed[0].evaluator["throughput_per_hour"]    # the evaluator on the same draws
    >>> confirmed[0].error["throughput_per_hour"]        # evaluator - SimPy (0 inside the exact subset)

Confirmation uses its own seed, so its replications are independent of the ones the search
selected on (no optimistic bias); the evaluator runs on the same confirmation draws, so the
difference between the two figures measures the evaluator's error for that design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from optimizers.objectives import OBJECTIVES
from optimizers.problem import Design, Problem
from twin.errors import InputError
from twin.experiment import RunResult, run
from twin.spec.model import LineSpec

if TYPE_CHECKING:
    from optimizers.evaluator import Evaluation, Evaluator

# the engine's per-replication KPIs the kernel also computes (objectives table): confirmation compares each
KPIS = tuple(dict.fromkeys(o.column for o in OBJECTIVES.values() if o.kernel and o.column))


@dataclass(frozen=True)
class Confirmed:
    """A design re-run by the SimPy engine."""

    design: Design
    values: dict[str, Any]  # variable -> value
    diff: list[tuple[str, Any, Any]]  # (variable, spec's value, design's value) where it changes
    overrides: dict[str, Any]
    cost: float
    spec: LineSpec
    simpy: dict[str, Any]  # the engine's KPI summary (means with 95% CIs)
    evaluator: dict[str, float]  # the evaluator's means on the same replications
    error: dict[str, float]  # evaluator - SimPy, per KPI (mean over replications)
    max_error: dict[str, float]  # largest |evaluator - SimPy| of one replication
    result: RunResult
    makespan: float | None = None
    kpis: dict[str, float] = field(default_factory=dict)  # objective name -> SimPy's mean (objectives table)

    def figure(self, kpi: str = "throughput_per_hour") -> float:
        return float(self.simpy[kpi]["mean"])


def confirm(
    problem: Problem,
    designs: list[Design],
    replications: int,
    seed: int,
    device: str = "cpu",
    engine: bool = False,
    like: Evaluator | None = None,
) -> list[Confirmed]:
    """Run each design with the SimPy engine (``twin.experiment.run``) and with the evaluator, same draws.

    With ``like`` (the search's JAX evaluator) the evaluator's figures come from its compiled kernel, in blocks of its
    replications (``Evaluator.on_draws``): a search and its confirmation compile once.

    With ``engine`` the search's evaluator is the engine itself: its figures on the confirmation
    draws are the confirmation run's own, and its error is zero by construction.
    """
    if not designs:
        return []
    if engine:
        return [_confirmed(problem, d, run(problem.spec_for(d), replications=replications, seed=seed,
                                          name="optimized"), None) for d in designs]  # fmt: skip
    arrays = problem.arrays(designs)  # (the levers of the batch rules the kernel takes too: the same designs)
    res = _evaluated(problem, arrays, replications, seed, device, like)
    out = []
    for i, design in enumerate(designs):
        result = run(problem.spec_for(design), replications=replications, seed=seed, name="optimized")
        figures = {o.column: getattr(res, o.kernel)[i] for o in OBJECTIVES.values() if o.kernel and o.column}
        figures["makespan_hours"] = res.makespan[i]
        out.append(_confirmed(problem, design, result, figures))
    return out


def _evaluated(
    problem: Problem, arrays: dict[str, Any], replications: int, seed: int, device: str, like: Evaluator | None
) -> Evaluation:
    """The JAX evaluator's figures of the designs ``arrays`` on replications 0..``replications`` of ``seed``."""
    from optimizers import evaluator

    if like is None:
        sizes = evaluator.evaluator_sizes(arrays)
        designs = len(arrays["buffers"])
        return evaluator.Evaluator(problem.spec, seed=seed, replications=replications, device=device, chunk=designs,
                                   **sizes).evaluate(**arrays)  # fmt: skip
    step = like.replications  # (a last block past ``replications`` is cut: the kernel's shape stays the search's)
    parts = [like.on_draws(seed, first).evaluate(**arrays) for first in range(0, replications, step)]
    return evaluator.Evaluation.joined(parts, replications)


def _confirmed(problem: Problem, design: Design, result: RunResult, figures: dict[str, Any] | None) -> Confirmed:
    """A confirmed design; ``figures`` are the JAX kernel's per replication (None: the engine evaluated it)."""
    per_rep = result.kpis.per_replication
    if per_rep.empty:  # every replication ended before the warm-up: no window to measure
        ends = result.log.end_times()
        raise InputError(
            f"every replication of the design ended (by {max(ends.values(), default=0.0):,.1f} h) before the "
            f"warm-up ({result.log.meta.warmup:,.1f} h): nothing to measure; give a shorter one (--warmup 0)"
        )
    simpy_reps = {k: per_rep[k].to_numpy(dtype=float) for k in KPIS}
    makespan = None
    if problem.spec.release.mode == "plan" and not problem.spec.release.repeat:
        ends = result.log.end_times()
        simpy_reps["makespan_hours"] = np.array([ends[r] for r in sorted(ends)], dtype=float)
        makespan = float(np.mean(simpy_reps["makespan_hours"]))
    # the KPIs both have; one neither side has a value of (a release lead time without a QC lab) is left out
    figures = {k: np.asarray(v, float) for k, v in (simpy_reps if figures is None else figures).items()
               if k in simpy_reps and (np.isfinite(v).any() or np.isfinite(simpy_reps[k]).any())}  # fmt: skip
    error = {k: _mean(figures[k]) - _mean(simpy_reps[k]) for k in figures}
    max_error = {k: _max_abs(figures[k], simpy_reps[k]) for k in figures if k in KPIS}
    kpis = {}
    for name, objective in OBJECTIVES.items():
        if objective.column is None:
            if makespan is not None:
                kpis[name] = makespan
        elif objective.column in per_rep:
            values = per_rep[objective.column].to_numpy(dtype=float)
            kpis[name] = float(np.nanmean(values)) * objective.scale if np.isfinite(values).any() else np.nan
    return Confirmed(
        design=design,
        values=problem.describe(design),
        diff=problem.diff(design),
        overrides=problem.overrides(design),
        cost=problem.cost(design),
        spec=result.spec,
        simpy=result.kpis.summary,
        evaluator={k: _mean(v) for k, v in figures.items() if k in KPIS},
        error=error,
        max_error=max_error,
        result=result,
        makespan=makespan,
        kpis=kpis,
    )


def _mean(values: np.ndarray) -> float:
    """The mean of the finite values (NaN: none; one replication with no batch out has no lead time)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """The largest |a - b| of one replication: 0 where neither has a value, inf where only one has."""
    gap = np.where(np.isnan(a) & np.isnan(b), 0.0, np.where(np.isnan(a) ^ np.isnan(b), np.inf, np.abs(a - b)))
    return float(gap.max()) if gap.size else 0.0
