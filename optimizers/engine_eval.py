"""Evaluate designs with the SimPy engine itself: exact for every batch rule, by construction.

    >>> ev = EngineEvaluator(problem, seed=1, replications=5, workers=2)
    >>> figures = ev.kpis(designs)          # {"throughput": [design, replication], "oee": ...}
    >>> ev.close()

The search uses it where the JAX kernel is not exact (a batch rule, calendar-basis failures,
changeovers on several units) or cannot compute what is asked (a lever of the batch rules, an
objective such as OEE or release lead time). Every design runs with the same seed, so designs see
the same draws stream by stream (common random numbers), as in the kernel; the confirmation runs
the same engine on its own seed. Figures are the columns of ``compute_kpis`` named in the
objective table, so what the search ranks is what ``twin run`` reports. Designs run in worker
processes (spawned: the parent may hold JAX's threads) when there are several to run.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizers.objectives import OBJECTIVES
from optimizers.problem import Design, Problem
from twin.errors import SpecError
from twin.spec.model import LineSpec


@dataclass(frozen=True)
class _Device:
    platform: str = "cpu (SimPy engine)"


def design_kpis(
    spec: LineSpec, seed: int, replications: int, kpis: tuple[str, ...], horizon: float | None, warmup: float | None
) -> dict[str, np.ndarray]:
    """Per-replication figures of one design (objective name -> array), and station utilizations."""
    from twin.experiment import run

    result = run(spec, replications=replications, seed=seed, horizon=horizon, warmup=warmup, name="design")
    per_rep = result.kpis.per_replication
    out: dict[str, np.ndarray] = {}
    for name in kpis:
        objective = OBJECTIVES[name]
        if objective.column is None:  # makespan: when each replication's plan was done
            ends = result.log.end_times()
            out[name] = np.array([ends.get(r, np.nan) for r in range(replications)], dtype=float)
        else:
            column = per_rep[objective.column] if objective.column in per_rep else np.full(replications, np.nan)
            out[name] = np.asarray(column, dtype=float) * objective.scale
    stations = result.log.meta.stations
    util = [np.asarray(per_rep.get(f"{s}.utilization", np.full(replications, np.nan)), dtype=float) for s in stations]
    out["utilization"] = np.stack(util, axis=-1)
    return out


class EngineEvaluator:
    """Designs of one problem evaluated by the SimPy engine on one seed and set of replications."""

    exact = True
    device = _Device()

    def __init__(
        self,
        problem: Problem,
        seed: int = 1,
        replications: int = 5,
        workers: int | None = None,
        horizon: float | None = None,
        warmup: float | None = None,
    ):
        self.problem, self.seed, self.replications = problem, seed, replications
        self.workers = max(1, os.cpu_count() or 1) if workers is None else max(1, workers)
        self.horizon, self.warmup = horizon, warmup
        self._pool: Executor | None = None
        self.invalid: dict[Design, str] = {}  # designs whose spec does not validate, and why

    def approximations(self, units: Any = None) -> tuple[str, ...]:
        return ()

    def kpis(self, problem: Problem, designs: list[Design]) -> dict[str, np.ndarray]:
        """Figures of each design in each replication: name -> [design, replication] (utilization: [.., station])."""
        names = problem.kpis
        specs: list[LineSpec | None] = []
        for design in designs:
            try:
                specs.append(problem.spec_for(design))
            except SpecError as err:  # e.g. fewer operators than a station needs: not a line to run
                specs.append(None)
                self.invalid[design] = str(err).splitlines()[0]
        args = [(s, self.seed, self.replications, names, self.horizon, self.warmup) for s in specs if s is not None]
        if self.workers > 1 and len(args) > 1:
            valid = list(self._executor().map(design_kpis, *zip(*args, strict=True)))
        else:
            valid = [design_kpis(*a) for a in args]
        n_st = len(problem.spec.stations)
        blank = {name: np.full(self.replications, np.nan) for name in names}
        blank["utilization"] = np.full((self.replications, n_st), np.nan)
        results = iter(valid)
        rows = [next(results) if s is not None else blank for s in specs]
        return {k: np.stack([r[k] for r in rows]) for k in blank}

    def _executor(self) -> Executor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (if any were started)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
