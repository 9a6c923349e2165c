"""How much work a run will be, estimated from the spec before it starts, and the budget it must fit.

    >>> work = estimate_work(spec, horizon=4368.0, replications=5)
    >>> work.events, work.memory_bytes
    >>> check_budget(spec, 4368.0, 5)            # InputError: the estimate, and how to override it

The estimate counts event-log rows from capacities: each station processes at most its units over
its fastest mean time per batch, limited by what reaches it (release rate, upstream stations) and
by blocking through finite buffers; failures add two rows per mean time between failures, shift
calendars two per shift boundary. Rules (cleaning, changeovers, QC) only slow a line down, so the
estimate stays above the actual count (2 to 3 times it on the built-in models).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from twin.errors import InputError
from twin.spec.limits import DEFAULT_MAX_EVENTS
from twin.spec.model import LineSpec

ROWS_PER_STEP = 6  # arrive, start, finish, leave, a state change and a release: one batch at one station
ROWS_PER_STEP_WITH_RULES = 8  # cleaning, changeover, operator and QC rows on top
BYTES_PER_ROW = 200  # peak memory of a run per event-log row, KPIs included (measured: 170)


@dataclass(frozen=True)
class WorkEstimate:
    """Estimated event-log rows of one replication, and of the whole run."""

    events_per_replication: float
    replications: int

    @property
    def events(self) -> float:
        return self.events_per_replication * self.replications

    @property
    def memory_bytes(self) -> float:
        return self.events * BYTES_PER_ROW


def estimate_work(spec: LineSpec, horizon: float | None = None, replications: int = 1) -> WorkEstimate:
    """Estimate the rows a run of ``spec`` makes over ``horizon`` hours (default: the spec's)."""
    hours = spec.horizon_hours if horizon is None else float(horizon)
    unit = spec.time_unit
    lots, ratio = [], 1.0  # lots at each station per released batch
    for station in spec.stations:
        if station.merge:
            ratio /= station.merge
        lots.append(ratio)
        if station.split:
            ratio *= station.split
    capacity = []  # released batches per hour each station can take
    for station, lot in zip(spec.stations, lots, strict=True):
        fastest = min(station.mean_hours(p.name, unit, p.batch_size) for p in spec.products)
        capacity.append(_divide(station.units, fastest * lot))
    release = spec.release
    if release.mode == "interarrival" and release.interarrival is not None:
        released = _divide(1.0, release.interarrival.mean_hours(unit))
    else:
        released = math.inf
    flow = []
    upstream = released
    for cap in capacity:
        upstream = min(upstream, cap)
        flow.append(upstream)
    for j in range(len(flow) - 2, -1, -1):  # blocking: a finite buffer passes the downstream limit up
        if spec.stations[j + 1].buffer is not None:
            flow[j] = min(flow[j], flow[j + 1])
    per_step = ROWS_PER_STEP_WITH_RULES if _has_rules(spec) else ROWS_PER_STEP
    rows = sum(f * lot for f, lot in zip(flow, lots, strict=True)) * hours * per_step
    if release.mode == "interarrival":
        rows += released * hours  # releases arrive whether or not the line keeps up
    if release.mode == "plan" and not release.repeat:
        batches = sum(c.batches for c in release.plan or ())
        rows = min(rows, batches * sum(lots) * per_step + batches)
    for station in spec.stations:
        if station.failures is not None:
            rows += 2 * station.units * _divide(hours, station.failures.mtbf.mean_hours(unit))
    boundaries = sum(2 * len(s.days) for cal in spec.calendars.values() for s in cal.shifts)
    rows += boundaries * sum(s.units for s in spec.stations) * (hours / 168 + 1)
    return WorkEstimate(rows + 1, replications)


def _divide(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf


def _has_rules(spec: LineSpec) -> bool:
    return bool(spec.calendars or spec.operators or spec.rooms or spec.hold_times or spec.qc or spec.skids) or any(
        s.cleaning or s.setup or s.quality or s.rate or s.split or s.merge for s in spec.stations
    )


def available_memory() -> float | None:
    """Bytes of memory the machine can still give (MemAvailable on Linux), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def format_count(value: float) -> str:
    """``31,400,000`` -> ``3.1e7``; huge or infinite counts read ``more than 1e15``."""
    if not value < 1e15:
        return "more than 1e15"
    return f"{value:,.0f}" if value < 1e5 else f"{value:.2g}".replace("e+0", "e").replace("e+", "e")


def _round_up(value: float) -> str:
    """A number for ``--max-events``, two significant digits, rounded up: 1322 -> 1400, 1.53e8 -> 1.6e8."""
    step = 10 ** max(math.floor(math.log10(value)) - 1, 0)
    rounded = math.ceil(value / step) * step
    if rounded < 1e6:
        return str(rounded)
    mantissa, exponent = f"{rounded:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def check_budget(
    spec: LineSpec, horizon: float | None, replications: int, max_events: float | None = DEFAULT_MAX_EVENTS
) -> WorkEstimate:
    """Refuse (``InputError``) a run estimated past ``max_events`` rows (None: no budget) or past the memory free.

    The message gives the estimate and how to override the budget; the memory check has no override.
    """
    work = estimate_work(spec, horizon, replications)
    what = f"{'' if work.events >= 1e15 else 'about '}{format_count(work.events)} events"
    if replications > 1:
        what += f" ({replications} replications of {format_count(work.events_per_replication)})"
    if max_events is not None and work.events > max_events:
        override = (
            f"; give --max-events {_round_up(work.events * 1.1)} to run it anyway, or"
            if work.events < 1e15
            else " (a duration near zero?); give"
        )
        raise InputError(
            f"this run would make {what}, over the budget of {format_count(max_events)}"
            f"{override} a shorter --horizon or fewer --replications"
        )
    free = available_memory()
    if free is not None and work.memory_bytes > free:
        raise InputError(
            f"this run would make {what} and need about {work.memory_bytes / 1e9:.3g} GB of memory; "
            f"{free / 1e9:.3g} GB are available: give a shorter --horizon or fewer --replications"
        )
    return work
