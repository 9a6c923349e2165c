"""Running KPIs of the plant (or of its shadow twin) for each tick: the whole run, this shift and the last 24 hours.

    >>> kpis = RunningKpis(meta, clock)          # the log's LogMeta, the plant's clock (shift calendars)
    >>> kpis.prepare(upto=hours)                 # before feeding rows up to ``hours``: open the windows they cross
    >>> kpis.feed(new_rows)                      # only the rows made since the last tick
    >>> kpis.summary(hours)                      # == compute_kpis(log up to hours).summary
    >>> kpis.windows(hours, products)            # {"shift": {...}, "day": {...}}: figures of each window

The accumulators (``twin.kpis.accumulate``) keep a window from every whole hour of the last day (so
"last 24 h" starts at the first whole hour at or after 24 h ago, exactly as ``compute_kpis`` of the log
clipped there) and from the current shift's start (``twin.clock.shift_span``). A window can only be
opened before the rows after its start are fed: when a tick covers more than a day of plant time (a
fast replay) the day's window starts at the oldest one kept, and its ``since`` says so. Memory: at most
``DAY + 2`` windows, each holding its lead times and active periods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from connectors.opcua.live import complete
from twin.clock import RunClock, shift_span
from twin.eventlog import LogMeta
from twin.kpis.accumulate import KpiAccumulator
from twin.kpis.line import LINE_KPIS, stat
from twin.kpis.summary import KpiSummary

DAY = 24  # hours of the "last 24 h" window
WINDOWS = ("shift", "day")  # the windows a snapshot carries, in the order the Live page shows them


def window_figures(summary: KpiSummary) -> dict[str, Any]:
    """The line KPIs (``twin.kpis.line.LINE_KPIS``: their means) and each station's OEE of a summary."""
    out: dict[str, Any] = {k.column: stat(summary, k)["mean"] for k in LINE_KPIS}
    out["constraint"] = (summary.get("constraint") or {}).get("station")
    out["bottleneck"] = (summary.get("bottleneck") or {}).get("station")
    out["stations"] = {name: s["oee"]["mean"] for name, s in summary.get("stations", {}).items()}
    return out


class RunningKpis:
    """One log's accumulators and the windows kept for it (see the module's docstring)."""

    def __init__(self, meta: LogMeta, clock: RunClock):
        self.meta, self.clock = meta, clock
        self.acc = KpiAccumulator(meta)
        self.rows = 0  # rows fed

    def prepare(self, upto: float) -> None:
        """Open the windows that rows up to ``upto`` hours will cross (the shift's start, the day's hours)."""
        acc = self.acc
        warmup = acc.warmup
        shift = shift_span(self.clock, upto)[0]
        starts = {shift} | set(range(max(math.floor(upto) - DAY - 1, 0), math.floor(upto) + 1))
        for start in sorted(starts):
            if start > warmup and start >= acc.now:
                acc.add_window(start)
        for start in acc.window_starts():
            if start < upto - DAY - 1 and start != shift:
                acc.drop_window(start)

    def feed(self, rows: pd.DataFrame) -> None:
        if len(rows):
            self.acc.feed(complete(rows.copy()))
            self.rows += len(rows)

    def summary(self, hours: float, products: Mapping[int, str] | None = None) -> KpiSummary:
        return self.acc.summary(hours, products=products)

    def window_starts(self, hours: float) -> dict[str, float]:
        """The start of each window at ``hours``: this shift's, and the first whole hour of the last day kept."""
        kept = [s for s in self.acc.window_starts() if s < hours]
        shift = shift_span(self.clock, hours)[0]
        day = min((s for s in kept if s >= hours - DAY), default=None)
        return {
            "shift": shift if shift in kept else min((s for s in kept if s >= shift), default=self.acc.warmup),
            "day": day if day is not None else max(kept, default=self.acc.warmup),
        }

    def windows(self, hours: float, products: Mapping[int, str] | None = None) -> dict[str, dict[str, Any]]:
        """Per window: ``since`` (hours), its name, and the figures of (since, hours]."""
        out = {}
        labels = {"shift": shift_span(self.clock, hours)[1], "day": "last 24 h"}
        for name, since in self.window_starts(hours).items():
            summary = self.acc.summary(hours, since=since, products=products) if hours > since else None
            out[name] = {
                "since": since,
                "label": labels[name],
                "figures": window_figures(summary) if summary is not None else None,
            }
        return out
