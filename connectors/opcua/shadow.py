"""Shadow mode: the twin runs the same line alongside the plant, on the plant's clock, and the KPIs are compared.

>>> shadow = Shadow(spec, seed=1, horizon=10_000.0)
>>> twin_log = shadow.log_until(plant_hours)             # the twin's event log up to the plant's time
>>> drift(plant_kpis.summary, compute_kpis(twin_log).summary)
{"throughput_per_hour": {"plant": 0.13, "twin": 0.14, "drift": 0.01, "relative": 0.077}, ...}
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
    """A replication of the spec advanced to the plant's time on demand."""

    def __init__(self, spec: LineSpec, seed: int, horizon: float, warmup: float = 0.0):
        self.spec, self.seed, self.warmup = spec, seed, warmup
        self.line = compile_line(spec)
        self.rep = Replication(self.line, seed, 0, horizon)
        self.parts: list[pd.DataFrame] = []
        self.row_count = 0  # rows of the twin's log so far (without the closing ``end`` row)

    def advance(self, hours: float) -> pd.DataFrame:
        """Run the twin to ``hours`` (at most its horizon); the rows it made since the last call."""
        self.rep.advance(min(hours, self.rep.horizon))
        rows = self.rep.new_rows()
        if len(rows):
            self.parts.append(rows)
            self.row_count += len(rows)
            # few frames, each copied O(log n) times: merge the newest two while the older is not much larger
            while len(self.parts) > 1 and len(self.parts[-2]) <= 2 * len(self.parts[-1]):
                self.parts[-2:] = [pd.concat(self.parts[-2:], ignore_index=True)]
        return rows

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

    def log_until(self, hours: float) -> EventLog:
        """The twin's event log of (0, hours], closed by an ``end`` row at ``hours``."""
        hours = min(hours, self.rep.horizon)
        rows = self.advance(hours)
        table = pd.concat(self.parts, ignore_index=True) if self.parts else rows
        if len(self.parts) > 1:
            self.parts = [table]  # one frame: a tick concatenates two, not one per tick so far
        self.row_count = len(table)
        end = end_row(max(hours, self.rep.now if self.rep.finished else hours))
        meta = self.meta(hours)
        whole = pd.concat([table.astype(object), end.astype(object)], ignore_index=True)
        return EventLog(normalize_table(whole, meta), meta)

    def rows_since(self, count: int) -> pd.DataFrame:
        """The twin's rows after the first ``count`` (for a consumer that takes them a tick at a time): a copy of
        the newest frames only."""
        need = self.row_count - count
        if need <= 0 or not self.parts:
            return self.parts[0].iloc[:0] if self.parts else pd.DataFrame()
        tail, got = [], 0
        for part in reversed(self.parts):
            tail.append(part)
            got += len(part)
            if got >= need:
                break
        table = tail[0] if len(tail) == 1 else pd.concat(tail[::-1], ignore_index=True)
        return table.iloc[len(table) - need :]


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
