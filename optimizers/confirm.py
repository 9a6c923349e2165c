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

from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizers.evaluator import Evaluator
from optimizers.problem import Design, Problem
from twin.experiment import RunResult, run
from twin.spec.model import LineSpec

KPIS = ("throughput_per_hour", "lead_time_hours")


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

    def figure(self, kpi: str = "throughput_per_hour") -> float:
        return float(self.simpy[kpi]["mean"])


def confirm(
    problem: Problem, designs: list[Design], replications: int, seed: int, device: str = "cpu"
) -> list[Confirmed]:
    """Run each design with the SimPy engine (``twin.experiment.run``) and with the evaluator, same draws."""
    if not designs:
        return []
    arrays = problem.arrays(designs)
    max_units = tuple(int(x) for x in np.max(arrays["units"], axis=0))
    finite = arrays["buffers"][arrays["buffers"] >= 0]
    ev = Evaluator(
        problem.spec, seed=seed, replications=replications, max_units=max_units,
        max_buffer=int(finite.max()) if finite.size else 0, max_speed=float(arrays["speed"].max()),
        min_speed=float(arrays["speed"].min()), device=device, chunk=len(designs),
    )  # fmt: skip
    res = ev.evaluate(**arrays)
    out = []
    for i, design in enumerate(designs):
        spec = problem.spec_for(design)
        result = run(spec, replications=replications, seed=seed, name="optimized")
        per_rep = result.kpis.per_replication
        evaluator = {"throughput_per_hour": res.throughput[i], "lead_time_hours": res.lead_time[i]}
        simpy_reps = {k: per_rep[k].to_numpy(dtype=float) for k in KPIS}
        error = {k: float(np.nanmean(evaluator[k]) - np.nanmean(simpy_reps[k])) for k in KPIS}
        max_error = {k: float(np.nanmax(np.abs(evaluator[k] - simpy_reps[k]))) for k in KPIS}
        makespan = None
        if problem.spec.release.mode == "plan" and not problem.spec.release.repeat:
            ends = result.log.end_times()
            makespan = float(np.mean(list(ends.values())))
            error["makespan_hours"] = float(np.mean(res.makespan[i]) - makespan)
        out.append(
            Confirmed(
                design=design,
                values=problem.describe(design),
                diff=problem.diff(design),
                overrides=problem.overrides(design),
                cost=problem.cost(design),
                spec=spec,
                simpy=result.kpis.summary,
                evaluator={k: float(np.nanmean(v)) for k, v in evaluator.items()},
                error=error,
                max_error=max_error,
                result=result,
                makespan=makespan,
            )
        )
    return out
