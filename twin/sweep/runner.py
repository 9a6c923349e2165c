"""Run a sweep into a run store: only the points not stored yet, each stored as soon as it is done.

    >>> runner = SweepRunner(sweep, RunStore("twin-runs"), workers=2)   # or scheduler="tcp://host:8786"
    >>> runner.run(progress=print)
    >>> runner.ran, runner.reused                       # points run now, points found in the store
    >>> ranked = sweep_table(sweep, store, rank="throughput_per_hour")

Interrupted (Ctrl-C, a crash, a lost connection), the same sweep started again finds the points
already stored by their key (spec hash, seed, replications, horizon, warm-up) and runs the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing

import pandas as pd

from twin.errors import InputError
from twin.store.catalog import KPI_COLUMNS
from twin.store.store import RunStore
from twin.sweep.backends import Job, open_backend
from twin.sweep.plan import Sweep


class SweepRunner:
    """Runs the missing points of a sweep on a backend and saves each one in the store.

    ``store=None`` only plans (every point is to run).
    """

    def __init__(self, sweep: Sweep, store: RunStore | None, scheduler: str | None = None, workers: int | None = None):
        self.sweep, self.store, self.scheduler, self.workers = sweep, store, scheduler, workers
        self.todo: list[Job] = []
        self.ran = 0
        self.reused = 0
        self.backend = "none (every point was stored)"
        self.seconds = 0.0

    def plan(self) -> list[Job]:
        """The points still to run (one per key), and how many are stored already."""
        unique = self.sweep.unique_points()
        stored = self.store.find_points(p.key for p in unique) if self.store is not None else {}
        self.reused = len(stored)
        self.todo = [
            Job(p.key, p.spec, p.name, p.overrides, self.sweep.replications, self.sweep.seed, p.horizon, p.warmup)
            for p in unique if p.key not in stored
        ]  # fmt: skip
        return self.todo

    def run(
        self, progress: Callable[[float], None] | None = None, on_backend: Callable[[str], None] | None = None
    ) -> None:
        """Run and store every missing point; ``self.ran`` counts those stored so far (also when interrupted).

        ``on_backend(description)`` hears where the points run, and again if a sweep that started in
        this process moves to a local Dask cluster (``twin.sweep.backends.Auto``); ``self.backend`` ends
        as the whole story.
        """
        if self.store is None:
            raise ValueError("a sweep needs a store to run into")
        self.store.save_sweep(self.sweep.manifest())
        jobs = self.plan()
        if not jobs:
            return
        start = time.perf_counter()
        try:
            with open_backend(self.scheduler, self.workers, len(jobs), on_backend) as backend:
                self.backend = backend.description
                if on_backend is not None:
                    on_backend(backend.description)
                with closing(backend.run(jobs, progress)) as results:  # closed at once on Ctrl-C: no cluster left
                    for _job, result in results:
                        self.store.save(result, sweep_id=self.sweep.sweep_id)
                        self.ran += 1
                self.backend = backend.description
        finally:
            self.seconds = time.perf_counter() - start


def rank_order(rank: str, stations: list[str] | None = None) -> tuple[str, bool]:
    """The catalog expression and direction (descending?) of a ``--rank`` choice.

    A line KPI (``throughput_per_hour``, ``oee``, ``lead_time_hours``, ...) ranks best first:
    highest output and OEE, lowest lead time and WIP. ``STATION.oee`` and ``STATION.utilization``
    rank highest first.
    """
    if rank in KPI_COLUMNS:
        return rank, KPI_COLUMNS[rank]
    station, _, factor = rank.rpartition(".")
    if station and factor in ("oee", "utilization"):
        if stations is not None and station not in stations:
            raise InputError(f"--rank {rank!r}: no station named {station!r} (stations: {', '.join(stations)})")
        return f"station_{factor}", True
    choices = ", ".join([*KPI_COLUMNS, "STATION.oee", "STATION.utilization"])
    raise InputError(f"--rank {rank!r}: unknown KPI; choose one of {choices}")


def sweep_table(sweep: Sweep, store: RunStore, rank: str = "throughput_per_hour") -> pd.DataFrame:
    """One row per point of the sweep with its stored KPIs, best first by ``rank``.

    Columns: ``rank``, ``scenario``, one per axis, ``run_id``, then the catalog's KPI columns.
    """
    column, descending = rank_order(rank, [s.name for s in sweep.base.stations])
    keys = sorted({p.key for p in sweep.points})
    stored = store.list(where="point_key IN (" + ", ".join(f"'{k}'" for k in keys) + ")") if keys else pd.DataFrame()
    first = stored.drop_duplicates("point_key").set_index("point_key") if len(stored) else stored
    rows = []
    for p in sweep.points:
        if p.key not in first.index:
            continue
        entry = first.loc[p.key]
        row = {"scenario": p.name, **dict(p.point.assignments), "run_id": entry["run_id"]}
        row.update({c: entry[c] for c in first.columns if c != "run_id" and c not in row})
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if column.startswith("station_"):
        station = rank.rpartition(".")[0]
        key = table[column].map(lambda m: dict(m).get(station) if m is not None else None).astype(float)
    else:
        key = table[column].astype(float)
    order = key.sort_values(ascending=not descending, na_position="last", kind="stable").index
    table = table.loc[order].reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    table.attrs["rank_values"] = key.loc[order].to_list()
    return table
