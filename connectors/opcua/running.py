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

With ``marks=True`` (the plant's, in the sync) ``feed`` also makes the running totals of every whole hour it
passes (``KpiAccumulator.totals``, a few hundred bytes each); the sync stores them in the historian, and the
Live page gets the KPIs since any whole hour from two of them (``window_from_totals``), without a rescan.
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
from twin.kpis.line import LINE_KPIS
from twin.kpis.summary import KpiSummary

DAY = 24  # hours of the "last 24 h" window
WINDOWS = ("shift", "day")  # the windows every snapshot carries (and "since" with ``twin sync --kpis-since``)


def window_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    """The line KPIs (``twin.kpis.line.LINE_KPIS``), the constraint, the bottleneck and each station's OEE of a
    window: one replication's row of KPIs (``compute_kpis(...).per_replication``, ``KpiAccumulator.row``)."""
    out: dict[str, Any] = {k.column: _number(row.get(k.column)) for k in LINE_KPIS}
    out["constraint"] = _name(row.get("constraint"))
    out["bottleneck"] = _name(row.get("bottleneck"))
    out["stations"] = {name: _number(row.get(f"{name}.oee")) for name in _stations(row)}
    return out


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _stations(row: Mapping[str, Any]) -> list[str]:
    keys = row.keys()  # a pandas row iterates over its values
    return [key[: -len(".bottleneck_sole")] for key in keys if key.endswith(".bottleneck_sole")]


class RunningKpis:
    """One log's accumulators and the windows kept for it (see the module's docstring)."""

    def __init__(self, meta: LogMeta, clock: RunClock, since: float | None = None, marks: bool = False):
        self.meta, self.clock = meta, clock
        self.marks: list[tuple[float, dict[str, Any]]] | None = [] if marks else None  # totals at whole hours
        self._marked = -1  # the last whole hour marked
        self._upto = 0.0  # the hours ``prepare`` was given
        self.acc = KpiAccumulator(meta)
        self.rows = 0  # rows fed
        self.since = None if since is None else max(float(since), self.acc.warmup)  # a window asked for (hours)
        if self.since is not None:
            self.acc.add_window(self.since)

    def prepare(self, upto: float) -> None:
        """Open the windows that rows up to ``upto`` hours will cross (the shift's start, the day's hours)."""
        acc = self.acc
        self._upto = max(self._upto, float(upto))
        warmup = acc.warmup
        shift = shift_span(self.clock, upto)[0]
        starts = {shift} | set(range(max(math.floor(upto) - DAY - 1, 0), math.floor(upto) + 1))
        for start in sorted(starts):
            if start > warmup and start >= acc.now:
                acc.add_window(start)
        for start in acc.window_starts():
            if start < upto - DAY - 1 and start not in (shift, self.since):
                acc.drop_window(start)

    def feed(self, rows: pd.DataFrame, settled: float | None = None) -> None:
        """Take the rows made since the last call (up to the hours ``prepare`` was given); with ``marks`` on, the
        running totals at each whole hour they pass (``take_marks``), up to ``settled`` hours if given (what
        later values can only change through a rollback: the decoder's watermark)."""
        if self.marks is None:
            if len(rows):
                self.acc.feed(complete(rows.copy()))
                self.rows += len(rows)
            return
        last = math.floor(self._upto if settled is None else min(self._upto, settled))
        hours = [float(h) for h in range(max(self._marked + 1, math.ceil(self.acc.warmup)), last + 1)]
        table = complete(rows.copy()) if len(rows) else rows
        self.marks += self.acc.feed(table, stops=hours)
        if hours:
            self._marked = int(hours[-1])
        self.rows += len(rows)

    @property
    def last_mark(self) -> int:
        """The last whole hour marked (-1: none)."""
        return self._marked

    def skip_marks_upto(self, hour: int) -> None:
        """Make no marks up to ``hour`` (a rebuild after late values from later on: the earlier ones stand)."""
        self._marked = max(self._marked, int(hour))

    def take_marks(self) -> list[tuple[float, dict[str, Any]]]:
        """The running totals made at whole hours since the last call (``KpiAccumulator.totals``)."""
        if self.marks is None:
            return []
        marks, self.marks = self.marks, []
        return marks

    def summary(self, hours: float, products: Mapping[int, str] | None = None) -> KpiSummary:
        return self.acc.summary(hours, products=products)

    def window_starts(self, hours: float) -> dict[str, float]:
        """The start of each window at ``hours``: this shift's, and the first whole hour of the last day kept."""
        kept = [s for s in self.acc.window_starts() if s < hours]
        shift = shift_span(self.clock, hours)[0]
        day = min((s for s in kept if s >= hours - DAY), default=None)
        starts = {
            "shift": shift if shift in kept else min((s for s in kept if s >= shift), default=self.acc.warmup),
            "day": day if day is not None else max(kept, default=self.acc.warmup),
        }
        if self.since is not None:
            starts["since"] = self.since
        return starts

    def windows(self, hours: float, products: Mapping[int, str] | None = None) -> dict[str, dict[str, Any]]:
        """Per window: ``since`` (hours), its name, and the figures of (since, hours]."""
        out = {}
        labels = {"shift": shift_span(self.clock, hours)[1], "day": "last 24 h", "since": "since a time asked for"}
        for name, since in self.window_starts(hours).items():
            row = self.acc.row(hours, since=since, products=products)
            out[name] = {"since": since, "label": labels[name], "figures": window_figures(row) if row else None}
        return out
