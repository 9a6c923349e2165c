"""Server-side data of stored runs, loaded once and kept while they are being looked at.

    >>> cache = RunCache(RunStore("twin-runs"), size=4)
    >>> view = cache.view(run_id)          # a RunView: loaded lazily, each part computed once
    >>> view.summary["oee"], view.per_replication, view.log, view.intervals(replication=0)

Pages never load a run themselves: they ask the cache, so that moving between pages and dragging
a slider reuse the event log, the KPIs and the state intervals of the run. The cache belongs to
one app (no global state) and is safe for the threads of the web server.

A view reads only what is asked: one replication's rows (``table``, ``intervals``) are read from the
Parquet file alone (row filter), the state intervals of all replications from the five columns they
need (``INTERVAL_COLUMNS``); the whole log (``log``) only where a page needs every row. Each part is
computed once, under its own lock: two requests for the same part wait for one computation, requests
for other parts do not wait. Each page's ``prefetch`` (``dashboards.pages``) asks for the parts it
draws first; ``dashboards.warm`` calls them in a thread at server start.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import yaml

from twin.clock import RunClock, clock_for
from twin.eventlog import COLUMNS, EventLog, LogMeta, read_meta, read_parquet, state_intervals
from twin.runfolder import EVENTS_FILE, KPIS_FILE, REPLICATIONS_FILE, RUN_FILE, SPEC_FILE
from twin.spec.loader import spec_from_data
from twin.spec.model import LineSpec
from twin.store import RunStore
from twin.store.catalog import ENTRY_FILE, RUNS_DIR

T = TypeVar("T")
INTERVAL_COLUMNS = ("time", "replication", "station", "unit", "state")  # what ``state_intervals`` reads


def _row_count(path: Any) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


class RunView:
    """One stored run, its parts read or computed on first use (see the module docstring)."""

    def __init__(self, store: RunStore, run_id: str):
        self.run_id = store.resolve(run_id)
        self.folder = store.path(self.run_id)
        self._lock = threading.Lock()  # guards the two dicts below; each part has a lock of its own
        self._locks: dict[Any, threading.Lock] = {}
        self._memo: dict[Any, Any] = {}

    def _once(self, key: Any, compute: Callable[[], T]) -> T:
        if key in self._memo:
            return self._memo[key]
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def has(self, key: Any) -> bool:
        """Whether a part (``"log"``, ``"intervals"``, ...) is computed already."""
        return key in self._memo

    @property
    def events_path(self) -> Any:
        return self.folder / EVENTS_FILE

    @property
    def meta(self) -> LogMeta:
        """The event log's metadata (stations, units, products, horizon), read without its rows."""
        return self._once("meta", lambda: self.log.meta if self.has("log") else read_meta(self.events_path))

    def _read(self, columns: tuple[str, ...] = COLUMNS, filters: Any = None) -> pd.DataFrame:
        return read_parquet(self.events_path, columns, filters)[0]

    @cached_property
    def info(self) -> dict[str, Any]:
        """``run.json``: line, scenario, overrides, seed, replications, horizon, warm-up."""
        return json.loads((self.folder / RUN_FILE).read_text(encoding="utf-8"))

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The KPI summary (``compute_kpis(log).summary``, as stored with the run)."""
        return json.loads((self.folder / KPIS_FILE).read_text(encoding="utf-8"))

    @cached_property
    def per_replication(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / REPLICATIONS_FILE).set_index("replication")

    @cached_property
    def spec_data(self) -> dict[str, Any]:
        return yaml.safe_load((self.folder / SPEC_FILE).read_text(encoding="utf-8"))

    @cached_property
    def spec(self) -> LineSpec:
        return spec_from_data(self.spec_data, source=str(self.folder / SPEC_FILE))

    @cached_property
    def clock(self) -> RunClock:
        """Calendar time of this run: the spec's start, else the Monday 00:00 after the run was made."""
        return clock_for(self.spec, self.info.get("created"))

    @property
    def log(self) -> EventLog:
        """The whole event log (every row and column): for pages that need all of it."""
        return self._once("log", lambda: EventLog.from_parquet(self.events_path))

    @property
    def stations(self) -> list[str]:
        return list(self.meta.stations)

    @property
    def units(self) -> list[int]:
        return list(self.meta.units)

    @property
    def rows(self) -> int:
        """Event rows of the run (from the Parquet footer)."""
        return self._once("rows", lambda: len(self.log) if self.has("log") else _row_count(self.events_path))

    @property
    def replications(self) -> list[int]:
        def compute() -> list[int]:
            column = self.log.table["replication"] if self.has("log") else self._read(("replication",))["replication"]
            return sorted(int(r) for r in column.unique())

        return self._once("reps", compute)

    def end_times(self) -> dict[int, float]:
        """End of observation of each replication (``EventLog.end_times``), from the ``end`` rows alone."""

        def compute() -> dict[int, float]:
            if self.has("log"):
                return self.log.end_times()
            ends = self._read(("replication", "time", "event"), [("event", "=", "end")])
            return EventLog(ends, self.meta).end_times()

        return self._once("ends", compute)

    def end(self, replication: int) -> float:
        """End of observation of a replication (hours)."""
        return float(self.end_times().get(replication, self.meta.horizon))

    def table(self, replication: int) -> pd.DataFrame:
        """The event rows of one replication (read alone unless the whole log is loaded)."""

        def rows() -> pd.DataFrame:
            if not self.has("log"):
                return self._read(filters=[("replication", "=", int(replication))])
            table = self.log.table
            return table[table["replication"] == replication].reset_index(drop=True)

        return self._once(("table", replication), rows)

    def events(self, event: str, columns: tuple[str, ...]) -> pd.DataFrame:
        """``columns`` of the rows of one event kind (e.g. every ``start``) over all replications."""

        def rows() -> pd.DataFrame:
            if not self.has("log"):
                return self._read(columns, [("event", "=", event)])
            table = self.log.table
            return table.loc[table["event"] == event, list(columns)].reset_index(drop=True)

        return self._once(("events", event, columns), rows)

    def replication_log(self, replication: int) -> EventLog:
        """One replication as an event log (``EventLog.replication``), without reading the others."""
        return EventLog(self.table(replication), self.meta)

    def all_intervals(self) -> pd.DataFrame:
        """Every unit's state intervals over every replication (``twin.eventlog.state_intervals``)."""

        def compute() -> pd.DataFrame:
            if self.has("log"):
                return state_intervals(self.log.table, self.end_times())
            import pyarrow.dataset as ds

            rows = self._read(INTERVAL_COLUMNS, ds.field("state").is_valid())  # the rows that carry a state
            return state_intervals(rows, self.end_times())

        return self._once("intervals", compute)

    def intervals(self, replication: int) -> pd.DataFrame:
        """State intervals of one replication, with ``row``: the unit's index in station order."""

        def compute() -> pd.DataFrame:
            if self.has("intervals"):
                iv = self.all_intervals()
                iv = iv[iv["replication"] == replication].copy()
            else:
                iv = state_intervals(self.table(replication), self.end_times())
            first = np.concatenate([[0], np.cumsum(self.units)[:-1]])
            iv["row"] = first[iv["station"].cat.codes.to_numpy()] + iv["unit"].to_numpy()
            return iv.sort_values(["row", "start"], kind="stable").reset_index(drop=True)

        return self._once(("intervals", replication), compute)

    def unit_labels(self) -> list[str]:
        """``station`` or ``station #2`` for every unit, in station order."""
        return [
            f"{s} #{u + 1}" if n > 1 else s for s, n in zip(self.stations, self.units, strict=True) for u in range(n)
        ]

    def derived(self, key: Any, compute: Callable[[], T]) -> T:
        """Anything else a page computes from this run, computed once."""
        return self._once(("derived", key), compute)


class RunCache:
    """The last ``size`` runs looked at, for one app."""

    def __init__(self, store: RunStore, size: int = 4):
        self.store = store
        self.size = size
        self._views: OrderedDict[str, RunView] = OrderedDict()
        self._lock = threading.Lock()
        self._catalog: tuple[tuple, pd.DataFrame] | None = None  # (the entries it was read from, the catalog)

    def view(self, run_id: str) -> RunView:
        run_id = self.store.resolve(run_id)
        with self._lock:
            if run_id in self._views:
                self._views.move_to_end(run_id)
                return self._views[run_id]
        view = RunView(self.store, run_id)
        with self._lock:
            view = self._views.setdefault(run_id, view)
            self._views.move_to_end(run_id)
            while len(self._views) > self.size:
                self._views.popitem(last=False)
        return view

    def catalog(self) -> pd.DataFrame:
        """The store's catalog, newest first (empty when nothing is stored): read again only when a run's catalog
        entry was added, changed or removed (the entries' names, sizes and times say so), else the last one read
        (every page load asks for it; a DuckDB query over the entries takes some 40 ms)."""
        entries = sorted((self.store.root / RUNS_DIR).glob(f"*/{ENTRY_FILE}"))
        key = tuple((p.parent.name, st.st_size, st.st_mtime_ns) for p in entries if (st := _stat(p)) is not None)
        with self._lock:
            if self._catalog is not None and self._catalog[0] == key:
                return self._catalog[1]
        if not key:
            frame = pd.DataFrame(columns=["run_id", "line", "scenario", "created"])
        else:
            frame = self.store.list(order_by="created DESC, run_id")
        with self._lock:
            self._catalog = (key, frame)
        return frame


def _stat(path: Any) -> Any:
    try:
        return path.stat()
    except OSError:  # removed meanwhile
        return None
