"""The work a sweep sends to workers: replications of a point, and a point put together from them.

    >>> logs = [simulate_chunk(spec, seed=1, first=0, count=3, horizon=500.0, warmup=50.0),
    ...         simulate_chunk(spec, seed=1, first=3, count=2, horizon=500.0, warmup=50.0)]
    >>> result = assemble(spec, "baseline", (), logs)    # == twin.experiment.run(spec, 5, 1, 500.0, 50.0)

Replication ``r`` draws from streams keyed by (seed, r, station, stream), so a replication is the
same whichever worker runs it and whatever else that worker ran before; the KPIs are pure
functions of the log. Hence any split of the replications gives a bit-identical result.
A worker packs the run folder's files itself (``packed_point``, ``packed_chunks``), so the
client that stores them has next to nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from twin.engine.simulate import simulate
from twin.eventlog import EventLog
from twin.experiment import RunResult, run
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec
from twin.store.packed import PackedRun, pack_run


def simulate_chunk(spec: LineSpec, seed: int, first: int, count: int, horizon: float, warmup: float) -> EventLog:
    """Replications ``first`` .. ``first + count - 1`` of a spec."""
    return simulate(spec, replications=count, seed=seed, horizon=horizon, warmup=warmup, first_replication=first)


def assemble(spec: LineSpec, name: str, overrides: Sequence[str], logs: Sequence[EventLog]) -> RunResult:
    """One run from the logs of consecutive replication chunks (in replication order)."""
    meta = replace(logs[0].meta, replications=sum(log.meta.replications for log in logs))
    tables = [log.table for log in logs]
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    log = EventLog(table, meta)
    settings = {"replications": meta.replications, "seed": meta.seed, "horizon": meta.horizon, "warmup": meta.warmup}
    return RunResult(spec, log, compute_kpis(log), name, tuple(overrides), settings)


def packed_chunks(spec: LineSpec, name: str, overrides: Sequence[str], *logs: EventLog) -> PackedRun:
    """``assemble`` of the chunks given as separate arguments (as Dask hands them over), packed for storing."""
    return pack_run(assemble(spec, name, overrides, logs))


def run_point(
    spec: LineSpec, name: str, overrides: Sequence[str], replications: int, seed: int, horizon: float, warmup: float
) -> RunResult:
    """All replications of a point in one go: exactly ``twin.experiment.run``."""
    return run(spec, replications, seed, horizon, warmup, name=name, overrides=tuple(overrides))


def packed_point(
    spec: LineSpec, name: str, overrides: Sequence[str], replications: int, seed: int, horizon: float, warmup: float
) -> PackedRun:
    """``run_point`` packed for storing: the worker encodes the run folder, the client only writes it."""
    return pack_run(run_point(spec, name, overrides, replications, seed, horizon, warmup))


def worker_twin_version() -> str:
    """The twin version a worker runs (every worker must run the same engine)."""
    from twin import __version__

    return __version__
