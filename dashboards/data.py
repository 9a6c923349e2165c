"""Server-side data of stored runs, loaded once and kept while they are being looked at.

    >>> cache = RunCache(RunStore("twin-runs"), size=4)
    >>> view = cache.view(run_id)          # a RunView: loaded lazily, each part computed once
    >>> view.summary["oee"], view.per_replication, view.log, view.intervals(replication=0)

Pages never load a run themselves: they ask the cache, so that moving between pages and dragging
a slider reuse the event log, the KPIs and the state intervals of the run. The cache belongs to
one app (no global state) and is safe for the threads of the web server.
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
from twin.eventlog import EventLog, state_intervals
from twin.runfolder import EVENTS_FILE, KPIS_FILE, REPLICATIONS_FILE, RUN_FILE, SPEC_FILE
from twin.spec.loader import spec_from_data
from twin.spec.model import LineSpec
from twin.store import RunStore

T = TypeVar("T")


class RunView:
    """One stored run, its parts read or computed on first use (see the module docstring)."""

    def __init__(self, store: RunStore, run_id: str):
        self.run_id = store.resolve(run_id)
        self.folder = store.path(self.run_id)
        self._lock = threading.RLock()
        self._memo: dict[Any, Any] = {}

    def _once(self, key: Any, compute: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

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
        return self._once("log", lambda: EventLog.from_parquet(self.folder / EVENTS_FILE))

    @property
    def stations(self) -> list[str]:
        return list(self.log.meta.stations)

    @property
    def units(self) -> list[int]:
        return list(self.log.meta.units)

    @property
    def replications(self) -> list[int]:
        return self._once("reps", lambda: sorted(int(r) for r in self.log.table["replication"].unique()))

    def end(self, replication: int) -> float:
        """End of observation of a replication (hours)."""
        return float(self.log.end_times().get(replication, self.log.meta.horizon))

    def table(self, replication: int) -> pd.DataFrame:
        """The event rows of one replication."""

        def rows() -> pd.DataFrame:
            table = self.log.table
            return table[table["replication"] == replication].reset_index(drop=True)

        return self._once(("table", replication), rows)

    def all_intervals(self) -> pd.DataFrame:
        """Every unit's state intervals over every replication (``twin.eventlog.state_intervals``)."""
        return self._once("intervals", lambda: state_intervals(self.log.table, self.log.end_times()))

    def intervals(self, replication: int) -> pd.DataFrame:
        """State intervals of one replication, with ``row``: the unit's index in station order."""

        def compute() -> pd.DataFrame:
            iv = self.all_intervals()
            iv = iv[iv["replication"] == replication].copy()
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
        """The store's catalog, newest first (empty when nothing is stored)."""
        if not self.store.run_ids():
            return pd.DataFrame(columns=["run_id", "line", "scenario", "created"])
        return self.store.list(order_by="created DESC, run_id")
