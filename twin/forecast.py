"""Forecast a line from its current state: batch completions, releases and KPIs, with prediction intervals.

    >>> fc = forecast(spec, snapshot, horizon=24.0, replications=50, seed=1)
    >>> fc.totals          # per replication: batches out of the line and released by QC in the horizon
    >>> fc.intervals()     # {"completed": {"mean", "p5", "p50", "p95"}, "released": {...}}
    >>> fc.batches()       # every live batch: when it leaves the line and is released (p5, p50, p95, chance)

Batch times are hours from the snapshot (``TIME_BASE``); their percentiles are of the time itself over
all runs, ``inf`` ("after the horizon") where that is where they fall, and intervals are prediction
intervals for what happens next (``prediction_interval``).

Each replication starts the engine from the snapshot: a batch being processed needs the rest of a
processing time drawn on condition that it is longer than what it has already run (a repair in
progress likewise), a batch that is processed waits to be passed on, and a batch taken but not yet
started goes back to the head of its station's queue. Remaining times come from streams of their
own (owner ``forecast``), so forecasts never disturb the line's common random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from twin.engine.compiled import compile_line
from twin.engine.initial import InitialState, UnitStart
from twin.engine.simulate import Replication
from twin.errors import InputError
from twin.eventlog import EventLog, LogMeta, genealogy
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


def remaining_time_unknown_start(sampler: Sampler, seen: float, rng: np.random.Generator) -> float:
    """A draw of what is left of a duration that was already under way when the data began, ``seen`` hours ago.

    Its age when the data began is unknown: a duration under way at a moment chosen without regard to it
    is length-biased (density ``s f(s) / mean``) with its age uniform over it; the draw is conditional on
    it having lasted ``seen`` hours more (it is still under way now)."""
    for _ in range(_TRIES):
        draws = sampler(rng, _BLOCK)
        draws = draws[draws > 0]
        if not len(draws):
            continue
        biased = rng.choice(draws, size=len(draws), p=draws / draws.sum())
        left = biased * rng.uniform(0.0, 1.0, len(biased)) - seen  # what was left when the data began, less seen
        above = left[left > 0]
        if len(above):
            return float(above[0])
    return 0.0


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
            if unit.started_before_data:
                work = remaining_time_unknown_start(process, unit.elapsed, rng)
            else:
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
    rng = stream_rng(seed, replication, FORECAST_OWNER, "plan")
    return InitialState(
        time=snapshot.time,
        batches={b: (products.index(s.product), s.quantity, s.released) for b, s in snapshot.batches.items()},
        units=units,
        buffers=buffers,
        quarantine=quarantine,
        released=plan_position(spec, snapshot, rng),
        next_batch=snapshot.next_batch,
    )


def plan_position(spec: LineSpec, snapshot: Snapshot, rng: np.random.Generator) -> int:
    """Batches of the plan released so far, as the engine counts them (position in a repeating plan).

    A plant's data may begin mid-plan: the products released in the data (``releases_seen``) are
    matched against the repeating plan, and where several places fit (too few releases seen to tell),
    each forecast run takes one of them at random, so that the forecast carries the doubt."""
    release = spec.release
    plan = [c.product for c in release.plan or () for _ in range(c.batches)]
    seen = snapshot.releases_seen
    if seen is None or release.mode != "plan" or not release.repeat or not plan:
        return snapshot.released
    n = len(plan)
    fits = [p for p in range(n) if all(plan[(p - len(seen) + i) % n] == product for i, product in enumerate(seen))]
    if not fits:  # the plant does not follow the plan: count from the data's start, as for a simulation
        return snapshot.released
    return int(fits[0] if len(fits) == 1 else rng.choice(fits))


TIME_BASE = "hours from the snapshot"
"""The one time base of a forecast's batch times, in tables, JSON and the shadow twin's stored forecasts."""


def prediction_interval(draws: np.ndarray, level: float = 0.9, whole: bool = False) -> tuple[float, float, float]:
    """Low, median and high of the ``level`` prediction interval for one more draw like ``draws``.

    Quantile ``p`` is the order statistic at rank ``p (n + 1)``, interpolated (Hyndman & Fan's type 6):
    of ``n`` exchangeable draws and one more, the new one falls below the ``k``-th smallest with chance
    ``k / (n + 1)``, so the interval covers the next draw with chance ``level`` (the usual type 7,
    numpy's default, covers 84% for a "90%" interval of 30 draws). Ranks past the ends are clamped to
    the smallest or largest draw (a small shortfall below about 19 draws for 90%). ``+inf`` draws (did
    not happen within the horizon) sort last; a bound that falls on one is ``inf``, "after the horizon".
    ``whole``: counts, with the bounds rounded outwards to whole numbers (covering at least ``level``).
    """
    x = np.sort(np.asarray(draws, dtype=float))
    if not len(x):
        raise ValueError("no draws")
    low, high = (1 - level) / 2, (1 + level) / 2
    bounds = [_rank6(x, p) for p in (low, 0.5, high)]
    if whole:
        bounds = [math.floor(bounds[0]), bounds[1], math.ceil(bounds[2])]
    return bounds[0], bounds[1], bounds[2]


def _rank6(x: np.ndarray, p: float) -> float:
    h = min(max(p * (len(x) + 1), 1.0), float(len(x)))  # 1-based rank, clamped
    k = math.floor(h)
    f = h - k
    a = x[k - 1]
    if f == 0 or k >= len(x):
        return float(a)
    b = x[k]
    if math.isinf(b):
        return math.inf
    return float(a + f * (b - a))


@dataclass(frozen=True)
class Forecast:
    """Forecast runs from a snapshot: their log and KPIs, totals per run, and each live batch's times per run."""

    snapshot: Snapshot
    horizon: float  # hours from the snapshot
    log: EventLog  # the forecast runs; their window starts at the snapshot
    totals: pd.DataFrame  # per replication: completed, released
    times: dict[str, dict[int, np.ndarray]]  # leave / approve -> live batch -> per run: hours from the snapshot

    @cached_property
    def kpis(self) -> KpiReport:
        """The forecast runs' KPIs over the horizon (computed when first asked: the shadow twin's forecasts and
        their scores need only the totals and the batches' times)."""
        return compute_kpis(self.log)

    def intervals(self, level: float = 0.9) -> dict[str, dict[str, float]]:
        """Mean, median and ``level`` prediction interval (``prediction_interval``) of the totals per replication."""
        low, high = (1 - level) / 2, (1 + level) / 2
        result = {}
        for column in ("completed", "released"):
            lo, mid, hi = prediction_interval(self.totals[column].to_numpy(), level, whole=True)
            result[column] = {
                "mean": float(self.totals[column].mean()),
                f"p{round(low * 100)}": float(lo),
                "p50": float(mid),
                f"p{round(high * 100)}": float(hi),
            }
        return result

    def batches(self, level: float = 0.9) -> pd.DataFrame:
        """Every batch live in the snapshot (on a unit, waiting, in quarantine), in batch order: where it is, and
        when it leaves the line and is released by QC (``leave_*``, ``release_*``), hours from the snapshot.

        Percentiles are of the time itself over all runs, ``inf`` where they fall after the horizon (not
        conditional on happening within it); ``*_chance``: share of runs in which it happens within the
        horizon. A batch that is split or merged is done when the last of the batches made of it is done.
        ``leave_*`` are NaN for batches already out of the line, ``release_*`` for lines without QC."""
        snap = self.snapshot
        where = {u.batch: u.station for u in snap.units if u.batch >= 0}
        where |= {b: station for station, waiting in snap.buffers.items() for b in waiting}
        where |= {q.batch: "quarantine" for q in snap.quarantine}
        low, high = (1 - level) / 2, (1 + level) / 2
        names = [f"p{round(low * 100)}", "p50", f"p{round(high * 100)}", "chance"]
        rows = []
        for batch in sorted(where):
            row: dict[str, object] = {"batch": batch, "label": snap.labels.get(batch), "where": where[batch]}
            for event, prefix in (("leave", "leave"), ("approve", "release")):
                applies = event != "leave" or where[batch] != "quarantine"
                draws = self.times.get(event, {}).get(batch) if applies else None
                if draws is None:
                    row.update({f"{prefix}_{n}": math.nan for n in names})
                    continue
                values = (*prediction_interval(draws, level), float(np.mean(draws <= self.horizon)))
                row.update({f"{prefix}_{n}": v for n, v in zip(names, values, strict=True)})
            rows.append(row)
        return pd.DataFrame(rows).set_index("batch") if rows else pd.DataFrame(columns=["batch"]).set_index("batch")

    def batch_records(self, level: float = 0.9) -> list[dict[str, object]]:
        """``batches`` as JSON-able records: ``leaves_line`` and ``released`` each ``{p5, p50, p95, chance}``
        (``null`` for a batch already out of the line, or a line without QC), a time ``null`` where it falls
        after the horizon; times in ``TIME_BASE``."""
        table = self.batches(level)
        records = []
        for batch, row in table.iterrows():
            record: dict[str, object] = {"batch": int(batch), "label": row["label"], "where": row["where"]}
            for prefix, key in (("leave", "leaves_line"), ("release", "released")):
                values = {c[len(prefix) + 1 :]: row[c] for c in table.columns if c.startswith(prefix + "_")}
                if all(math.isnan(v) for v in values.values()):
                    record[key] = None
                else:
                    record[key] = {k: (None if math.isinf(v) else float(v)) for k, v in values.items()}
            records.append(record)
        return records


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
    live = {u.batch for u in snapshot.units if u.batch >= 0} | {b for w in snapshot.buffers.values() for b in w}
    live |= {q.batch for q in snapshot.quarantine}
    events = ("leave", "approve") if spec.qc is not None else ("leave",)
    times = {event: _batch_times(table, meta, live, event) for event in events}
    return Forecast(snapshot, horizon, log, _totals(table, meta), times)


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


def _batch_times(table: pd.DataFrame, meta: LogMeta, live: set[int], event: str) -> dict[int, np.ndarray]:
    """Per live batch, per replication: hours from the snapshot until it (every batch made of it, after splits
    and merges) has left the line (``leave``) or been released by QC (``approve``); ``inf``: not within the horizon."""
    start, reps = meta.warmup, meta.replications
    done = table[(table["event"] == event) & (table["time"] > start)]
    if event == "leave":
        done = done[done["station"] == meta.stations[-1]]
    keys = zip(done["replication"].tolist(), done["batch"].tolist(), strict=True)
    when = dict(zip(keys, done["time"].tolist(), strict=True))
    links = genealogy(table)
    children: dict[tuple[int, int], list[int]] = {}
    for r, parent, child in zip(links["replication"], links["parent"], links["child"], strict=True):
        children.setdefault((int(r), int(parent)), []).append(int(child))
    result = {}
    for batch in live:
        times = np.full(reps, math.inf)
        for r in range(reps):
            if (r, batch) not in children:  # neither split nor merged: its own time
                times[r] = when.get((r, batch), math.inf) - start
                continue
            leaves, stack, seen = [], [batch], set()
            while stack:
                b = stack.pop()
                if b in seen:
                    continue
                seen.add(b)
                if (r, b) in children:
                    stack.extend(children[(r, b)])
                else:
                    leaves.append(b)
            times[r] = max(when.get((r, b), math.inf) for b in leaves) - start
        result[batch] = times
    return result
