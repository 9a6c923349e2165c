"""Evaluate many designs of one line at once, on the engine's random draws (common random numbers).

    >>> ev = Evaluator(spec, seed=1, replications=10, max_buffer=10)
    >>> res = ev.evaluate(buffers=[[-1, 2, 3], [-1, 4, 1]])     # two designs, -1 = unlimited
    >>> res.throughput.shape                                   # (2 designs, 10 replications)
    >>> res.mean("throughput")                                 # per design

A design sets buffers, units and speeds of every station (processing times are divided by the
speed) and, in plan mode, the order of the campaigns. Every design is simulated in every
replication with the same draws, so differences between designs are sharp. Designs go through
the compiled kernel in chunks of a fixed size, so a search compiles once.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from optimizers.events import EventShape, compiled_event_kernel, event_gradient_kernel
from optimizers.kernel import Shape, compiled_kernel, gradient_kernel, out_of_failures, out_of_places
from optimizers.lines import (
    Draws,
    LineArrays,
    approximations_for,
    cleaning_constants,
    conwip_outside,
    crews_unserved,
    draw_inputs,
    lever_inputs,
    line_arrays,
    operators_one_by_one,
    plan_sequence,
    pool_constants,
    pool_edges,
    pool_shifts_like,
    qc_shape,
    release_calendar,
    rule_constants,
    steps_events,
    uses_events,
    wip_shape,
)
from twin.errors import InputError
from twin.spec.model import LineSpec

# a design's kernel inputs: (name, dtype, one value per: "station", "pool" (operator pool) or "" (one value)); the
# levers' names are ``lever_inputs``' keys
DESIGN_INPUTS = (
    ("buffers", np.int32, "station"), ("units", np.int32, "station"), ("speed", np.float64, "station"),
    ("qc_analysts", np.int32, ""), ("wip_limit", np.int32, ""),
    ("due_batches", np.int32, "station"), ("due_hours", np.float64, "station"), ("due_kg", np.float64, "station"),
    ("headcount", np.int32, "pool"),
)  # fmt: skip
RERUNS = 4  # the most doublings of the batches (and of the failures) drawn past the evaluator's first estimate


def resolve_device(name: str = "cpu") -> Any:
    """The JAX device for ``cpu``, ``gpu`` or ``auto`` (a GPU when there is one); InputError otherwise."""
    import jax

    if name not in ("cpu", "gpu", "auto"):
        raise InputError(f"--device {name!r}: expected cpu, gpu or auto")
    if name == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if gpus:
        return gpus[0]
    if name == "gpu":
        raise InputError(
            "--device gpu: JAX sees no GPU on this machine (install the CUDA build with `pip install .[gpu]` "
            "on a machine with an NVIDIA GPU, or use --device cpu)"
        )
    return jax.devices("cpu")[0]


@dataclass(frozen=True)
class Evaluation:
    """KPIs of each design in each replication: arrays [design, replication] (utilization: [.., station])."""

    throughput: np.ndarray
    lead_time: np.ndarray
    utilization: np.ndarray
    states: np.ndarray  # [design, replication, station, (processing, setup, down, blocked, cleaning)] shares
    makespan: np.ndarray
    window_end: np.ndarray
    rate: np.ndarray  # exits per hour between the window's first and last exit (smooth in the speeds)
    rejected: np.ndarray  # batches rejected at stations and by QC in the window
    release_lead_time: np.ndarray  # mean hours from release to QC approval, of approvals in the window (nan: none)
    oee: np.ndarray  # line OEE (``twin.kpis.report.line_oee``; nan: no batch finished)
    constraint: np.ndarray  # the station line OEE is valued at (-1: none)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # departures (and QC times) when recording

    def mean(self, name: str) -> np.ndarray:
        """Mean over replications of one KPI, per design."""
        return np.nanmean(getattr(self, name), axis=1)

    @staticmethod
    def joined(parts: list[Evaluation], replications: int) -> Evaluation:
        """The evaluations of blocks of consecutive replications as one, cut to the first ``replications``."""
        def join(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(arrays, axis=1)[:, :replications]

        figures = {f.name: join([getattr(p, f.name) for p in parts]) for f in fields(Evaluation) if f.name != "extra"}
        return Evaluation(**figures, extra={k: join([p.extra[k] for p in parts]) for k in parts[0].extra})


class Evaluator:
    """The vectorized evaluator of one line, bound to a seed and a set of replications."""

    def __init__(
        self,
        spec: LineSpec,
        seed: int = 1,
        replications: int = 5,
        *,
        max_units: tuple[int, ...] | None = None,
        max_buffer: int = 0,
        max_speed: float = 1.0,
        min_speed: float = 1.0,
        device: str = "cpu",
        first_replication: int = 0,
        chunk: int = 32,
        record: bool = False,
        batches: int | None = None,
        max_analysts: int = 0,
        max_headcount: tuple[int, ...] | None = None,
        wip_limits: tuple[int, int] | None = None,
        plan_batches: int = 0,
        buffered: tuple[bool, ...] | None = None,
    ):
        self.spec = spec
        self.line: LineArrays = line_arrays(spec)
        # the levers of the batch rules: the most QC analysts, the lowest and highest WIP limit, the most batches of
        # a plan that does not repeat (campaign lengths) any design may have (the spec's own values at least)
        self.levers = lever_inputs(self.line)
        self.max_analysts = max(max_analysts, int(self.levers["qc_analysts"]))
        spec_headcount = tuple(int(h) for h in self.levers["headcount"])
        self.max_headcount = tuple(max(a, b) for a, b in zip(max_headcount or spec_headcount, spec_headcount,
                                                                strict=True))  # fmt: skip
        spec_wip = int(self.levers["wip_limit"])
        self.wip_limits = (min(wip_limits[0], spec_wip), max(wip_limits[1], spec_wip)) if wip_limits else None
        self.plan_batches = max(plan_batches, self.line.plan_batches)
        self.seed, self.replications, self.first_replication = seed, replications, first_replication
        self.device = resolve_device(device)
        self.max_units = tuple(max(a, b) for a, b in zip(max_units or self.line.units, self.line.units, strict=True))
        finite = [b for b in self.line.buffers if b >= 0]
        self.ring = max([max_buffer, *finite]) + 2
        # stations that some design feeds through a buffer, not a hand-over (buffer 0): the spec's, or a buffer varied
        self.buffered = tuple((b != 0) or bool(buffered and buffered[j]) for j, b in enumerate(self.line.buffers))
        self.max_speed, self.min_speed = max(max_speed, 1.0), min(min_speed, 1.0)
        self.chunk, self.record = chunk, record
        self.batches = batches or self._batches_needed()
        # the event-stepping kernel for rules only it evaluates (operators), on lines in its scope
        self.events = steps_events(self.line, self.max_units)
        self.unlimited = bool((np.asarray(self.line.buffers[1:]) < 0).any())  # a buffer after the first may be
        self.failures = self._failures_needed(self.batches)
        # batches a lane can have in investigation at once (hold times), doubled when too few: 4, as the tablet line's
        # designs with two packaging units need over 26 weeks (with 2, a search there compiled and ran twice)
        self.returns = 4
        # what a lane may take before the evaluator gives up (``_grow``): the estimates, doubled ``RERUNS`` times
        first = max(self.batches, self._batches_needed())
        self.most_batches, self.most_failures = first << RERUNS, self._failures_needed(first) << RERUNS
        self._draws: Draws | None = None
        self._device_draws: dict[str, Any] | None = None
        self.invalid: dict[Any, str] = {}  # designs of ``kpis`` whose spec does not validate, and why

    def on_draws(self, seed: int, first_replication: int = 0) -> Evaluator:
        """This evaluator on other draws (replications ``first_replication``.. of ``seed``), with its sizes, chunk
        and the batches, failures and places it has grown to: it runs the kernels this one compiled.

            >>> confirmation = search_evaluator.on_draws(seed=2, first_replication=5)
        """
        other = copy.copy(self)
        other.seed, other.first_replication = seed, first_replication
        other._draws = other._device_draws = None
        other.invalid = {}
        return other

    # -- sizes -------------------------------------------------------------------------------------
    def _batches_needed(self) -> int:
        line = self.line
        if line.finite_plan:
            return self.plan_batches
        unit = self.spec.time_unit
        rates = []
        for j, station in enumerate(self.spec.stations):
            fastest = min(station.mean_hours(p.name, unit, p.batch_size) for p in self.spec.products)
            rates.append(self.max_units[j] * self.max_speed / fastest)
        if self.spec.release.interarrival is not None:
            rates = [min(r, 1.0 / self.spec.release.interarrival.mean_hours(unit)) for r in rates]
        # stations upstream of an unlimited buffer run at the pace of the slowest of them, not of the line
        ends = [j for j in range(len(rates)) if j == len(rates) - 1 or line.buffers[j + 1] < 0]
        expected = max(min(rates[: j + 1]) for j in ends) * line.horizon
        slack = sum(self.ring + c for c in self.max_units)
        return math.ceil(expected * 1.25 + 8 * math.sqrt(expected) + 16 + slack)

    def _failures_needed(self, batches: int) -> int:
        unit = self.spec.time_unit
        most = 1.0
        for station in self.spec.stations:
            if station.failures is None:
                continue
            slowest = max(station.mean_hours(p.name, unit, p.batch_size) for p in self.spec.products)
            work = batches * slowest / self.min_speed
            if station.failures.basis == "calendar":
                work = max(work, self.line.horizon)
            most = max(most, work / station.failures.mtbf.mean_hours(unit))
        return math.ceil(most * 1.3 + 8 * math.sqrt(most) + 16)

    def _ensure_draws(self) -> dict[str, Any]:
        if self._device_draws is None:
            import jax

            self._draws = draw_inputs(
                self.line, self.seed, self.replications, self.batches, self.max_units, self.failures,
                self.first_replication,
            )  # fmt: skip
            d = self._draws
            arrays = {
                "process": d.process, "setup": d.setup, "ttf": d.ttf, "ttr": d.ttr, "clean": d.clean,
                "rate_noise": d.rate_noise, "reject": d.reject, "line_clearance": d.line_clearance,
                "arrivals": d.arrivals, "qc": d.qc, "investigation": d.investigation,
            }  # fmt: skip
            self._device_draws = jax.device_put(arrays, self.device)
            consts = {
                "setup_exists": self.line.setup_exists,
                "change_major": self.line.change_major,
                "change_clearance": self.line.change_clearance,
                "warmup": np.float64(self.line.warmup),
                "horizon": np.float64(self.line.horizon),
                "cleaning": cleaning_constants(self.line),
                "oee": oee_constants(self.line),
                **rule_constants(self.line),
            }
            consts["qc"]["most"] = np.int32(self.max_analysts)  # (a constant: one analyst needs no sort of QC ends)
            if self.events:
                consts["pools"] = pool_constants(self.line, self.max_units)
            self._consts = jax.device_put(consts, self.device)
            seq = d.products if d.products is not None else np.zeros((self.replications, 1), np.int32)
            self._rep_seq = jax.device_put(seq, self.device)
        return self._device_draws

    def shape(self) -> Shape:
        line = self.line
        return Shape(
            stations=len(line.stations),
            products=len(line.products),
            max_units=self.max_units,
            has_setup=line.has_setup,
            has_failures=line.has_failures,
            has_cleaning=line.has_cleaning,
            has_rate=line.has_rate,
            has_yield=line.has_yield,
            has_reject=line.has_reject,
            release_calendar=len(cal["edges"]) if (cal := release_calendar(self.line)) else 0,
            wip=wip_shape(self.line, self.max_units, self.wip_limits, self.events),
            qc=qc_shape(self.line, self.max_analysts),
            calendar_failures=line.calendar_failures,
            changeover_cleans=tuple(
                bool(self.line.change_major[j].any() or self.line.change_clearance[j].any())
                for j in range(len(line.stations))
            ),
            holds=tuple((source, to) for source, to, _, _ in line.holds),  # investigations: run as scraps
            pull=line.pull,
            batches=self.batches,
            ring=self.ring,
            finite_plan=line.finite_plan,
            seq_from_design=bool(line.campaigns),
            record=self.record,
        )

    def event_shape(self) -> EventShape:
        """The event kernel's shape: ``shape()``, the edges of each operator pool's calendar, and how many release
        times (or buffer places) a lane keeps: more than the line holds at once (each unit one batch, each buffer its
        places and one handed on to each unit at that instant) when every buffer after the first is finite; all when
        one may not be, or when recording; the hold times that investigate, with the slots for their batches; the
        weeks of shift changes in its bound on steps (the horizon's, rounded up to a power of two)."""
        n = len(self.line.stations)
        held = 2 * sum(self.max_units) + (n - 1) * (self.ring - 2)  # ``ring - 2``: the most places a buffer may have
        ring = 0 if self.record or self.unlimited else held + 1
        pools = pool_edges(self.line)
        weeks = 1 << math.ceil(self.line.horizon / 168.0).bit_length() if any(pools) else 0  # (few shapes: powers of 2)
        investigated = tuple(h for h, (_, _, _, scrap) in enumerate(self.line.holds) if not scrap)
        members = max(self.max_headcount, default=0) if operators_one_by_one(self.line) else 0
        return EventShape(self.shape(), pools, ring, investigated, self.returns, weeks=weeks, members=members,
                          shifts_like=pool_shifts_like(self.line))

    # -- evaluation --------------------------------------------------------------------------------
    def approximations(self, units: np.ndarray | None = None) -> tuple[str, ...]:
        """Why results are a surrogate for designs with these units (default: the most units this evaluator was made
        for) and the WIP limits it was made for (empty: exact)."""
        most = self.max_units if units is None else tuple(int(x) for x in np.max(np.atleast_2d(units), axis=0))
        if uses_events(self.spec) and not self.events:  # the scan kernel ran them all, leaving the operators out
            most = self.max_units
        low = self.wip_limits[0] if self.wip_limits else None
        reasons = approximations_for(self.line, most, low, self.buffered)
        if self.line.line.rules is not None and self.line.line.rules.wip_limit is not None and not self.shape().wip:
            # the kernel was made without the WIP limit (outside for the most units or the lowest limit): say so
            why = conwip_outside(self.line, self.max_units, low)
            reasons = (*reasons, *[r for r in (f"release.wip_limit: CONWIP {why}",) if r not in reasons])
        return reasons

    def evaluate(
        self,
        buffers: Any = None,
        units: Any = None,
        speed: Any = None,
        orders: Any = None,
        *,
        qc_analysts: Any = None,
        wip_limit: Any = None,
        due_batches: Any = None,
        due_hours: Any = None,
        due_kg: Any = None,
        campaigns: Any = None,
        headcount: Any = None,
    ) -> Evaluation:
        """KPIs of each design (rows of ``buffers``, ``units``, ``speed``, ``orders``; None = the spec's), and the
        levers of the batch rules per design: QC analysts, WIP limit, cleaning due thresholds per station (batches,
        hours, kg; never: ``lever_inputs``' sentinels), campaign lengths in the spec's order, the headcount of each
        operator pool in the spec's order (the event kernel's; the scan kernel leaves operators out)."""
        given = {"buffers": buffers, "units": units, "speed": speed, "orders": orders, "qc_analysts": qc_analysts,
                 "wip_limit": wip_limit, "due_batches": due_batches, "due_hours": due_hours, "due_kg": due_kg,
                 "campaigns": campaigns, "headcount": headcount}  # fmt: skip
        n = max((len(x) for x in given.values() if x is not None), default=1)
        widths = {"station": (len(self.line.stations),), "pool": self.levers["headcount"].shape, "": ()}
        spec = {"buffers": self.line.buffers, "units": self.line.units, "speed": np.ones(widths["station"]),
                **self.levers}  # fmt: skip
        design = {}
        for key, dtype, width in DESIGN_INPUTS:
            value = spec[key] if given[key] is None else given[key]
            design[key] = np.broadcast_to(np.asarray(value, dtype), (n, *widths[width]))
        lengths = np.broadcast_to(np.asarray(spec["campaigns"] if campaigns is None else campaigns, np.int32),
                                  (n, len(self.line.campaigns)))  # fmt: skip
        self._check(design, lengths)
        self.unlimited |= bool((design["buffers"][:, 1:] < 0).any())
        plans = [None] * n if orders is None else [tuple(int(i) for i in o) for o in orders]
        while True:
            seq = self._sequences(plans, lengths)
            design["batches"] = (
                lengths.sum(axis=1).astype(np.int32) if self.line.finite_plan else np.full(n, self.batches, np.int32)
            )
            result = self._run(design, seq)
            returns = int(result.pop("returns_used", np.zeros(1)).max())
            if not self._grow(result.pop("truncated"), int(result.pop("failures_used").max()), returns):
                break
        recorded = ("departure", "batch", "valid", "release", "qc_start", "qc_end", "qc_out", "qc_approved")
        extra = {k: result.pop(k) for k in recorded if k in result}
        return Evaluation(**result, extra=extra)

    def _grow(self, truncated: np.ndarray, failures_used: int, returns_used: int = 0) -> bool:
        """After a run whose lanes (``truncated``: [design, replication]) were cut short, used ``failures_used``
        failure draws of a unit or needed ``returns_used`` places for batches in investigation: whether to run again,
        with twice the batches (more steps), failures drawn or places. An InputError once that would pass
        ``most_batches`` or ``most_failures``, or the places the lane's batches (a lane never has more in
        investigation): then the lanes would never finish (a bug, or a line the step bound does not fit), and
        rerunning would not end."""
        more_batches, more_failures = bool(truncated.any()), out_of_failures(failures_used, self.failures)
        more_returns = out_of_places(returns_used, self.returns)
        engine = "evaluate the line with the SimPy engine (twin optimize --evaluator engine)"
        if more_batches and 2 * self.batches > self.most_batches:
            d, r = (int(i) for i in np.argwhere(truncated)[0])
            raise InputError(
                f"the JAX evaluator's run of design {d}, replication {r} stopped before its end with {self.batches:,} "
                f"batches drawn, the most it draws for this line ({1 << RERUNS}x its estimate); {engine}"
            )
        if more_failures and 2 * self.failures > self.most_failures:
            raise InputError(
                f"the JAX evaluator's run used all {self.failures:,} failure draws of a unit, the most it draws for "
                f"this line ({1 << RERUNS}x its estimate); {engine}"
            )
        if more_returns and self.returns > self.batches:
            raise InputError(
                f"the JAX evaluator's run needed more than {self.returns:,} places for batches in investigation, more "
                f"than its {self.batches:,} batches; {engine}"
            )
        self.batches *= 2 if more_batches else 1
        self.failures *= 2 if more_failures else 1
        self.returns *= 2 if more_returns else 1
        grow = more_batches or more_failures or more_returns
        if grow:
            self._device_draws = None  # draw more and compile for the new sizes
        return grow

    def _sequences(self, plans: list[tuple[int, ...] | None], lengths: np.ndarray) -> np.ndarray | None:
        """Each design's product per batch in release order (plan mode; None: per replication, from the mix)."""
        if not self.line.campaigns:
            return None
        return np.stack([
            plan_sequence(self.line, o, self.batches, tuple(int(b) for b in row))
            for o, row in zip(plans, lengths, strict=True)
        ])  # fmt: skip

    def kpis(self, problem: Any, designs: list[Any]) -> dict[str, np.ndarray]:
        """The figures ``problem`` needs of each design: objective name -> [design, replication]."""
        from optimizers.objectives import OBJECTIVES

        arrays = problem.arrays(designs)
        why = crews_unserved(self.line, arrays["headcount"])
        self.invalid.update({d: w for d, w in zip(designs, why, strict=True) if w})  # (as the engine evaluator's)
        ok = np.array([not w for w in why])
        res = self.evaluate(**{k: None if v is None else v[ok] for k, v in arrays.items()}) if ok.any() else None
        out = {}
        for name in problem.kpis:
            field_name = OBJECTIVES[name].kernel
            if field_name is None:
                raise InputError(f"the JAX evaluator cannot compute {name}; use the engine evaluator")
            out[name] = _rows(ok, None if res is None else getattr(res, field_name) * OBJECTIVES[name].scale,
                              (self.replications,))  # fmt: skip
        out["utilization"] = _rows(ok, None if res is None else res.utilization,
                                   (self.replications, len(self.line.stations)))  # fmt: skip
        return out

    def gradient(self, buffers: Any, units: Any, speed: Any, order: Any = None) -> tuple[np.ndarray, np.ndarray, dict]:
        """For one design: (mean rate, mean lead time), their derivatives in each station's speed, and its KPIs."""
        import jax

        n_st = len(self.line.stations)
        b = np.asarray(buffers, np.int32).reshape(n_st)
        c = np.asarray(units, np.int32).reshape(n_st)
        v = np.asarray(speed, np.float64).reshape(n_st)
        self._check({"buffers": b[None], "units": c[None], "speed": v[None]})
        levers = {key: x for key, x in self.levers.items() if key != "campaigns"}  # the spec's
        while True:  # (as ``evaluate``: again with more batches or failures drawn while a lane needs them)
            draws = self._ensure_draws()
            seq = self._rep_seq
            if self.line.campaigns:
                seq = jax.device_put(plan_sequence(self.line, order, self.batches), self.device)
            batches = np.int32(self.line.plan_batches if self.line.finite_plan else self.batches)
            design = jax.device_put({"buffers": b, "units": c, "speed": v, **levers, "batches": batches}, self.device)
            kernel = event_gradient_kernel(self.event_shape()) if self.events else gradient_kernel(self.shape())
            value, jac, out = kernel(design, seq, draws, self._consts)
            kpis = {k: np.asarray(x) for k, x in out.items()}
            returns = int(kpis.pop("returns_used", np.zeros(1)).max())
            if not self._grow(kpis.pop("truncated")[None], int(kpis.pop("failures_used").max()), returns):
                return np.asarray(value), np.asarray(jac), kpis

    def _check(self, design: dict[str, np.ndarray], lengths: np.ndarray | None = None) -> None:
        b, c, v = design["buffers"], design["units"], design["speed"]
        if (c > np.asarray(self.max_units)).any() or (c < 1).any():
            raise InputError(f"units outside 1..{self.max_units} given when the evaluator was made")
        if (b >= self.ring - 1).any():
            raise InputError(f"a buffer above {self.ring - 2} places, the largest the evaluator was made for")
        if (v > self.max_speed + 1e-12).any() or (v < self.min_speed - 1e-12).any() or (v <= 0).any():
            raise InputError(f"speeds outside [{self.min_speed}, {self.max_speed}] given when the evaluator was made")
        rules = self.line.line.rules
        headcount = design.get("headcount")
        if headcount is not None and (headcount < 1).any():
            raise InputError("an operator headcount below 1")
        most = np.asarray(self.max_headcount, np.int32)  # (a bound where the kernel follows each operator)
        if headcount is not None and operators_one_by_one(self.line) and (headcount > most).any():
            raise InputError(f"operator headcounts above {self.max_headcount} given when the evaluator was made")
        unserved = next((w for w in crews_unserved(self.line, headcount) if w), "") if headcount is not None else ""
        if unserved:
            raise InputError(f"operator headcounts that leave a crew unserved: {unserved}")
        analysts, limit = design.get("qc_analysts"), design.get("wip_limit")
        if rules is not None and rules.qc is not None and analysts is not None and (
            (analysts < 1) | (analysts > self.max_analysts)
        ).any():  # fmt: skip
            raise InputError(f"QC analysts outside 1..{self.max_analysts} given when the evaluator was made")
        low, high = self.wip_limits or (int(self.levers["wip_limit"]),) * 2
        if rules is not None and rules.wip_limit is not None and limit is not None and (
            (limit < low) | (limit > high)
        ).any():  # fmt: skip
            raise InputError(f"WIP limits outside {low}..{high} given when the evaluator was made")
        if lengths is not None and lengths.size and ((lengths < 1).any() or (
            self.line.finite_plan and (lengths.sum(axis=1) > self.batches).any()
        )):  # fmt: skip
            raise InputError(f"campaign lengths below 1 or a plan above {self.batches} batches (the evaluator's)")

    def _run(self, design: dict[str, np.ndarray], seq: np.ndarray | None) -> dict[str, np.ndarray]:
        import jax

        draws = self._ensure_draws()
        kernel = compiled_event_kernel(self.event_shape()) if self.events else compiled_kernel(self.shape())
        n = len(design["buffers"])
        size = self.chunk  # always the same shape: one compilation for every call
        pieces: list[dict[str, np.ndarray]] = []
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            pad = size - (hi - lo)

            def part(x: np.ndarray, lo: int = lo, hi: int = hi, pad: int = pad) -> np.ndarray:
                chunk = x[lo:hi]
                return np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)]) if pad else chunk

            inputs = jax.device_put({k: part(x) for k, x in design.items()}, self.device)
            s = jax.device_put(part(seq), self.device) if seq is not None else self._rep_seq
            out = kernel(inputs, s, draws, self._consts)
            pieces.append({k: np.asarray(x)[: hi - lo] for k, x in out.items()})
        return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def _rows(ok: np.ndarray, values: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Figures of the designs ``ok`` in their rows, NaN in the others' (designs not evaluated)."""
    out = np.full((len(ok), *shape), np.nan)
    if values is not None:
        out[ok] = values
    return out


def oee_constants(line: LineArrays) -> dict[str, np.ndarray]:
    """What values a station's finishes for line OEE, as the engine's log writes it (``Recorder``): the ideal hours
    of a batch per station and product, and the nameplate rate (units/h) where the ideal time follows the batch's
    units instead (NaN elsewhere)."""
    stations = line.line.stations
    return {
        "ideal": np.array([s.ideal for s in stations], np.float64).reshape(len(stations), len(line.products)),
        "rate": np.array([np.nan if s.rate is None else s.rate for s in stations], np.float64),
    }


def evaluator_sizes(arrays: dict[str, Any]) -> dict[str, Any]:
    """What an ``Evaluator`` must be made for to take these designs (``Problem.arrays``): the most units and buffer
    places, the speeds' range, the most QC analysts, the WIP limits' range, the longest plan."""
    finite = arrays["buffers"][arrays["buffers"] >= 0]
    return {
        "max_units": tuple(int(x) for x in np.max(arrays["units"], axis=0)),
        "max_buffer": int(finite.max()) if finite.size else 0,
        "buffered": tuple(bool(x) for x in np.any(arrays["buffers"] != 0, axis=0)),
        "max_speed": float(arrays["speed"].max()),
        "min_speed": float(arrays["speed"].min()),
        "max_analysts": int(np.max(arrays["qc_analysts"])),
        "max_headcount": tuple(int(x) for x in np.max(arrays["headcount"], axis=0)),
        "wip_limits": (int(np.min(arrays["wip_limit"])), int(np.max(arrays["wip_limit"]))),
        "plan_batches": int(np.max(np.sum(arrays["campaigns"], axis=1))) if arrays["campaigns"].size else 0,
    }
