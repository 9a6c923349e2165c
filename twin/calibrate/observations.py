"""What an event log says about a line's durations, yields and rejects: the raw observations.

    >>> obs = observe(log, basis={"press": "operating"}, window=Window(0.0, None))
    >>> obs.processing["press"].durations()           # processing times, censored ones included
    >>> obs.time_to_failure["press"].durations()

Per unit, from its rows in order (see ``twin.engine.rules.unit`` for what each row means):

- processing: from a batch's ``start`` to its ``finish`` on the unit, less the time the unit was
  down (``fail`` to ``repair``) in between;
- time to failure: from a ``repair`` (or the start of a simulated run, where every unit starts
  fresh) to the next ``fail``: the processing time in between for failures on an ``operating``
  basis, the wall-clock time for a ``calendar`` basis; repair time: ``fail`` to ``repair``;
- changeovers (``setup``), line clearances, minor (``clean``) and major (``major_clean``) cleans:
  from that row to the unit's next row that sets a state (other than ``fail``/``repair``), less
  down time. A changeover is keyed by the product of the unit's previous batch and the new one.

An interval still running when the data end (the end of the replication or of the data window) is
a right-censored observation of its length so far. Intervals are used when they begin inside the
window; rows after the window's end are not read. A log that does not come from a simulation does
not say when a unit's current time to failure began, so its first one is not used.

Line-level: QC test times (``qc_start`` to ``qc_end``), incubation (``qc_end`` to the result),
QC investigations, the share of out-of-specification results, and per station the units lost to
``scrap`` against those ``finish``-ed and whole batches rejected after processing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin.calibrate.fit import Durations
from twin.eventlog import EventLog

ACTIVITIES = ("setup", "line_clearance", "clean", "major_clean")
_NO_EXTRA = (-1, -1, 0.0, math.nan)


@dataclass(frozen=True)
class Window:
    """The data window in hours: intervals that begin in [start, end] are used (end None: each replication's end)."""

    start: float = 0.0
    end: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {"from_hours": self.start, "to_hours": self.end}


@dataclass
class DurationList:
    """Durations as they are found, with what they belong to (product, changeover pair, batch ...)."""

    values: list[float] = field(default_factory=list)
    censored: list[bool] = field(default_factory=list)
    keys: list[object] = field(default_factory=list)
    extra: list[tuple[int, int, float, float]] = field(default_factory=list)  # replication, batch, start, quantity

    def add(
        self, value: float, censored: bool, key: object = None, extra: tuple[int, int, float, float] = _NO_EXTRA
    ) -> None:
        self.values.append(value)
        self.censored.append(censored)
        self.keys.append(key)
        self.extra.append(extra)

    def durations(self, keys: set[object] | None = None) -> Durations:
        """All durations, or those whose key is in ``keys``."""
        pick = [i for i, k in enumerate(self.keys) if keys is None or k in keys]
        return Durations(np.array([self.values[i] for i in pick], dtype=float),
                         np.array([self.censored[i] for i in pick], dtype=bool))  # fmt: skip

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class QualityCounts:
    """Per batch finished at a station: units processed and units lost to scrap; batches rejected after it."""

    quantities: list[float] = field(default_factory=list)
    scrapped: list[float] = field(default_factory=list)
    rejected: list[bool] = field(default_factory=list)

    @property
    def batches(self) -> int:
        return len(self.quantities)


@dataclass
class Observations:
    processing: dict[str, DurationList] = field(default_factory=lambda: defaultdict(DurationList))
    time_to_failure: dict[str, DurationList] = field(default_factory=lambda: defaultdict(DurationList))
    repair: dict[str, DurationList] = field(default_factory=lambda: defaultdict(DurationList))
    activities: dict[tuple[str, str], DurationList] = field(default_factory=lambda: defaultdict(DurationList))
    hold_investigation: dict[str, DurationList] = field(default_factory=lambda: defaultdict(DurationList))
    quality: dict[str, QualityCounts] = field(default_factory=lambda: defaultdict(QualityCounts))
    qc_test: DurationList = field(default_factory=DurationList)
    incubation: DurationList = field(default_factory=DurationList)
    qc_investigation: DurationList = field(default_factory=DurationList)
    oos: list[bool] = field(default_factory=list)
    unused_failures: int = 0  # times to failure whose start the data do not show

    def total(self) -> int:
        """Number of observations of any kind."""
        groups = [self.processing, self.time_to_failure, self.repair, self.activities, self.hold_investigation]
        return (
            sum(len(d) for g in groups for d in g.values())
            + sum(q.batches for q in self.quality.values())
            + len(self.qc_test) + len(self.incubation) + len(self.qc_investigation) + len(self.oos)
        )  # fmt: skip


def observe(
    log: EventLog,
    basis: dict[str, str],
    window: Window | None = None,
    stations: set[str] | None = None,
) -> Observations:
    """Every observation the log holds for ``stations`` (all when None); ``basis``: failure basis per station."""
    window = window or Window()
    out = Observations()
    table = log.table
    fresh = log.meta.source == "simulation"
    ends = log.end_times()
    for rep, rows in table.groupby("replication", sort=True):
        rep = int(rep)
        end = ends.get(rep, float(rows["time"].max()) if len(rows) else 0.0)
        if window.end is not None:
            end = min(end, window.end)
            rows = rows[rows["time"] <= end]
        _observe_units(rows, rep, end, window.start, basis, fresh, stations, out)
        _observe_quality(rows, window.start, stations, out)
        _observe_line(rows, end, window.start, stations, out)
    return out


def _observe_units(
    rows: pd.DataFrame,
    rep: int,
    end: float,
    start: float,
    basis: dict[str, str],
    fresh: bool,
    stations: set[str] | None,
    out: Observations,
) -> None:
    unit_rows = rows[rows["station"].notna() & (rows["unit"] >= 0)]
    if stations is not None:
        unit_rows = unit_rows[unit_rows["station"].astype(object).isin(stations)]
    if unit_rows.empty:
        return
    station_codes = unit_rows["station"].cat.codes.to_numpy()
    units = unit_rows["unit"].to_numpy()
    order = np.lexsort((np.arange(len(unit_rows)), units, station_codes))
    station_names = list(unit_rows["station"].cat.categories)
    events = list(unit_rows["event"].cat.categories)
    states = list(unit_rows["state"].cat.categories)
    products = list(unit_rows["product"].cat.categories)
    columns = (
        unit_rows["time"].to_numpy()[order].tolist(),
        [events[c] for c in unit_rows["event"].cat.codes.to_numpy()[order]],
        [states[c] if c >= 0 else None for c in unit_rows["state"].cat.codes.to_numpy()[order]],
        unit_rows["batch"].to_numpy()[order].tolist(),
        [products[c] if c >= 0 else None for c in unit_rows["product"].cat.codes.to_numpy()[order]],
        unit_rows["quantity"].to_numpy()[order].tolist(),
    )
    keys = list(zip(station_codes[order].tolist(), units[order].tolist(), strict=True))
    first = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[first]:
            station = station_names[keys[first][0]]
            rows_of_unit = [c[first:i] for c in columns]
            _UnitScan(station, rep, basis.get(station, "operating"), start, fresh, out).run(rows_of_unit, end)
            first = i


class _UnitScan:
    """One pass over one unit's rows (see the module docstring for what is measured)."""

    def __init__(self, station: str, rep: int, basis: str, start: float, fresh: bool, out: Observations):
        self.station, self.rep, self.calendar, self.start, self.out = station, rep, basis == "calendar", start, out
        self.down_since: float | None = None
        self.down_total = 0.0
        self.operating = 0.0  # processing time so far, repairs excluded
        self.last = 0.0
        self.batch: tuple[int, str | None, float, float] | None = None  # batch, product, start, down at start
        self.activity: tuple[str, float, float, object] | None = None  # event, start, down at start, key
        self.origin: tuple[float, float] | None = (0.0, 0.0) if fresh else None  # time and operating time
        self.previous: str | None = None
        self.idle_at: float | None = None

    def down(self, t: float) -> float:
        return self.down_total + (t - self.down_since if self.down_since is not None else 0.0)

    def run(self, rows: list[list[object]], end: float) -> None:
        out, station = self.out, self.station
        for t, event, state, batch, product, quantity in zip(*rows, strict=True):
            if self.batch is not None and self.down_since is None:
                self.operating += t - self.last
            self.last = t
            if event == "fail":
                self._failure(t)
            elif event == "repair":
                self._repair(t)
            elif event == "start":
                self._close_activity(t)
                self.batch = (batch, product, t, self.down(t))
                self.previous = product
                self.idle_at = None
            elif event == "finish":
                if self.batch is not None and self.batch[0] == batch:
                    _, name, began, down = self.batch
                    if began >= self.start:
                        value = t - began - (self.down(t) - down)
                        out.processing[station].add(value, False, name, (self.rep, batch, began, quantity))
                self.batch = None
            elif event in ACTIVITIES:
                self._close_activity(t)
                key = (self.previous, product) if event == "setup" else product
                self.activity = (event, t, self.down(t), key)
            elif state is not None:
                self._close_activity(t)
                if state == "idle":
                    self.idle_at = t
        self._finish(end)

    def _failure(self, t: float) -> None:
        if self.origin is not None:
            began, operating = self.origin
            if began >= self.start:
                value = self.operating - operating if not self.calendar else t - began
                self.out.time_to_failure[self.station].add(value, False)
        elif self.down_since is None:
            self.out.unused_failures += 1
        self.origin = None
        if self.down_since is None:
            self.down_since = t

    def _repair(self, t: float) -> None:
        if self.down_since is not None:
            if self.down_since >= self.start:
                self.out.repair[self.station].add(t - self.down_since, False)
            self.down_total += t - self.down_since
            self.down_since = None
        self.origin = (t, self.operating)

    def _close_activity(self, t: float) -> None:
        if self.activity is None:
            return
        event, began, down, key = self.activity
        if began >= self.start:
            self.out.activities[(self.station, event)].add(t - began - (self.down(t) - down), False, key)
        self.activity = None

    def _finish(self, end: float) -> None:
        out, station = self.out, self.station
        if self.batch is not None and self.down_since is None:
            self.operating += max(end - self.last, 0.0)
        if self.batch is not None:
            batch, name, began, down = self.batch
            if began >= self.start:
                value = end - began - (self.down(end) - down)
                out.processing[station].add(value, True, name, (self.rep, batch, began, math.nan))
        if self.activity is not None:
            event, began, down, key = self.activity
            if began >= self.start:
                out.activities[(station, event)].add(end - began - (self.down(end) - down), True, key)
        if self.down_since is not None:
            if self.down_since >= self.start:
                out.repair[station].add(end - self.down_since, True)
        elif self.origin is not None:
            began, operating = self.origin
            if began >= self.start:
                if self.calendar:  # a unit that went idle records no more calendar failures
                    value = (self.idle_at if self.idle_at is not None else end) - began
                else:
                    value = self.operating - operating
                out.time_to_failure[station].add(value, True)


def _observe_quality(rows: pd.DataFrame, start: float, stations: set[str] | None, out: Observations) -> None:
    at_station = rows[rows["station"].notna() & rows["event"].isin(["finish", "scrap", "reject"])]
    if at_station.empty:
        return
    frame = pd.DataFrame(
        {
            "station": at_station["station"].astype(object).to_numpy(),
            "batch": at_station["batch"].to_numpy(),
            "event": at_station["event"].astype(object).to_numpy(),
            "time": at_station["time"].to_numpy(),
            "quantity": at_station["quantity"].to_numpy(),
        }
    )
    finishes = frame[(frame["event"] == "finish") & (frame["time"] >= start)]
    if stations is not None:
        finishes = finishes[finishes["station"].isin(stations)]
    # a dict, not the grouped Series: a Series lookup by a (station, batch) key costs ~40 us per finish
    scrap = frame[frame["event"] == "scrap"].groupby(["station", "batch"])["quantity"].sum().to_dict()
    rejects = frame[frame["event"] == "reject"]
    rejected = set(zip(rejects["station"], rejects["batch"], strict=True))
    for station, batch, quantity in zip(finishes["station"], finishes["batch"], finishes["quantity"], strict=True):
        counts = out.quality[station]
        counts.quantities.append(float(quantity))
        counts.scrapped.append(float(scrap.get((station, batch), 0.0)))
        counts.rejected.append((station, batch) in rejected)  # a reject after a finish: not a hold-time scrap


def _observe_line(rows: pd.DataFrame, end: float, start: float, stations: set[str] | None, out: Observations) -> None:
    """QC (station null) and hold-time investigations (at the station that found the overrun)."""
    wanted = ["qc_start", "qc_end", "approve", "reject", "investigation", "investigation_end"]
    line = rows[rows["event"].isin(wanted)]
    if line.empty:
        return
    events = line["event"].astype(object).to_numpy()
    station = line["station"].astype(object).to_numpy()
    times, batches = line["time"].to_numpy(), line["batch"].to_numpy()
    qc = pd.isna(station)
    first: dict[tuple[str, int], float] = {}
    for event, batch, t, s, at_qc in zip(events, batches, times, station, qc, strict=True):
        key = (event if at_qc else f"{event}@{s}", int(batch))
        first.setdefault(key, float(t))
    if stations is None:
        _pair(first, "qc_start", ["qc_end"], end, start, out.qc_test)
        _pair(first, "qc_end", ["approve", "reject", "investigation"], end, start, out.incubation)
        _pair(first, "investigation", ["investigation_end"], end, start, out.qc_investigation)
        for (event, batch), t in first.items():
            if event == "qc_end" and t >= start:
                results = {e for e in ("approve", "reject", "investigation") if (e, batch) in first}
                if results:  # an OOS result is rejected or investigated (then approved)
                    out.oos.append(bool(results & {"reject", "investigation"}))
    for s in sorted({x for x in station[~qc] if isinstance(x, str)}):
        if stations is None or s in stations:
            _pair(first, f"investigation@{s}", [f"investigation_end@{s}"], end, start, out.hold_investigation[s])


def _pair(
    first: dict[tuple[str, int], float], begin: str, finish: list[str], end: float, start: float, into: DurationList
) -> None:
    for (event, batch), t in first.items():
        if event != begin or t < start:
            continue
        ends = [first[(f, batch)] for f in finish if (f, batch) in first and first[(f, batch)] >= t]
        if ends:
            into.add(min(ends) - t, False)
        else:
            into.add(end - t, True)
