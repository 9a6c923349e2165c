"""Search methods over a problem's designs, all scoring with one evaluator (common random numbers).

    >>> search = Search(problem, evaluator, evaluations=500, callback=print)
    >>> run_method(search, "auto", seed=1)
    >>> search.ranked()[0].design, search.pareto()

- ``exhaustive``: every feasible design, in batches (when there are at most ``evaluations``);
- ``cmaes``: CMA-ES (evosax) on a continuous relaxation: integers by rounding, campaign orders by
  random keys, budgets by repair; several weighted scalarizations for a Pareto front;
- ``gradient``: Adam (optax) on the speeds, with derivatives through the recursion;
- ``random``: uniform feasible designs (a baseline).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizers.objectives import COST, OBJECTIVES
from optimizers.problem import Design, Problem
from twin.errors import InputError

METHODS = ("auto", "exhaustive", "cmaes", "gradient", "random")
INFEASIBLE = 1e12  # score offset of designs that miss a target or constraint
INVALID = 1e13  # score of designs whose spec does not validate (never reported)


@dataclass(frozen=True)
class Scored:
    """A design and the evaluator's means over the search replications."""

    design: Design
    throughput: float
    lead_time: float
    makespan: float
    cost: float
    utilization: tuple[float, ...]
    score: float  # lower is better (single objective)
    kpis: dict[str, float] = field(default_factory=dict)  # objective name -> mean (what the problem needs)

    def figure(self, name: str) -> float:
        return self.kpis.get(name, getattr(self, name, math.nan))


@dataclass(frozen=True)
class Progress:
    """What a callback learns after each batch of evaluations."""

    evaluations: int
    budget: int
    best: Scored | None
    method: str


class Search:
    """The archive of evaluated designs, the evaluation budget and the best so far."""

    def __init__(
        self,
        problem: Problem,
        evaluator: Any,
        evaluations: int,
        callback: Callable[[Progress], Any] | None = None,
    ):
        self.problem, self.evaluator, self.budget = problem, evaluator, evaluations
        self.callback = callback
        self.archive: dict[Design, Scored] = {}
        self.history: list[tuple[int, float]] = []  # (evaluations, best score)
        self.method = "auto"
        self.stopped = False

    @property
    def remaining(self) -> int:
        return 0 if self.stopped else self.budget - len(self.archive)

    def score(self, kpis: dict[str, float], cost: float, valid: bool = True) -> float:
        """Lower is better: the objective (negated when maximized), far above any feasible score when a
        design misses a constraint (by how much it misses)."""
        if not valid:
            return INVALID
        problem = self.problem
        missed = sum(c.shortfall(kpis.get(c.kpi, math.nan)) for c in problem.constraints)
        if missed > 0:
            return INFEASIBLE + min(missed, 1e11)
        objective = problem.objectives[0]
        if objective == COST:
            return cost
        value = kpis.get(objective, math.nan)
        if math.isnan(value):
            return INFEASIBLE / 2
        return -value if OBJECTIVES[objective].sense == "max" else value

    def evaluate(self, designs: list[Design]) -> list[Scored | None]:
        """Scores of ``designs`` (new ones simulated while the budget lasts; None for those left out)."""
        new = list(dict.fromkeys(d for d in designs if d not in self.archive))[: max(self.remaining, 0)]
        if new:
            figures = self.evaluator.kpis(self.problem, new)
            with warnings.catch_warnings():  # a KPI with no value in any replication (no exits) is NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                means = {k: np.nanmean(v, axis=1) for k, v in figures.items()}
            self._record(new, means)
        return [self.archive.get(d) for d in designs]

    def _record(self, designs: list[Design], means: dict[str, Any]) -> None:
        nan = np.full(len(designs), np.nan)
        for i, d in enumerate(designs):
            cost = self.problem.cost(d)
            kpis = {k: float(v[i]) for k, v in means.items() if k != "utilization"}
            util = means.get("utilization")
            t, lt, ms = (float(means.get(k, nan)[i]) for k in ("throughput", "lead_time", "makespan"))
            valid = d not in getattr(self.evaluator, "invalid", {})
            self.archive[d] = Scored(d, t, lt, ms, cost, tuple(float(u) for u in (util[i] if util is not None else ())),
                                     self.score(kpis, cost, valid), kpis)  # fmt: skip
        ranked = self.ranked()
        best = ranked[0] if ranked else None
        if best is not None:
            self.history.append((len(self.archive), best.score))
        if self.callback is not None and self.callback(Progress(len(self.archive), self.budget, best, self.method)):
            self.stopped = True  # a callback that returns True stops the search

    def ranked(self) -> list[Scored]:
        """Evaluated designs whose spec is valid, best first."""
        return sorted((s for s in self.archive.values() if s.score < INVALID), key=lambda s: (s.score, s.cost))

    def pareto(self) -> list[Scored]:
        """Designs no other design beats on both the KPI and cost (lower), cheapest first."""
        kpi = self.problem.objectives[0]
        sign = 1.0 if OBJECTIVES[kpi].sense == "max" else -1.0
        valid = [s for s in self.archive.values() if s.score < INFEASIBLE]
        good = {id(s): sign * s.figure(kpi) for s in valid}
        points = sorted(valid, key=lambda s: (s.cost, -good[id(s)]))
        front, best = [], -math.inf
        for s in points:
            if good[id(s)] > best + 1e-12:
                front.append(s)
                best = good[id(s)]
        return front


# -- encoding designs as points of [0, 1]^n ----------------------------------------------------------
def dimension_count(problem: Problem) -> int:
    return len(problem.dims) + (problem.campaigns if problem.order else 0)


def decode(problem: Problem, u: np.ndarray) -> list[Design]:
    """Points of [0, 1]^n (clipped) -> feasible designs: integers by bins, orders by sorting keys, then repair."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    designs = []
    for row in u:
        values = []
        for d, x in zip(problem.dims, row, strict=False):
            if d.integer:
                values.append(d.low + min(int(x * (d.high - d.low + 1)), int(d.high - d.low)))
            else:
                values.append(d.low + x * (d.high - d.low))
        values = list(problem.repair(np.array(values, dtype=float))) if problem.budget else values
        design: list[Any] = [int(v) if d.integer else float(v) for d, v in zip(problem.dims, values, strict=True)]
        if problem.order:
            design.append(tuple(int(i) for i in np.argsort(row[len(problem.dims) :], kind="stable")))
        designs.append(tuple(design))
    return designs


def encode(problem: Problem, design: Design) -> np.ndarray:
    """A point of [0, 1]^n whose decoding is ``design`` (centre of its integer bin)."""
    out = []
    for d, v in zip(problem.dims, problem.scalars(design), strict=True):
        v = d.low if v is None else min(max(v, d.low), d.high)
        out.append((v - d.low + 0.5) / (d.high - d.low + 1) if d.integer else (v - d.low) / (d.high - d.low))
    if problem.order:
        order = problem.plan_order(design)
        keys = np.empty(len(order))
        keys[list(order)] = (np.arange(len(order)) + 0.5) / len(order)
        out.extend(keys)
    return np.array(out)


# -- methods -----------------------------------------------------------------------------------------
def all_designs(problem: Problem, limit: int) -> list[Design] | None:
    """Every feasible design, or None when there are more than ``limit`` (or a continuous variable)."""
    if problem.size > 50 * max(limit, 1000) or problem.size > 5_000_000:
        return None
    ranges = [range(int(d.low), int(d.high) + 1) for d in problem.dims]
    orders = list(itertools.permutations(range(problem.campaigns))) if problem.order else [None]
    out = []
    for values in itertools.product(*ranges):
        for order in orders:
            design = (*values, order) if problem.order else tuple(values)
            if problem.feasible(design):
                out.append(design)
                if len(out) > limit:
                    return None
    return out


def choose_method(problem: Problem, evaluations: int, gradients: bool = True) -> str:
    if not problem.continuous and all_designs(problem, evaluations) is not None:
        return "exhaustive"
    if gradients and gradient_ready(problem):
        return "gradient"
    return "cmaes"


def gradient_ready(problem: Problem) -> bool:
    """The problem is the gradient search's: speeds only, one objective among throughput, lead time, cost."""
    return (
        all(d.kind == "speed" for d in problem.dims) and not problem.order and len(problem.objectives) == 1
        and problem.objectives[0] in ("throughput", "lead_time", COST)
        and all(c.kpi == "throughput" and c.op == ">=" for c in problem.constraints)
    )  # fmt: skip


def run_method(search: Search, method: str, seed: int = 0, batch: int = 64) -> str:
    """Run ``method`` (``auto`` picks one) until the budget is spent; returns the method used."""
    problem = search.problem
    if method not in METHODS:
        raise InputError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    gradients = hasattr(search.evaluator, "gradient")
    if method == "gradient" and not (gradients and gradient_ready(problem)):
        raise InputError("--method gradient: needs speeds only, the JAX evaluator, and throughput, lead_time or cost")
    if method == "auto":
        method = choose_method(problem, search.budget, gradients)
    search.method = method
    search.evaluate([problem.baseline()] if problem.feasible(problem.baseline()) else [])
    if method == "exhaustive":
        designs = all_designs(problem, search.budget)
        if designs is None:
            raise InputError(
                f"--method exhaustive: more than {search.budget} feasible designs; raise --evals or use cmaes"
            )
        for lo in range(0, len(designs), batch):
            search.evaluate(designs[lo : lo + batch])
    elif method == "random":
        rng = np.random.default_rng(seed)
        while search.remaining > 0:
            before = len(search.archive)
            search.evaluate(decode(problem, rng.random((batch, dimension_count(problem)))))
            if len(search.archive) == before and all_designs(problem, search.budget) is not None:
                break  # every design was seen
    elif method == "gradient":
        gradient_search(search, seed)
    else:
        weights = [None] if len(problem.objectives) == 1 else list(np.linspace(0.0, 1.0, 5))
        if len(weights) > 1:
            for i, w in enumerate(weights):
                cmaes_search(search, seed + i, search.remaining // (len(weights) - i), weight=w)
            return method
        rounds = 0
        while search.remaining > 0:  # most of the budget to CMA-ES, the rest to polishing its best
            before = len(search.archive)
            cmaes_search(search, seed + rounds, max(int(search.remaining * 0.7), 1))
            polish(search)
            rounds += 1
            if len(search.archive) == before:
                break
    return method


def polish(search: Search) -> None:
    """Local search from the best design while the budget lasts: each integer variable one step up or
    down, one step moved from one variable to another (budgets stay met), two campaigns swapped."""
    problem = search.problem
    n = len(problem.dims)
    while search.remaining > 0 and search.ranked():
        best = search.ranked()[0]
        values, order = list(problem.scalars(best.design)), problem.plan_order(best.design)
        moves: list[list[Any]] = []
        for i, d in enumerate(problem.dims):
            if not d.integer:
                continue
            for step in (-1, 1):
                moves.append(_moved(values, {i: step}))
                moves.extend(
                    _moved(values, {i: step, j: -step}) for j in range(n) if j != i and problem.dims[j].integer
                )
        designs = [(*m, order) if problem.order else tuple(m) for m in moves]
        if order is not None:
            for a, b in itertools.combinations(range(len(order)), 2):
                swapped = list(order)
                swapped[a], swapped[b] = swapped[b], swapped[a]
                designs.append((*values, tuple(swapped)))
        inside = [
            x for x in designs
            if all(d.low <= v <= d.high for d, v in zip(problem.dims, x, strict=False)) and problem.feasible(x)
        ]  # fmt: skip
        new = [x for x in dict.fromkeys(inside) if x not in search.archive]
        if not new:
            return
        search.evaluate(new)
        if search.ranked()[0].score >= best.score:
            return


def _moved(values: list[Any], steps: dict[int, int]) -> list[Any]:
    out = list(values)
    for i, step in steps.items():
        out[i] = out[i] + step
    return out


def cmaes_search(search: Search, seed: int, evaluations: int, weight: float | None = None) -> None:
    """CMA-ES (evosax) in [0, 1]^n with restarts (IPOP: a larger population each time it stalls);
    ``weight`` scalarizes throughput against cost for a Pareto front."""
    import jax
    import jax.numpy as jnp

    problem = search.problem
    n = dimension_count(problem)
    key = jax.random.key(seed)
    rng = np.random.default_rng(seed)
    stop_at = len(search.archive) + evaluations
    kpi = problem.objectives[0]
    thr_scale = max(abs(np.nan_to_num(search.ranked()[0].figure(kpi))), 1e-9) if search.ranked() else 1.0
    cost_scale = max(sum(d.high * d.cost for d in problem.dims), 1e-9)
    population = max(8, 4 + int(3 * math.log(n)))
    start = encode(problem, problem.baseline())
    asked, most = 0, 20 * max(evaluations, 1)  # a space smaller than the budget stops the restarts
    restarts = 0
    while search.remaining > 0 and len(search.archive) < stop_at and asked < most:
        init, ask, tell, params = _cma_es(population, n)
        key, init_key = jax.random.split(key)
        state = init(init_key, jnp.asarray(start), params)
        stale = 0
        while search.remaining > 0 and len(search.archive) < stop_at and stale < 6 and asked < most:
            key, ask_key, tell_key = jax.random.split(key, 3)
            x, state = ask(ask_key, state, params)
            designs = decode(problem, np.asarray(x))
            asked += len(designs)
            before = len(search.archive)
            scored = search.evaluate(designs)
            stale = stale + 1 if len(search.archive) == before else 0
            fit = np.array([np.inf if s is None else _fitness(s, kpi, weight, thr_scale, cost_scale) for s in scored])
            worst = np.max(fit[np.isfinite(fit)]) if np.isfinite(fit).any() else 0.0
            state, _ = tell(tell_key, x, jnp.asarray(np.where(np.isfinite(fit), fit, worst + 1.0)), state, params)
        population *= 2
        restarts += 1
        # IPOP restarts: alternately from a random point and from the best design so far
        start = rng.random(n) if restarts % 2 or not search.ranked() else encode(problem, search.ranked()[0].design)


@functools.lru_cache(maxsize=16)
def _cma_es(population: int, n: int) -> tuple[Any, Any, Any, Any]:
    """evosax's CMA-ES for one population size and dimension, its steps jitted once."""
    import jax
    import jax.numpy as jnp
    from evosax.algorithms import CMA_ES

    es = CMA_ES(population_size=population, solution=jnp.zeros(n))
    return jax.jit(es.init), jax.jit(es.ask), jax.jit(es.tell), es.default_params.replace(std_init=0.3)


def _fitness(s: Scored, kpi: str, weight: float | None, scale: float, cost_scale: float) -> float:
    if weight is None:
        return s.score
    sign = -1.0 if OBJECTIVES[kpi].sense == "max" else 1.0
    return sign * weight * s.figure(kpi) / scale + (1 - weight) * s.cost / cost_scale


def gradient_search(search: Search, seed: int, steps: int | None = None) -> None:
    """Adam on the speeds (in [0, 1] coordinates) with derivatives of the recursion's exit rate."""
    import optax

    problem = search.problem
    ev = search.evaluator
    objective = problem.objectives[0]
    lows = np.array([d.low for d in problem.dims])
    spans = np.array([d.high - d.low for d in problem.dims])
    costs = np.array([d.cost for d in problem.dims])
    cost_scale = max(float(costs @ (lows + spans)), 1e-9)
    u = np.clip(encode(problem, problem.baseline()), 0.0, 1.0)
    optimizer = optax.adam(0.05)
    opt_state = optimizer.init(u)
    base = problem.arrays([problem.baseline()])
    stations = [d.station for d in problem.dims]
    for _ in range(steps or search.remaining):
        if search.remaining <= 0:
            break
        design = decode(problem, u[None])[0]
        arrays = problem.arrays([design])
        (rate, lead), jac, kpis = ev.gradient(arrays["buffers"][0], arrays["units"][0], arrays["speed"][0],
                                              None if base["orders"] is None else base["orders"][0])  # fmt: skip
        d_rate, d_lead = jac[0][stations] * spans, jac[1][stations] * spans  # d/du of the scalars
        if objective == "throughput":
            grad = -d_rate / max(rate, 1e-9)
        elif objective == "lead_time":
            grad = d_lead / max(lead, 1e-9)
        else:  # cost with a throughput target: a penalty for the shortfall
            target = problem.target or 0.0
            grad = costs * spans / cost_scale - (10.0 * d_rate / max(target, 1e-9) if rate < target * 1.002 else 0.0)
        if design not in search.archive:
            means = {k: np.array([np.mean(kpis[k])]) for k in ("throughput", "lead_time", "makespan")}
            search._record([design], {**means, "utilization": np.mean(kpis["utilization"], axis=0)[None]})
        updates, opt_state = optimizer.update(grad, opt_state, u)
        u = np.clip(np.asarray(optax.apply_updates(u, updates)), 0.0, 1.0)
