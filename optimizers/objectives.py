"""What a search can optimize and constrain: one table read by the problem, the evaluators, the
search, the confirmation, the CLI, the dashboard and the docs.

    >>> OBJECTIVES["oee"].column, OBJECTIVES["oee"].sense      # ('oee', 'max')
    >>> parse_constraint("scrapped_batches<=2")                 # Constraint('scrapped_batches', '<=', 2.0)

Each KPI objective is a per-replication column of ``twin.kpis.report.compute_kpis`` (times a scale),
so the engine evaluator, the SimPy confirmation and ``twin run`` report the same figure. ``kernel``
names the field of the JAX kernel's ``Evaluation`` that computes it, or None where only the engine
can (the search then runs on the engine).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from twin.errors import InputError

HOURS_PER_WEEK = 168.0


@dataclass(frozen=True)
class Objective:
    name: str
    column: str | None  # compute_kpis per-replication column; None: makespan (from the log's end rows)
    sense: Literal["max", "min"]
    label: str
    unit: str
    scale: float = 1.0
    kernel: str | None = None  # the JAX Evaluation field, when the kernel computes it


_TABLE = (
    Objective("throughput", "throughput_per_hour", "max", "Throughput", "batches/h", kernel="throughput"),
    Objective("lead_time", "lead_time_hours", "min", "Lead time", "h", kernel="lead_time"),
    Objective("makespan", None, "min", "Makespan", "h", kernel="makespan"),
    Objective("oee", "oee", "max", "Line OEE", "share", kernel="oee"),
    Objective("release_lead_time", "release_lead_time_hours", "min", "Release lead time (to QC approval)", "h",
              kernel="release_lead_time"),
    Objective("output_per_week", "throughput_per_hour", "max", "Output per week", "batches/week",
              scale=HOURS_PER_WEEK, kernel="throughput"),
    Objective("scrapped_batches", "rejected_batches", "min", "Scrapped batches", "batches", kernel="rejected"),
)  # fmt: skip

OBJECTIVES: dict[str, Objective] = {o.name: o for o in _TABLE}
COST = "cost"  # the design's cost: an objective of its own, not a KPI
NAMES = (*OBJECTIVES, COST)


@dataclass(frozen=True)
class Constraint:
    """A bound a confirmed design must meet: ``kpi op value`` (``throughput>=0.1``)."""

    kpi: str
    op: Literal["<=", ">="]
    value: float

    def met(self, figure: float) -> bool:
        if figure is None or math.isnan(figure):
            return False
        return figure <= self.value + 1e-12 if self.op == "<=" else figure >= self.value - 1e-12

    def shortfall(self, figure: float) -> float:
        """How far ``figure`` misses the bound (0 when met)."""
        if figure is None or math.isnan(figure):
            return math.inf
        return max(0.0, figure - self.value) if self.op == "<=" else max(0.0, self.value - figure)

    def __str__(self) -> str:
        return f"{self.kpi}{self.op}{self.value:g}"


_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|=)\s*(\S+)\s*$")


def parse_constraint(text: str) -> Constraint:
    """``KPI<=X``, ``KPI>=X`` or ``throughput=X`` (a throughput target: at least X batches/h)."""
    match = _CONSTRAINT.match(text)
    if not match:
        raise InputError(f"--target {text!r}: expected KPI<=VALUE or KPI>=VALUE (KPIs: {', '.join(OBJECTIVES)})")
    name, op, raw = match.groups()
    name = "throughput" if name == "throughput_per_hour" else name
    if name not in OBJECTIVES:
        raise InputError(f"--target {text!r}: unknown KPI {name!r} (KPIs: {', '.join(OBJECTIVES)})")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"--target {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"--target {text!r}: expected a finite number >= 0")
    if op == "=":
        if name != "throughput":
            raise InputError(f"--target {text!r}: write {name}<={raw} or {name}>={raw}")
        op = ">="
    if name == "throughput" and op == ">=" and value <= 0:
        raise InputError(f"--target {text!r}: must be > 0")
    return Constraint(name, op, value)  # type: ignore[arg-type]


def check_objectives(names: tuple[str, ...]) -> tuple[str, ...]:
    """The objective names, checked: known, and at most a Pareto pair of one KPI against cost."""
    for name in names:
        if name not in NAMES:
            raise InputError(f"--objective {name!r}: unknown; objectives: {', '.join(NAMES)}")
    names = tuple(dict.fromkeys(names))
    if len(names) > 2 or (len(names) == 2 and COST not in names):
        raise InputError("--objective: several objectives make a Pareto front of one KPI against cost")
    if len(names) == 2:  # the KPI first, then cost
        names = (*tuple(n for n in names if n != COST), COST)
    return names
