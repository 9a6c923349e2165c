"""An optimization problem over a line spec: decision variables, budgets, costs and objectives.

    >>> problem = build_problem(spec, vary=["stations.*.buffer=0..6"], budget={"buffers": 10})
    >>> problem.dims[0].label, problem.size                  # ('stations.s2.buffer', ...)
    >>> problem.overrides(design)                             # {'stations.s2.buffer': 3, ...}

A design is a tuple of numbers, one per scalar variable (buffer places, units, speeds, and the
levers of the batch rules: operator headcounts, cleaning due intervals, campaign lengths, QC
analysts, the WIP limit, skid capacities), followed by the campaign order when ``release.plan`` is
varied. Speeds divide every processing time of a station (and its ideal time); a design's spec says
so by scaling those distributions. Which paths are levers is written once, in ``LEVERS``, with the
batch rule each belongs to and its input in the JAX kernel (if any): a lever is a kernel variable when
it has an input and the kernel implements its rule (``optimizers.lines.KERNEL_RULES``), or the event
kernel does (``EVENT_RULES``) and the problem's evaluator runs it (``Problem.events``), never by a
list kept by hand.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizers.lines import EVENT_RULES, KERNEL_RULES
from optimizers.objectives import COST, Constraint, check_objectives, parse_constraint
from optimizers.spec import Optimize, Variable
from twin.durations import HOURS_PER_UNIT, to_hours
from twin.errors import InputError
from twin.experiment import with_overrides
from twin.spec.model import LineSpec

KINDS = ("buffer", "units", "speed")  # station variables the JAX kernel varies itself
BUDGET_KINDS = {"buffers": "buffer", "units": "units", "operators": "headcount"}  # budget -> variables it limits


@dataclass(frozen=True)
class Lever:
    """A spec field a search may vary besides buffers, units and speeds."""

    kind: str
    pattern: tuple[str, ...]  # path segments; "*" is a list item, named (or numbered) by the user
    integer: bool
    low: float
    high: float
    hours: bool = False  # a duration, varied in hours
    rule: str | None = None  # the batch rule (rule registry name) whose field it is; None: the release plan
    kernel: str | None = None  # its input in the JAX kernel (``optimizers.lines.lever_inputs``); None: none yet

    def in_kernel(self, events: bool) -> bool:
        """The JAX kernel varies it per design: it has an input there, and the kernel implements its rule: the scan
        kernel, or the event kernel where that one runs (``events``: ``optimizers.lines.steps_events``)."""
        return self.kernel is not None and (
            self.rule is None or self.rule in KERNEL_RULES or (events and self.rule in EVENT_RULES)
        )


LEVERS = (
    Lever("headcount", ("operators", "*", "headcount"), True, 1, 1000, rule="operators", kernel="headcount"),
    Lever("cleaning_due_batches", ("stations", "*", "cleaning", "due", "batches"), True, 1, 100_000,
          rule="cleaning", kernel="due_batches"),
    Lever("cleaning_due_hours", ("stations", "*", "cleaning", "due", "hours"), False, 1e-6, 1e6, hours=True,
          rule="cleaning", kernel="due_hours"),
    Lever("cleaning_due_kg", ("stations", "*", "cleaning", "due", "kg"), False, 1e-6, 1e12,
          rule="cleaning", kernel="due_kg"),
    Lever("campaign_batches", ("release", "plan", "*", "batches"), True, 1, 100_000, kernel="campaigns"),
    Lever("qc_analysts", ("qc", "analysts"), True, 1, 1000, rule="qc", kernel="qc_analysts"),
    Lever("wip_limit", ("release", "wip_limit", "batches"), True, 1, 10_000, rule="release_rules",
          kernel="wip_limit"),
    Lever("skid_capacity", ("skids", "*", "capacity"), True, 1, 1000, rule="skids"),
)  # fmt: skip
LEVER_OF = {lever.kind: lever for lever in LEVERS}
# ready-made ranges for forms, per lever kind: (form key, what it varies, range around the spec's value)
SUGGESTED = {
    "headcount": ("headcount", "operator headcount of each pool (spec's -1..+2)", lambda v: (max(1, v - 1), v + 2)),
    "cleaning_due_batches": ("cleaning", "batches between major cleans (half to double)",
                             lambda v: (max(1, v // 2), 2 * v)),
    "campaign_batches": ("campaigns", "batches per campaign (1 to double)", lambda v: (1, 2 * v)),
    "qc_analysts": ("qc", "QC analysts (spec's -1..+2)", lambda v: (max(1, v - 1), v + 2)),
    "wip_limit": ("wip", "WIP limit (1 to double)", lambda v: (1, 2 * v)),
    "skid_capacity": ("skids", "cleaning skid capacity (1..spec's +1)", lambda v: (1, v + 1)),
}  # fmt: skip


def suggested_levers(spec: LineSpec) -> dict[str, tuple[str, list[str]]]:
    """Ready-made ranges around the spec's own values for each lever the spec has (for forms):
    key -> (what it varies, ``--vary`` items)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for lever in LEVERS:
        if lever.kind not in SUGGESTED:
            continue
        key, label, around = SUGGESTED[lever.kind]
        try:
            dims = _expand_lever(spec, Variable(path=".".join(lever.pattern), range="1..1"), lever, "")
        except InputError:  # the spec does not set this lever
            continue
        items = []
        for d in dims:
            low, high = around(int(d.base))
            items.append(f"{d.label}={low}..{high}")
        out[key] = (label, items)
    return out


LEVER_PATHS = ", ".join(".".join("NAME" if p == "*" else p for p in lever.pattern) for lever in LEVERS)
DURATION_FIELDS = ("value", "mean", "sd", "low", "mode", "high", "scale")
Design = tuple[Any, ...]


@dataclass(frozen=True)
class Dimension:
    """One scalar decision variable."""

    label: str  # stations.NAME.KIND, or a lever's path with names (operators.team-a.headcount)
    kind: str  # buffer, units, speed, or a lever's kind
    station: int  # -1 for a lever
    low: float
    high: float
    cost: float = 0.0
    path: str = ""  # a lever's override path (list items by name or index)
    base: float | None = None  # a lever's value in the spec
    integer: bool = True
    hours: bool = False


@dataclass(frozen=True)
class Problem:
    """Variables, constraints and objectives; designs are checked and turned into spec overrides here."""

    spec: LineSpec
    dims: tuple[Dimension, ...]
    order: bool  # the campaign order of the plan is varied
    objectives: tuple[str, ...]
    budget: dict[str, float] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()

    @property
    def target(self) -> float | None:
        """The throughput the design must reach (batches/h), if a constraint says so."""
        found = [c.value for c in self.constraints if c.kpi == "throughput" and c.op == ">="]
        return max(found) if found else None

    @property
    def kernel_only(self) -> bool:
        """Every variable is one the JAX kernel varies (no lever it has no input for)."""
        return all(self.in_kernel(d) for d in self.dims)

    def in_kernel(self, d: Dimension) -> bool:
        """The JAX kernel varies this variable itself (buffers, units, speeds, and the levers it has inputs for)."""
        return d.kind in KINDS or LEVER_OF[d.kind].in_kernel(self.events)

    @functools.cached_property
    def events(self) -> bool:
        """The problem's evaluator runs the event kernel: for the most units of any design
        (``optimizers.lines.steps_events``, as ``Evaluator`` decides it)."""
        from optimizers.lines import steps_events

        most = [s.units for s in self.spec.stations]
        for d in self.dims:
            if d.kind == "units":
                most[d.station] = max(most[d.station], int(d.high))
        return steps_events(self._line, tuple(most))

    def extremes(self) -> list[Design]:
        """The designs of every variable at its low and at its high, and the spec's own: what an evaluator must be
        made for (``optimizers.evaluator.evaluator_sizes`` of their ``arrays``)."""
        base = self.baseline()
        tail = list(base[len(self.dims) :])
        return [tuple([*(d.low for d in self.dims), *tail]), tuple([*(d.high for d in self.dims), *tail]), base]

    @property
    def kpis(self) -> tuple[str, ...]:
        """The KPIs a search needs of each design: its objectives and constrained KPIs."""
        names = [o for o in self.objectives if o != COST] + [c.kpi for c in self.constraints]
        return tuple(dict.fromkeys(names or ["throughput"]))

    # -- the search space --------------------------------------------------------------------------
    @property
    def campaigns(self) -> int:
        return len(self.spec.release.plan or ())

    @property
    def continuous(self) -> bool:
        return any(not d.integer for d in self.dims)

    @property
    def size(self) -> float:
        """Number of designs before budgets (inf with a continuous variable)."""
        if self.continuous:
            return math.inf
        n = math.prod(int(d.high - d.low + 1) for d in self.dims)
        return n * (math.factorial(self.campaigns) if self.order else 1)

    def baseline(self) -> Design:
        """The spec's own design."""
        values: list[Any] = []
        for d in self.dims:
            if d.kind not in KINDS:
                values.append(d.base)
                continue
            station = self.spec.stations[d.station]
            current = {"buffer": station.buffer, "units": station.units, "speed": 1.0}[d.kind]
            values.append(current)
        if self.order:
            values.append(tuple(range(self.campaigns)))
        return tuple(values)

    def scalars(self, design: Design) -> tuple[float, ...]:
        return tuple(design[: len(self.dims)])

    def plan_order(self, design: Design) -> tuple[int, ...] | None:
        return tuple(design[len(self.dims)]) if self.order else None

    # -- constraints and cost ----------------------------------------------------------------------
    def cost(self, design: Design) -> float:
        return float(sum(d.cost * v for d, v in zip(self.dims, self.scalars(design), strict=True)))

    def totals(self, design: Design) -> dict[str, float]:
        values = self.scalars(design)
        totals = {
            budget: float(sum(v for d, v in zip(self.dims, values, strict=True) if d.kind == kind))
            for budget, kind in BUDGET_KINDS.items()
        }
        return {**totals, "cost": self.cost(design)}

    def feasible(self, design: Design) -> bool:
        totals = self.totals(design)
        return all(totals[k] <= limit + 1e-9 for k, limit in self.budget.items())

    def repair(self, values: np.ndarray) -> np.ndarray:
        """Lower integer variables (largest first) until every budget holds; speeds scale toward their low."""
        x = values.astype(float).copy()
        for kind, variable in BUDGET_KINDS.items():
            limit = self.budget.get(kind)
            idx = [i for i, d in enumerate(self.dims) if d.kind == variable]
            if limit is None or not idx:
                continue
            while sum(x[i] for i in idx) > limit + 1e-9:
                i = max((i for i in idx if x[i] > self.dims[i].low), key=lambda i: (x[i], -i))
                x[i] -= 1
        limit = self.budget.get("cost")
        if limit is not None:
            for _ in range(10_000):
                if self.cost(tuple(x)) <= limit + 1e-9:
                    break
                movable = [i for i, d in enumerate(self.dims) if d.cost > 0 and x[i] > d.low + 1e-12]
                if not movable:
                    break
                i = max(movable, key=lambda i: self.dims[i].cost * (x[i] - self.dims[i].low))
                d = self.dims[i]
                x[i] = x[i] - 1 if d.integer else max(d.low, x[i] - (self.cost(tuple(x)) - limit) / d.cost)
        return x

    # -- designs as evaluator arrays and as specs -------------------------------------------------
    def arrays(self, designs: Sequence[Design]) -> dict[str, np.ndarray | None]:
        """The kernel inputs of each design, for ``Evaluator.evaluate``: buffers, units, speeds per station, plan
        orders, and the levers of the batch rules (``optimizers.lines.lever_inputs``' names) at the values the
        design's spec has (a lever the kernel has no input for is left out: the engine evaluates it)."""
        n, n_st = len(designs), len(self.spec.stations)
        buffers = np.tile([-1 if s.buffer is None else s.buffer for s in self.spec.stations], (n, 1)).astype(np.int32)
        units = np.tile([s.units for s in self.spec.stations], (n, 1)).astype(np.int32)
        speed = np.ones((n, n_st))
        levers = {k: np.repeat(np.asarray(v)[None], n, axis=0) for k, v in self._lever_inputs.items()}
        target = {"buffer": buffers, "units": units, "speed": speed}
        for i, design in enumerate(designs):
            for d, v in zip(self.dims, self.scalars(design), strict=True):
                if d.kind in KINDS:
                    target[d.kind][i, d.station] = v
                elif self.in_kernel(d) and v != d.base:  # the value the design's spec holds (``overrides``)
                    value = self._kernel_value(d, v)
                    key = LEVER_OF[d.kind].kernel
                    if levers[key].ndim == 1:
                        levers[key][i] = value
                    else:
                        levers[key][i, self._item(d)] = value
        orders = np.array([self.plan_order(x) for x in designs]) if self.order else None
        return {"buffers": buffers, "units": units, "speed": speed, "orders": orders, **levers}

    @functools.cached_property
    def _line(self) -> Any:
        from optimizers.lines import line_arrays

        return line_arrays(self.spec)

    @functools.cached_property
    def _lever_inputs(self) -> dict[str, np.ndarray]:
        from optimizers.lines import lever_inputs

        return lever_inputs(self._line)

    @functools.cached_property
    def _item_names(self) -> dict[str, list[Any]]:
        """The names of the items of each list a lever's ``*`` steps through (``LEVERS``' patterns)."""
        data, out = self.spec.to_data(), {}
        for lever in (lever for lever in LEVERS if "*" in lever.pattern):
            at = lever.pattern.index("*")
            node: Any = data
            for key in lever.pattern[:at]:
                node = node.get(key) if isinstance(node, dict) else None
            out[".".join(lever.pattern[:at])] = [x.get("name") for x in node or () if isinstance(x, dict)]
        return out

    def _item(self, d: Dimension) -> int:
        """The list item a lever varies (the station of a cleaning threshold, the campaign of a length, the operator
        pool of a headcount): its name in the override path, or its index."""
        at = LEVER_OF[d.kind].pattern.index("*")
        steps = d.path.split(".")
        names, step = self._item_names[".".join(steps[:at])], steps[at]
        return names.index(step) if step in names else int(step)

    def _kernel_value(self, d: Dimension, v: Any) -> float:
        """A lever's value as the engine compiles it from the override (a duration in hours, as written)."""
        value = _override_value(d, v)
        return to_hours(value, self.spec.time_unit) if d.hours else value

    def overrides(self, design: Design) -> dict[str, Any]:
        """``--set`` style overrides (path -> value) that turn the spec into this design."""
        data = self.spec.to_data()
        out: dict[str, Any] = {}
        plan = [dict(c) for c in data["release"].get("plan") or ()]
        plan_changed = self.order
        for d, v in zip(self.dims, self.scalars(design), strict=True):
            if d.kind == "campaign_batches":
                index = int(d.path.split(".")[2])
                plan_changed |= plan[index]["batches"] != int(v)
                plan[index]["batches"] = int(v)
                continue
            if d.kind not in KINDS:
                if v != d.base:
                    out[d.path] = _override_value(d, v)
                continue
            name = self.spec.stations[d.station].name
            if d.kind == "speed":
                if abs(v - 1.0) > 1e-12:
                    station = data["stations"][d.station]
                    out[f"stations.{name}.process_time"] = scale_durations(station["process_time"], v, self.spec)
                    if "ideal_time" in station:
                        out[f"stations.{name}.ideal_time"] = scale_durations(station["ideal_time"], v, self.spec)
            else:
                out[f"stations.{name}.{d.kind}"] = int(v)
        if plan_changed:
            order = self.plan_order(design) or tuple(range(len(plan)))
            out["release.plan"] = [plan[i] for i in order]
        return out

    def describe(self, design: Design) -> dict[str, Any]:
        """Variable label -> value (speeds rounded), plus the plan order by product."""
        out: dict[str, Any] = {
            d.label: (None if v is None else round(float(v), 4) if not d.integer else int(v))
            for d, v in zip(self.dims, self.scalars(design), strict=True)
        }
        if self.order:
            plan = self.spec.release.plan or ()
            out["release.plan"] = [f"{plan[i].product} x{plan[i].batches}" for i in self.plan_order(design)]
        return out

    def diff(self, design: Design) -> list[tuple[str, Any, Any]]:
        """(variable, spec's value, design's value) for each variable the design changes."""
        base, new = self.describe(self.baseline()), self.describe(design)
        return [(k, base[k], new[k]) for k in new if base[k] != new[k]]

    def spec_for(self, design: Design) -> LineSpec:
        """The spec of a design (its ``optimize`` block dropped: a plain line to run)."""
        overrides = {**self.overrides(design), "extensions.optimize": None}
        return with_overrides(self.spec, overrides, source="<optimized design>")


def _override_value(d: Dimension, v: Any) -> Any:
    """The ``--set`` value of a lever: a duration in hours as text, a whole number, or a number."""
    return f"{float(v):.12g} h" if d.hours else (int(v) if d.integer else float(v))


def scale_durations(value: Any, speed: float, spec: LineSpec) -> Any:
    """A duration, distribution or per-product map of them, every duration divided by ``speed``."""
    if isinstance(value, dict) and "dist" not in value:
        return {k: scale_durations(v, speed, spec) for k, v in value.items()}
    if isinstance(value, dict):
        out = dict(value)
        for key in DURATION_FIELDS:
            if key in out and not (value["dist"] == "weibull" and key == "shape"):
                out[key] = _scaled(out[key], speed, spec)
        if "values" in out:
            out["values"] = [_scaled(v, speed, spec) for v in out["values"]]
        return out
    return _scaled(value, speed, spec)


def _scaled(duration: Any, speed: float, spec: LineSpec) -> float:
    return to_hours(duration, spec.time_unit) / speed / HOURS_PER_UNIT[spec.time_unit]


# -- building a problem from the spec's block and the command line ---------------------------------
def build_problem(
    spec: LineSpec,
    vary: Sequence[str] = (),
    budget: Mapping[str, float] | None = None,
    objective: str | Sequence[str] | None = None,
    target: float | None = None,
    costs: Sequence[str] = (),
    constraints: Sequence[str | Constraint] = (),
) -> Problem:
    """A problem from ``--vary PATH=RANGE`` items (or the spec's ``optimize`` block) and the other options.

    Raises ``InputError`` for a path that does not exist, an empty range, a budget no design can
    meet, or an objective the evaluator cannot compute.
    """
    block: Optimize | None = spec.extension("optimize")
    variables = [_parse_vary(text) for text in vary] if vary else list(block.vary if block else ())
    if not variables:
        raise InputError("nothing to vary: give --vary PATH=RANGE (e.g. stations.*.buffer=0..10) or an optimize block")
    dims: list[Dimension] = []
    order = False
    for var in variables:
        if var.path == "release.plan":
            order = _check_order(spec, var)
            continue
        dims.extend(_expand(spec, var))
    labels = [d.label for d in dims]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise InputError(f"--vary: {repeated[0]} is varied twice")
    dims = _apply_costs(spec, dims, costs)
    if not dims and not order:
        raise InputError("--vary: no variable left to vary")
    objectives = _objectives(objective if objective is not None else (block.objective if block else "throughput"))
    if budget is None and block is not None and block.budget:
        budget = dict(block.budget)
    if target is None and block is not None and block.target:
        target = block.target.get("throughput_per_hour")
    if not constraints and block is not None:
        constraints = block.constraints
    bounds = [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
    if target is not None:
        bounds.append(Constraint("throughput", ">=", float(target)))
    problem = Problem(spec, tuple(dims), order, objectives, dict(budget or {}), tuple(dict.fromkeys(bounds)))
    _check_problem(problem)
    return problem


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    path, sep, value = text.partition("=")
    if not sep or not path.strip() or not value.strip():
        raise InputError(f"{option} {text!r}: expected PATH=VALUE")
    return path.strip(), value.strip()


def _parse_vary(text: str) -> Variable:
    path, value = parse_assignment(text, "--vary")
    return Variable(path=path, range=value)


def _expand(spec: LineSpec, var: Variable) -> list[Dimension]:
    parts = var.path.split(".")
    where = f"--vary {var.path}={var.range}"
    if len(parts) == 3 and parts[0] == "stations" and parts[2] in KINDS:
        return _expand_station(spec, var, where)
    for lever in LEVERS:
        fits = len(parts) == len(lever.pattern)
        if fits and all(p == "*" or p == q for p, q in zip(lever.pattern, parts, strict=True)):
            return _expand_lever(spec, var, lever, where)
    if len(parts) == 3 and parts[0] == "stations":
        raise InputError(f"{where}: cannot vary {parts[2]!r}; a station varies its buffer, units or speed")
    raise InputError(f"{where}: path should be stations.NAME.buffer|units|speed, release.plan, or {LEVER_PATHS}")


def _expand_station(spec: LineSpec, var: Variable, where: str) -> list[Dimension]:
    _, name, kind = var.path.split(".")
    names = [s.name for s in spec.stations]
    pull = spec.release.interarrival is None
    if name == "*":
        indexes = [j for j in range(len(names)) if not (kind == "buffer" and pull and j == 0)]
    elif name in names:
        indexes = [names.index(name)]
        if kind == "buffer" and pull and indexes[0] == 0:
            raise InputError(f"{where}: the first station pulls its batches, so its buffer is never used")
    else:
        raise InputError(f"{where}: no station named {name!r} (stations: {', '.join(names)})")
    low, high = _parse_range(where, var.range, integer=kind != "speed")
    if kind == "buffer" and low < 0:
        raise InputError(f"{where}: buffer places must be >= 0")
    if kind == "units" and (low < 1 or high > 1000):
        raise InputError(f"{where}: units must lie in 1..1000")
    if kind == "speed" and low <= 0:
        raise InputError(f"{where}: speeds must be > 0")
    return [
        Dimension(f"stations.{names[j]}.{kind}", kind, j, low, high, var.cost or 0.0, integer=kind != "speed")
        for j in indexes
    ]


def _expand_lever(spec: LineSpec, var: Variable, lever: Lever, where: str) -> list[Dimension]:
    """The dimensions of a lever path: one per matching list item that sets the field."""
    data = spec.to_data()
    found: list[tuple[str, str, Any]] = []  # (label, override path, value in the spec)

    def walk(node: Any, pattern: tuple[str, ...], given: list[str], label: list[str], path: list[str]) -> None:
        if not pattern:
            found.append((".".join(label), ".".join(path), node))
            return
        key, want = pattern[0], given[0]
        if key == "*":
            if not isinstance(node, list):
                return
            matched = False
            for i, item in enumerate(node):
                name = item.get("name", item.get("product")) if isinstance(item, dict) else None
                if want in ("*", name, str(i)):
                    matched = True
                    named = name if name is not None and sum(
                        1 for x in node if isinstance(x, dict) and x.get("name", x.get("product")) == name
                    ) == 1 else str(i)  # fmt: skip
                    step = named if named == name and "name" in item else str(i)  # --set finds items by name
                    walk(item, pattern[1:], given[1:], [*label, named], [*path, step])
            if not matched and want != "*":
                names = [str(x.get("name", x.get("product"))) for x in node if isinstance(x, dict)]
                raise InputError(f"{where}: no item {want!r} in {'.'.join(label)} ({', '.join(names)})")
        elif isinstance(node, dict) and node.get(key) is not None:
            walk(node[key], pattern[1:], given[1:], [*label, key], [*path, key])

    walk(data, lever.pattern, var.path.split("."), [], [])
    if not found:
        raise InputError(f"{where}: the spec sets no {var.path}; give it a value first (e.g. with --set) to vary it")
    low, high = _parse_range(where, var.range, integer=lever.integer)
    if low < lever.low or high > lever.high:
        raise InputError(f"{where}: must lie in {lever.low:g}..{lever.high:g}")
    dims = []
    for label, path, value in found:
        base = to_hours(value, spec.time_unit) if lever.hours else float(value)
        base = int(base) if lever.integer else base
        dims.append(Dimension(label, lever.kind, -1, low, high, var.cost or 0.0, path=path, base=base,
                              integer=lever.integer, hours=lever.hours))  # fmt: skip
    return dims


def _parse_range(where: str, text: str, integer: bool) -> tuple[float, float]:
    low_text, sep, high_text = text.partition("..")
    try:
        low, high = (float(low_text), float(high_text)) if sep else (float(text), float(text))
    except ValueError:
        raise InputError(f"{where}: expected a range LOW..HIGH (e.g. 0..10)") from None
    if integer and (low != int(low) or high != int(high)):
        raise InputError(f"{where}: expected whole numbers (e.g. 0..10)")
    if low > high:
        raise InputError(f"{where}: empty range ({text}: low above high)")
    if not integer and low == high:
        raise InputError(f"{where}: empty range ({text}: a speed range needs low < high)")
    return (int(low), int(high)) if integer else (low, high)


def _check_order(spec: LineSpec, var: Variable) -> bool:
    where = f"--vary {var.path}={var.range}"
    if var.range != "order":
        raise InputError(f"{where}: release.plan can only vary its order (release.plan=order)")
    if spec.release.mode != "plan" or len(spec.release.plan or ()) < 2:
        raise InputError(f"{where}: needs release mode 'plan' with at least two campaigns")
    return True


def _apply_costs(spec: LineSpec, dims: list[Dimension], costs: Sequence[str]) -> list[Dimension]:
    from dataclasses import replace

    out = list(dims)
    for text in costs:
        path, value = parse_assignment(text, "--cost")
        try:
            amount = float(value)
        except ValueError:
            raise InputError(f"--cost {text!r}: expected a number") from None
        if not (amount >= 0 and math.isfinite(amount)):
            raise InputError(f"--cost {text!r}: expected a number >= 0")
        parts = path.split(".")
        matched = [
            i for i, d in enumerate(out)
            if len(parts) == 3 and parts[2] == d.kind and parts[1] in ("*", spec.stations[d.station].name)
        ]  # fmt: skip
        if not matched:
            raise InputError(f"--cost {text!r}: no varied variable matches {path} (varied: "
                             f"{', '.join(d.label for d in out) or 'none'})")  # fmt: skip
        for i in matched:
            out[i] = replace(out[i], cost=amount)
    return out


def _objectives(objective: str | Sequence[str]) -> tuple[str, ...]:
    names = (objective,) if isinstance(objective, str) else tuple(objective)
    return check_objectives(names)


def _check_problem(p: Problem) -> None:
    if "cost" in p.objectives and not any(d.cost > 0 for d in p.dims):
        raise InputError("--objective cost: give a cost to at least one variable (--cost PATH=AMOUNT)")
    if p.objectives == ("cost",) and not p.constraints:
        raise InputError("--objective cost: needs a target (--target throughput=BATCHES_PER_HOUR, or KPI<=X / KPI>=X)")
    if "makespan" in p.objectives and not (p.spec.release.mode == "plan" and not p.spec.release.repeat):
        raise InputError("--objective makespan: needs release mode 'plan' without repeat (a plan that ends)")
    for key, limit in p.budget.items():
        if key not in (*BUDGET_KINDS, "cost"):
            raise InputError(f"--budget {key}: expected one of {', '.join((*BUDGET_KINDS, 'cost'))}")
        low = sum(d.low * d.cost for d in p.dims) if key == "cost" else sum(
            d.low for d in p.dims if d.kind == BUDGET_KINDS[key]
        )  # fmt: skip
        if key in BUDGET_KINDS and not any(d.kind == BUDGET_KINDS[key] for d in p.dims):
            raise InputError(f"--budget {key}={limit:g}: no {BUDGET_KINDS[key]} variable is varied")
        if low > limit + 1e-9:
            raise InputError(f"--budget {key}={limit:g}: no design meets it (the smallest design needs {low:g})")
