"""Shadow mode: the twin runs the same line alongside the plant, on the plant's clock, and the KPIs are compared.

>>> shadow = Shadow(spec, seed=1, horizon=10_000.0)
>>> shadow.advance(plant_hours)                          # the twin up to the plant's time
>>> kpis.feed(shadow.take("kpis"))                       # each reader takes the rows made since it last took
>>> drift(plant_kpis.summary, twin_kpis.summary)
{"throughput_per_hour": {"plant": 0.13, "twin": 0.14, "drift": 0.01, "relative": 0.077}, ...}
>>> shadow.replay(plant_hours)                           # the twin's whole log, made again (same seed)

A sync runs for months, so the shadow keeps only the rows a reader has not taken yet (its readers: the running
KPIs, the live USD scene), never the whole log: ``advance`` drops the rows every reader has taken, and the
replication's recorder forgets them too (``Replication.forget_published``). A reader that begins late starts at
the rows still kept (at least those of the last ``advance``). What keeps growing is ~10 bytes per batch made
(the recorder's batch table). A caller that needs the whole log (an export, a test) gets it from ``replay``:
a fresh replication with the same seed, which makes the same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from connectors.opcua.live import end_row
from twin.engine.compiled import compile_line
from twin.engine.simulate import Replication
from twin.eventlog import EventLog, LogMeta, normalize_table
from twin.spec.model import LineSpec

LINE_METRICS = ("throughput_per_hour", "units_per_hour", "oee", "wip", "lead_time_hours")
STATION_METRICS = ("oee", "utilization", "availability")


class Shadow:
    """A replication of the spec advanced to the plant's time on demand, holding only the rows not yet taken."""

    def __init__(self, spec: LineSpec, seed: int, horizon: float, warmup: float = 0.0):
        self.spec, self.seed, self.warmup, self.horizon = spec, seed, warmup, horizon
        self.line = compile_line(spec)
        self.rep = Replication(self.line, seed, 0, horizon)
        self.kept: list[pd.DataFrame] = []  # the rows from ``first`` on, in order
        self.first = 0  # index in the twin's log of the first row kept
        self.row_count = 0  # rows of the twin's log so far (without the closing ``end`` row)
        self.readers: dict[str, int] = {}  # reader -> rows of the log it has taken

    def advance(self, hours: float) -> pd.DataFrame:
        """Run the twin to ``hours`` (at most its horizon); the rows it made since the last call. Rows every reader
        has taken (all rows before these, without readers) are dropped first."""
        self._drop(min(self.readers.values(), default=self.row_count))
        self.rep.advance(min(hours, self.rep.horizon))
        rows = self.rep.new_rows()
        self.rep.forget_published()
        if len(rows):
            self.kept.append(rows)
            self.row_count += len(rows)
        return rows

    def settled(self) -> float:
        """The twin's rows before this time are all handed out (``Replication.settled``; the run's end once it is
        over): its running totals at a whole hour up to here are final."""
        return self.rep.now if self.rep.finished else self.rep.settled()

    def take(self, reader: str) -> pd.DataFrame:
        """The rows made since ``reader`` last took (a new reader: every row still kept), in order."""
        position = max(self.readers.get(reader, self.first), self.first)
        self.readers[reader] = self.row_count
        return self.rows_since(position)

    def release(self, reader: str) -> None:
        """Stop keeping rows for ``reader``."""
        self.readers.pop(reader, None)

    def retained(self) -> int:
        """Rows held in memory: those kept for readers and those the replication has not handed out yet."""
        return self.row_count - self.first + len(self.rep.rec.times)

    def rows_since(self, count: int) -> pd.DataFrame:
        """The twin's rows after the first ``count`` (a copy); ``count`` must not be before the rows kept."""
        if count < self.first:
            raise ValueError(f"rows from {count} on were dropped (kept from {self.first}); use replay()")
        if not self.kept:
            return self.rep.rec.decode(0, np.empty(0, np.int64))
        if len(self.kept) > 1:
            self.kept = [pd.concat(self.kept, ignore_index=True)]
        return self.kept[0].iloc[count - self.first :].reset_index(drop=True)

    def _drop(self, upto: int) -> None:
        """Forget the rows before index ``upto``."""
        upto = min(upto, self.row_count)
        if upto <= self.first:
            return
        if len(self.kept) > 1:
            self.kept = [pd.concat(self.kept, ignore_index=True)]
        rest = self.kept[0].iloc[upto - self.first :] if self.kept else None
        self.kept = [rest.reset_index(drop=True)] if rest is not None and len(rest) else []
        self.first = upto

    def meta(self, hours: float) -> LogMeta:
        """The metadata of the twin's log of (0, hours]."""
        return self.line.log_meta(
            horizon=hours,
            warmup=self.warmup,
            replications=1,
            seed=self.seed,
            spec_hash=self.line.spec_hash,
            source="simulation",
        )

    def replay(self, hours: float) -> EventLog:
        """The twin's whole event log of (0, hours], closed by an ``end`` row at ``hours``: made again by a fresh
        replication with the same seed (the same rows the shadow made; nothing of the shadow's own is read). Like
        the shadow, it holds back rows not final yet (``Replication.settled``: a failure found when a wait ends)."""
        rep = Replication(self.line, self.seed, 0, self.horizon)
        hours = min(hours, rep.horizon)
        rep.advance(hours)
        table = rep.new_rows()
        end = end_row(max(hours, rep.now if rep.finished else hours))
        meta = self.meta(hours)
        whole = pd.concat([table.astype(object), end.astype(object)], ignore_index=True)
        return EventLog(normalize_table(whole, meta), meta)


def _mean(summary: dict[str, Any], *path: str) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    value = node.get("mean") if isinstance(node, dict) else node
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def drift(plant: dict[str, Any], twin: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Plant and twin means of the main KPIs, their difference (twin - plant) and its relative size."""
    out = {}
    keys = [(m, (m,)) for m in LINE_METRICS]
    for station in plant.get("stations", {}):
        keys += [(f"{station}.{m}", ("stations", station, m)) for m in STATION_METRICS]
    for name, path in keys:
        p, t = _mean(plant, *path), _mean(twin, *path)
        diff = None if p is None or t is None else t - p
        rel = None if diff is None or not p else diff / abs(p)
        out[name] = {"plant": p, "twin": t, "drift": diff, "relative": rel}
    return out
