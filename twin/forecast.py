"""Forecast a line from its current state: batch completions, releases and KPIs, with prediction intervals.

    >>> fc = forecast(spec, snapshot, horizon=24.0, replications=50, seed=1)
    >>> fc.totals          # per replication: batches out of the line and released by QC in the horizon
    >>> fc.intervals()     # {"completed": {"mean", "p5", "p50", "p95"}, "released": {...}}
    >>> fc.batches         # per live batch: when it leaves the line and is released (p5, p50, p95)

Each replication starts the engine from the snapshot: a batch being processed needs the rest of a
processing time drawn on condition that it is longer than what it has already run (a repair in
progress likewise), a batch that is processed waits to be passed on, and a batch taken but not yet
started goes back to the head of its station's queue. Remaining times come from streams of their
own (owner ``forecast``), so forecasts never disturb the line's common random numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.engine.compiled import compile_line
from twin.engine.initial import InitialState, UnitStart
from twin.engine.simulate import Replication
from twin.errors import InputError
from twin.eventlog import EventLog, LogMeta
from twin.kpis.report import KpiReport, compute_kpis
from twin.random import stream_rng
from twin.snapshot import Snapshot, UnitState
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec, Station

FORECAST_OWNER = "forecast"
_TRIES, _BLOCK = 64, 1024


def remaining_time(sampler: Sampler, elapsed: float, rng: np.random.Generator) -> float:
    """A draw of ``S - elapsed`` for ``S`` from ``sampler`` given ``S > elapsed`` (0 if no draw exceeds it)."""
    for _ in range(_TRIES):
        draws = sampler(rng, _BLOCK)
        above = draws[draws > elapsed]
        if len(above):
            return float(above[0] - elapsed)
    return 0.0  # running longer than any modelled time: it ends now


def _process_sampler(spec: LineSpec, station: Station, product: str, quantity: float) -> Sampler:
    if station.rate is None:
        return station.process_time_for(product).sampler(spec.time_unit)
    rate = station.rate
    base = spec.hours(rate.startup) + quantity / (rate.units_per_hour * (1 - rate.speed_loss))
    if rate.cv > 0:
        shape, scale = 1 / rate.cv**2, rate.cv**2
        return lambda rng, n: base * rng.gamma(shape, scale, n)
    return lambda rng, n: np.full(n, base)


def _busy_for(
    spec: LineSpec, station: Station, unit: UnitState, product: str | None, since: float, rng: np.random.Generator
) -> float:
    """How long a repair, clean or changeover under way still lasts (0 if none); ``since``: how long it has run."""
    hours = spec.time_unit
    cleaning = station.cleaning
    if unit.state == "down" and station.failures is not None:
        return remaining_time(station.failures.mttr.sampler(hours), since, rng)
    if unit.state == "cleaning" and cleaning is not None:
        dist = cleaning.major if unit.activity == "major_clean" else cleaning.minor or cleaning.major
        return remaining_time(dist.sampler(hours), since, rng) if dist is not None else 0.0
    if unit.state != "setup" or product is None:
        return 0.0
    clearance = cleaning.line_clearance if cleaning is not None else None
    if unit.activity == "line_clearance":
        return remaining_time(clearance.sampler(hours), since, rng) if clearance is not None else 0.0
    change = station.changeover_for(unit.previous, product) if unit.previous else None
    if change is None or change.time is None:
        return 0.0
    left = remaining_time(change.time.sampler(hours), since, rng)
    if change.line_clearance and clearance is not None:
        left += float(clearance.sampler(hours)(rng, 1)[0])
    return left


def initial_state(spec: LineSpec, snapshot: Snapshot, seed: int, replication: int) -> InitialState:
    """A concrete starting state for one replication of a forecast from ``snapshot``."""
    snapshot.check_line(spec)
    stations = [s.name for s in spec.stations]
    products = [p.name for p in spec.products]
    buffers = {stations.index(name): list(batches) for name, batches in snapshot.buffers.items()}
    units: dict[tuple[int, int], UnitStart] = {}
    for unit in snapshot.units:
        j = stations.index(unit.station)
        station = spec.stations[j]
        rng = stream_rng(seed, replication, FORECAST_OWNER, f"{unit.station}:{unit.unit}")
        since = snapshot.time - unit.since
        product = snapshot.batches[unit.batch].product if unit.batch in snapshot.batches else None
        busy = _busy_for(spec, station, unit, product, since, rng)
        if unit.batch < 0 or unit.batch not in snapshot.batches:
            if busy > 0:  # cleaning, or down while waiting: the unit is free after that
                units[(j, unit.unit)] = UnitStart(-1, 0.0, busy, "down" if unit.state == "down" else "cleaning")
            continue
        batch = snapshot.batches[unit.batch]
        process = _process_sampler(spec, station, batch.product, batch.quantity)
        if unit.processed:
            units[(j, unit.unit)] = UnitStart(unit.batch, 0.0)
        elif unit.state in ("processing", "down"):
            work = remaining_time(process, unit.elapsed, rng)
            units[(j, unit.unit)] = UnitStart(unit.batch, max(work, 1e-9), busy, "down")
        elif unit.state == "setup":  # a changeover under way: its rest, then the whole processing time
            units[(j, unit.unit)] = UnitStart(unit.batch, float(process(rng, 1)[0]), busy, "setup")
        else:  # taken but not started (waiting for operators or gowning): back to the head of the queue
            buffers.setdefault(j, []).insert(0, unit.batch)
    quarantine = []
    if spec.qc is not None:
        rng = stream_rng(seed, replication, FORECAST_OWNER, "qc")
        durations = {
            "testing": spec.qc.test_time,
            "incubating": spec.qc.incubation,
            "investigating": spec.qc.investigation,
        }
        for qc in snapshot.quarantine:
            dist = durations.get(qc.phase)
            left = remaining_time(dist.sampler(spec.time_unit), snapshot.time - qc.since, rng) if dist else 0.0
            quarantine.append((qc.batch, qc.phase, left))
    return InitialState(
        time=snapshot.time,
        batches={b: (products.index(s.product), s.quantity, s.released) for b, s in snapshot.batches.items()},
        units=units,
        buffers=buffers,
        quarantine=quarantine,
        released=snapshot.released,
        next_batch=snapshot.next_batch,
    )


@dataclass(frozen=True)
class Forecast:
    snapshot: Snapshot
    horizon: float  # hours from the snapshot
    log: EventLog  # the forecast runs; their window starts at the snapshot
    kpis: KpiReport
    totals: pd.DataFrame  # per replication: completed, released
    batches: pd.DataFrame  # per batch seen: leave and approval times (p5, p50, p95) and chances

    def intervals(self, level: float = 0.9) -> dict[str, dict[str, float]]:
        """Mean and prediction interval (``level``, by quantiles over replications) of the totals."""
        low, high = (1 - level) / 2, (1 + level) / 2
        return {
            column: {
                "mean": float(self.totals[column].mean()),
                f"p{round(low * 100)}": float(self.totals[column].quantile(low)),
                "p50": float(self.totals[column].quantile(0.5)),
                f"p{round(high * 100)}": float(self.totals[column].quantile(high)),
            }
            for column in ("completed", "released")
        }


def forecast(
    spec: LineSpec,
    snapshot: Snapshot,
    horizon: float,
    replications: int = 50,
    seed: int = 1,
    progress: Callable[[float], None] | None = None,
) -> Forecast:
    """Run ``replications`` forecasts of ``horizon`` hours from ``snapshot``."""
    if not horizon > 0:
        raise InputError(f"the forecast horizon must be positive (got {horizon!r} h)")
    if replications < 1:
        raise InputError(f"replications must be a whole number >= 1 (got {replications!r})")
    snapshot.check_line(spec)
    line = compile_line(spec)
    end = snapshot.time + horizon
    frames = []
    for r in range(replications):
        start = initial_state(spec, snapshot, seed, r)
        frames.append(Replication(line, seed, r, end, initial=start).run_to_end())
        if progress is not None:
            progress((r + 1) / replications)
    table = pd.concat(frames, ignore_index=True)
    meta = line.log_meta(
        horizon=end,
        warmup=snapshot.time,
        replications=replications,
        seed=seed,
        spec_hash=spec.spec_hash,
        source="forecast",
        extra={"snapshot_time": snapshot.time, "snapshot_source": snapshot.source},
    )
    log = EventLog(table, meta)
    return Forecast(snapshot, horizon, log, compute_kpis(log), _totals(table, meta), _batch_times(table, meta))


def _totals(table: pd.DataFrame, meta: LogMeta) -> pd.DataFrame:
    start = meta.warmup
    late = table[table["time"] > start]
    left = late[(late["event"] == "leave") & (late["station"] == meta.stations[-1])]
    approved = late[late["event"] == "approve"]
    reps = range(meta.replications)
    return pd.DataFrame(
        {
            "completed": left.groupby("replication").size().reindex(reps, fill_value=0),
            "released": approved.groupby("replication").size().reindex(reps, fill_value=0),
        }
    ).rename_axis("replication")


def _batch_times(table: pd.DataFrame, meta: LogMeta) -> pd.DataFrame:
    """For every batch that leaves the line or is released in some replication: when, across replications."""
    start = meta.warmup
    late = table[table["time"] > start]
    out = []
    for name, rows in (
        ("leave", late[(late["event"] == "leave") & (late["station"] == meta.stations[-1])]),
        ("approve", late[late["event"] == "approve"]),
    ):
        grouped = rows.groupby("batch")["time"]
        summary = pd.DataFrame(
            {
                f"{name}_p5": grouped.quantile(0.05),
                f"{name}_p50": grouped.quantile(0.5),
                f"{name}_p95": grouped.quantile(0.95),
                f"{name}_chance": grouped.size() / meta.replications,
            }
        )
        out.append(summary)
    result = pd.concat(out, axis=1)
    result.index.name = "batch"
    return result.sort_index()
