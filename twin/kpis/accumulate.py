"""Running KPIs: the summary ``compute_kpis`` gives, kept up to date from the rows appended since the last call.

    >>> acc = KpiAccumulator(meta)                  # the log's LogMeta: stations, units, products, warm-up
    >>> acc.add_window(shift_start)                 # also keep the KPIs of (shift_start, now]
    >>> acc.feed(new_rows)                          # event-log rows after those fed before, in time order
    >>> acc.summary(end)                            # == compute_kpis(log of (0, end]).summary
    >>> acc.summary(end, since=shift_start)         # == compute_kpis(clip_log(log, shift_start, end)).summary

A service that follows a plant (or its shadow twin) for months asks for the KPIs every few seconds;
``compute_kpis`` over the whole log costs in proportion to the log. An accumulator consumes each row
once and keeps what the next row and the summary need:

- the line's state now: each unit's state since when, its processing hours so far (for the ideal
  hours a ``finish`` earns), the batches in process with their origin (release of the earliest
  ancestor), the batches in quarantine, each station's active period (all units active) so far;
- per window (the warm-up on, and each ``add_window`` start on): hours per unit and state, the
  quantities finished, scrapped and rejected, credited ideal hours, exits and their lead times,
  approvals, WIP and quarantine hour integrals of the batches closed, and each station's active
  periods in the window.

A summary adds the intervals still open at ``end`` (a unit's state, a batch in process, a batch in
quarantine, an active period) exactly as ``compute_kpis`` closes them at the log's end, and ends in
the same code: ``equipment_oee`` (state shares, A, P, Q, OEE), ``period_bottlenecks``,
``valued_oee`` (line OEE and its constraint), ``replication_row`` and ``summarize``. What is counted
is defined as in ``twin.kpis.flow``, ``quality`` and ``states`` (row by row here, vectorized there);
``tests/test_kpi_accumulators.py`` holds the two equal over random lines cut into random increments.

Cost: a row costs the same whatever came before it (a few dictionary and list operations per
window); a summary costs in proportion to the units, the batches in process and in quarantine, the
lead times and active periods of its window (the bottleneck shares are a function of the periods),
not to the rows. Memory: per batch ever seen, its origin and creation time (about 100 bytes), per
window its lead times and active periods.

Not followed (the log would have to be read again): an ``approve`` before the batch's ``quarantine``
row, and a batch released twice in a log with splits or merges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.eventlog import ACTIVE_STATES, QUALITY_LOSS_EVENTS, STATES, LogMeta
from twin.kpis.bottleneck import period_bottlenecks
from twin.kpis.columns import EVENT, STATE, table_columns
from twin.kpis.flow import Flow
from twin.kpis.quality import Quality
from twin.kpis.report import replication_row, summarize, valued_oee
from twin.kpis.states import equipment_oee
from twin.kpis.summary import KpiSummary

_FINISH, _START, _LEAVE = EVENT["finish"], EVENT["start"], EVENT["leave"]
_RELEASE, _SPLIT, _MERGE = EVENT["release"], EVENT["split"], EVENT["merge"]
_REJECT, _SCRAP, _HOLD = EVENT["reject"], EVENT["scrap"], EVENT["hold_violation"]
_QUARANTINE, _APPROVE, _END = EVENT["quarantine"], EVENT["approve"], EVENT["end"]
_LOSSES = frozenset(EVENT[name] for name in QUALITY_LOSS_EVENTS)
_PROCESSING = STATE["processing"]
_ACTIVE = frozenset(STATE[s] for s in ACTIVE_STATES)


@dataclass
class _Window:
    """What one window (start, now] has summed so far; the state now is the accumulator's."""

    start: float
    n_units: int
    n_stations: int
    n_products: int
    opened: bool = False  # a row later than ``start`` has been fed
    w_start: list[float] = field(default_factory=list)  # each unit's processing hours up to ``start``
    exits: int = 0
    exit_quantity: float = 0.0
    lead: list[float] = field(default_factory=list)
    made: np.ndarray = field(init=False)  # good units leaving per product
    made_unknown: list[tuple[int, float]] = field(default_factory=list)  # (batch, units) whose product is not known yet
    rejected_batches: int = 0
    lost_units: float = 0.0
    hold_violations: int = 0
    approved: int = 0
    qc_rejected: int = 0
    release_lead: list[float] = field(default_factory=list)
    qc_times: list[float] = field(default_factory=list)
    wip_closed: float = 0.0  # batch-hours in the window of the batches out of process
    quarantine_closed: float = 0.0
    quarantine_max: int | None = None
    hours: np.ndarray = field(init=False)  # [unit, state]
    produced: np.ndarray = field(init=False)
    ideal: np.ndarray = field(init=False)
    rejected: np.ndarray = field(init=False)
    own: set[tuple[int, int]] = field(default_factory=set)  # (batch, station) finished in the window
    pending: dict[tuple[int, int], list[tuple[int, float]]] = field(default_factory=dict)  # losses not yet own
    periods: list[tuple[list[float], list[float]]] = field(init=False)  # per station: starts, ends

    def __post_init__(self) -> None:
        self.made = np.zeros(self.n_products)
        self.hours = np.zeros((self.n_units, len(STATES)))
        self.produced = np.zeros(self.n_units)
        self.ideal = np.zeros(self.n_units)
        self.rejected = np.zeros(self.n_units)
        self.periods = [([], []) for _ in range(self.n_stations)]


class KpiAccumulator:
    """KPIs of one replication's log fed a few rows at a time (see the module's docstring)."""

    def __init__(self, meta: LogMeta, warmup: float | None = None):
        self.meta = meta
        self.stations, self.units, self.products = list(meta.stations), list(meta.units), list(meta.products)
        self.offsets = [int(x) for x in np.concatenate(([0], np.cumsum(self.units)[:-1]))]
        n = int(sum(self.units))
        self.n_units = n
        self.unit_station = [j for j, count in enumerate(self.units) for _ in range(count)]
        self.last_station = len(self.stations) - 1
        self.now = -math.inf  # the time of the rows fed last
        self.first_time: float | None = None
        self.rows = 0
        # each unit: its state (-1: none yet), since when, processing hours before that
        self.state = [-1] * n
        self.since = [0.0] * n
        self.worked = [0.0] * n
        self.last_finish: list[tuple[float, float] | None] = [None] * n  # (time, processing hours then)
        self.last_start: dict[tuple[int, int], tuple[float, float]] = {}  # (unit, batch) -> (time, hours then)
        self.in_process: list[tuple[float, float] | None] = [None] * n  # the last start not finished yet
        # each station: units in an active state, and since when all of them are (None: not all)
        self.active = [0] * len(self.units)
        self.period_start: list[float | None] = [None] * len(self.units)
        self.touched: set[int] = set()  # stations whose units changed state at ``now``
        # batches
        self.origin: dict[int, float] = {}  # release of the earliest ancestor (splits and merges inherit it)
        self.first_release: dict[int, float] = {}
        self.made_seen = False
        self.created: dict[int, float] = {}
        self.out: dict[int, float] = {}  # first exit, rejection at a station, or split/merge into a child
        self.in_process_batches: dict[int, float] = {}  # batch -> created time (not out yet)
        self.quarantined: dict[int, float] = {}  # first quarantine row of each batch
        self.released: dict[int, float] = {}  # QC approval or rejection (first) of each batch
        self.in_quarantine: dict[int, list[float]] = {}  # open quarantine rows per batch
        self.level = 0  # batches in quarantine before ``now``'s group
        self.group_out = self.group_in = 0  # quarantine leaves and entries at ``now``
        # line OEE's valuation: ideal hours and quantity of every finish [station, product]
        self.ideal_sum = np.zeros((len(self.units), max(len(self.products), 1)))
        self.quantity_sum = np.zeros_like(self.ideal_sum)
        self.finished_known = False  # a finish row of a known product
        self.finish_unknown: dict[int, list[tuple[int, float, float]]] = {}  # batch -> (station, ideal, qty)
        self.windows: dict[float, _Window] = {}
        self._lead_sum = (0, 0.0)  # lead times of the warm-up's window summed so far (count, sum): ``totals``
        self.warmup = float(meta.warmup if warmup is None else warmup)
        self.add_window(self.warmup)

    # ------------------------------------------------------------------------------------------ windows

    def add_window(self, start: float) -> None:
        """Keep the KPIs of (start, now] from here on; ``start`` must not be before the rows fed."""
        start = float(start)
        if start in self.windows:
            return
        if start < self.now:
            raise ValueError(f"a window from {start} h cannot start before the rows fed ({self.now} h)")
        self.windows[start] = _Window(start, self.n_units, len(self.units), len(self.ideal_sum[0]))

    def drop_window(self, start: float) -> None:
        """Stop keeping the window from ``start`` (the warm-up's is kept)."""
        if float(start) != self.warmup:
            self.windows.pop(float(start), None)

    def window_starts(self) -> list[float]:
        return sorted(self.windows)

    # ------------------------------------------------------------------------------------------ feeding

    def feed(self, table: pd.DataFrame, stops: list[float] | None = None) -> int | list[tuple[float, dict[str, Any]]]:
        """Take the rows of an event table (one replication) later than or at the time of those fed before; how many.
        With ``stops`` (increasing hours, not before the rows fed, the last not before the rows given): the
        ``totals`` at each stop, each taken once the rows up to it are in."""
        if stops is not None:
            marks: list[tuple[float, dict[str, Any]]] = []
            self._feed(table, list(stops), marks)
            return marks
        return self._feed(table, [], [])

    def _feed(self, table: pd.DataFrame, stops: list[float], marks: list[tuple[float, dict[str, Any]]]) -> int:
        stops.reverse()  # the next stop last
        if not len(table):
            marks += [(stop, self.totals(stop, valuation=False)) for stop in reversed(stops)]
            return 0
        cols = table_columns(table, self.stations, self.products)
        time = cols.time
        if np.any(np.diff(time) < 0):
            order = np.lexsort((np.arange(len(time)), time))
            cols = cols[order]
            time = cols.time
        if time[0] < self.now:
            raise ValueError(f"rows at {time[0]} h fed after rows at {self.now} h")
        for row in zip(
            time.tolist(),
            cols.batch.tolist(),
            cols.product.tolist(),
            cols.station.tolist(),
            cols.unit.tolist(),
            cols.event.tolist(),
            cols.state.tolist(),
            cols.quantity.tolist(),
            cols.ideal.tolist(),
            cols.parent.tolist(),
            strict=True,
        ):
            while stops and row[0] > stops[-1]:
                stop = stops.pop()
                marks.append((stop, self.totals(stop, valuation=False)))
            self._row(*row)
        marks += [(stop, self.totals(stop, valuation=False)) for stop in reversed(stops)]
        self.rows += len(time)
        return len(time)

    def _row(self, t: float, b: int, p: int, j: int, u: int, ev: int, st: int, q: float, ideal: float,
             parent: int) -> None:  # fmt: skip
        if t > self.now:
            self._close_group()
            self.now = t
            for w in self.windows.values():
                if not w.opened and w.start < t:
                    self._open(w)
        if self.first_time is None:
            self.first_time = t
        if ev == _END:
            return
        k = self.offsets[j] + u if j >= 0 and u >= 0 else -1
        if st >= 0 and k >= 0:
            self._state(k, j, t, st)
        if ev == _FINISH:
            if j >= 0:
                self._finish(t, b, p, j, u, k, q, ideal)
        elif ev == _START:
            if k >= 0:
                hours = self._worked(k, t)
                self.last_start[(k, b)] = (t, hours)
                if b >= 0:
                    self.in_process[k] = (t, hours)
        elif ev == _LEAVE:
            if j == self.last_station:
                self._exit(t, b, p, q)
        elif ev == _RELEASE:
            self.first_release.setdefault(b, t)
            self.origin[b] = t
            self._create(b, t)
        elif ev in (_SPLIT, _MERGE):
            self.made_seen = True
            inherited = self.origin.get(parent, math.nan)
            current = self.origin.get(b)
            self.origin[b] = inherited if current is None or not current <= inherited else current
            self._create(b, t)
            self._take_out(parent, t)
        elif ev == _QUARANTINE:
            self.quarantined.setdefault(b, t)
            if b not in self.released:  # else it left QC before: not followed (see the module's docstring)
                self.in_quarantine.setdefault(b, []).append(t)
                self.group_in += 1
        elif ev == _APPROVE:
            for w in self._live(t):
                w.approved += 1
                origin = self._origin(b)
                if origin is not None and not math.isnan(origin):
                    w.release_lead.append(t - origin)
                entered = self.quarantined.get(b)
                if entered is not None:
                    w.qc_times.append(t - entered)
            self._leave_quarantine(b, t)
        elif ev == _HOLD:
            for w in self._live(t):
                w.hold_violations += 1
        if ev == _REJECT:
            for w in self._live(t):
                w.rejected_batches += 1
                w.lost_units += 0.0 if math.isnan(q) else q
                if j < 0:
                    w.qc_rejected += 1
            if j >= 0:
                self._take_out(b, t)
            else:
                self._leave_quarantine(b, t)
        elif ev == _SCRAP:
            for w in self._live(t):
                w.lost_units += 0.0 if math.isnan(q) else q
        if ev in _LOSSES and k >= 0:
            qty = 0.0 if math.isnan(q) else q
            for w in self._live(t):
                if (b, j) in w.own:
                    w.rejected[k] += qty
                else:
                    w.pending.setdefault((b, j), []).append((k, qty))

    def _live(self, t: float) -> list[_Window]:
        """The windows a row at ``t`` falls in."""
        return [w for w in self.windows.values() if w.opened and t > w.start]

    def _open(self, w: _Window) -> None:
        w.opened = True
        w.w_start = [self._worked(k, w.start) for k in range(self.n_units)]

    def _worked(self, k: int, t: float) -> float:
        """Processing hours of unit ``k`` up to ``t`` (not before its last state row)."""
        return self.worked[k] + (t - self.since[k] if self.state[k] == _PROCESSING else 0.0)

    def _state(self, k: int, j: int, t: float, st: int) -> None:
        old = self.state[k]
        if old >= 0:
            since = self.since[k]
            for w in self.windows.values():
                if w.opened and t > w.start:
                    w.hours[k, old] += t - max(since, w.start)
            if old == _PROCESSING:
                self.worked[k] += t - since
        self.state[k], self.since[k] = st, t
        was, now = old in _ACTIVE, st in _ACTIVE
        if was != now:
            self.active[j] += 1 if now else -1
            self.touched.add(j)

    def _close_group(self) -> None:
        """The rows at ``now`` are all in: active periods and the quarantine level step there."""
        for j in self.touched:
            self.period_start[j], closed = self._period_step(j)
            if closed is not None:
                for w in self.windows.values():
                    if w.opened:
                        a = max(closed[0], w.start)
                        if closed[1] > a:
                            w.periods[j][0].append(a)
                            w.periods[j][1].append(closed[1])
        self.touched.clear()
        if self.group_out or self.group_in:
            top = self._group_max()
            for w in self.windows.values():
                if w.opened and self.now > w.start:
                    w.quarantine_max = top if w.quarantine_max is None else max(w.quarantine_max, top)
            self.level += self.group_in - self.group_out
            self.group_in = self.group_out = 0

    def _period_step(self, j: int) -> tuple[float | None, tuple[float, float] | None]:
        """Station ``j``'s active period after ``now``'s rows: (its start or None, the period closed at ``now``)."""
        full = self.active[j] >= self.units[j]
        began = self.period_start[j]
        if full:
            return (self.now if began is None else began), None
        return None, (None if began is None else (began, self.now))

    def _group_max(self) -> int:
        """The highest quarantine level among ``now``'s steps (leaves before entries at equal times)."""
        top = -1
        if self.group_out:
            top = self.level - 1
        if self.group_in:
            top = max(top, self.level - self.group_out + self.group_in)
        return top

    def _finish(self, t: float, b: int, p: int, j: int, u: int, k: int, q: float, ideal: float) -> None:
        if p >= 0:
            self.finished_known = True
            if not math.isnan(ideal) and q > 0:
                self.ideal_sum[j, p] += ideal
                self.quantity_sum[j, p] += q
        else:
            self.finish_unknown.setdefault(b, []).append((j, ideal, q))
        if k < 0:
            return
        hours = self._worked(k, t)
        # the batch's processing began at its start row or after the unit's previous finish (twin.kpis.states)
        began, began_hours = -math.inf, 0.0
        start = self.last_start.pop((k, b), None)
        if start is not None and start[0] <= t:
            began, began_hours = start
        previous = self.last_finish[k]
        if previous is not None and previous[0] > began:
            began, began_hours = previous
        total = hours - began_hours
        censored = self.first_time is not None and began <= self.first_time
        value = 0.0 if math.isnan(ideal) else ideal
        for w in self._live(t):
            held = hours - (began_hours if began >= w.start else w.w_start[k])
            share = held / total if total > 0 else 1.0
            earned = value * min(max(share, 0.0), 1.0)
            credit = min(earned, held) if censored else earned
            if credit > 0:
                w.ideal[k] += credit
            w.produced[k] += 0.0 if math.isnan(q) else q
            w.own.add((b, j))
            for unit, qty in w.pending.pop((b, j), ()):
                w.rejected[unit] += qty
        self.last_finish[k] = (t, hours)
        if b >= 0:
            self.in_process[k] = None

    def _exit(self, t: float, b: int, p: int, q: float) -> None:
        origin = self._origin(b)
        for w in self._live(t):
            w.exits += 1
            if not math.isnan(q):
                w.exit_quantity += q
            if origin is not None and not math.isnan(origin):
                w.lead.append(t - origin)
            if p >= 0:
                w.made[p] += 0.0 if math.isnan(q) else q
            else:
                w.made_unknown.append((b, 0.0 if math.isnan(q) else q))
        self._take_out(b, t)

    def _origin(self, b: int) -> float | None:
        return self.origin.get(b) if self.made_seen else self.first_release.get(b)

    def _create(self, b: int, t: float) -> None:
        if b in self.created:
            return
        self.created[b] = t
        if b not in self.out:  # else out before it was made (a log joined mid-run): no time in process
            self.in_process_batches[b] = t

    def _take_out(self, b: int, t: float) -> None:
        if b in self.out:
            return
        self.out[b] = t
        created = self.in_process_batches.pop(b, None)
        if created is not None:
            for w in self._live(t):
                w.wip_closed += t - max(created, w.start)

    def _leave_quarantine(self, b: int, t: float) -> None:
        if b in self.released:
            return
        self.released[b] = t
        entries = self.in_quarantine.pop(b, [])
        self.group_out += len(entries)
        for w in self._live(t):
            for entered in entries:
                w.quarantine_closed += max(t - max(entered, w.start), 0.0)

    # ------------------------------------------------------------------------------------------ reading

    def summary(self, end: float, since: float | None = None, products: Mapping[int, str] | None = None) -> KpiSummary:
        """The KPIs of (``since``, ``end``] (default: from the warm-up), ``end`` not before the rows fed.

        ``products``: batch -> product name, for rows fed without a product that is known now (a plant's
        batch whose product tag came later), as the log's table would show them; once given, a batch's
        product is taken as its for good (a decoder that rolls back feeds a new accumulator)."""
        start = self.warmup if since is None else float(since)
        row = self.row(end, since, products)
        per_replication = pd.DataFrame([row]).set_index("replication") if row is not None else pd.DataFrame()
        return summarize(per_replication, self.meta, start)

    def row(
        self, end: float, since: float | None = None, products: Mapping[int, str] | None = None
    ) -> dict[str, Any] | None:
        """The KPIs of (``since``, ``end``] as ``compute_kpis``'s ``per_replication`` row (None: an empty window)."""
        start = self.warmup if since is None else float(since)
        w = self.windows.get(start)
        if w is None:
            raise KeyError(f"no window from {start} h (add_window first)")
        end = float(end)
        if end < self.now:
            raise ValueError(f"KPIs at {end} h are before the rows fed ({self.now} h)")
        return self._replication(w, end, products or {}) if end > start else None

    def totals(self, end: float, valuation: bool = True) -> dict[str, Any]:
        """Running totals of the warm-up's window at ``end`` (not before the rows fed) that subtract: the figures of
        (a, b] follow from ``totals(b)`` and ``totals(a)`` alone (``window_from_totals``), so a service keeps them
        every hour and a reader gets any window from two of them. JSON-ready: exits, units that left, lead times'
        sum and count, batch-hours in process, good units made per product (of known products), and per station
        the ideal hours earned (a batch still in process counted by its processing hours so far) and the processing
        hours; with ``valuation`` (what only the end of a window needs) each station's ideal hours per unit of each
        product so far (the line OEE's) and the stations' units."""
        w = self.windows[self.warmup]
        start, end = w.start, float(end)
        if end < self.now:
            raise ValueError(f"totals at {end} h are before the rows fed ({self.now} h)")
        w_start = w.w_start if w.opened else [self._worked(k, start) for k in range(self.n_units)]
        hours = w.hours[:, _PROCESSING].copy()
        credit = w.ideal.copy()
        wip = w.wip_closed
        if end > start:
            for k, st in enumerate(self.state):
                if st == _PROCESSING:
                    hours[k] += max(end - max(self.since[k], start), 0.0)
                began = self.in_process[k]
                if began is not None:
                    credit[k] += self._worked(k, end) - (began[1] if began[0] >= start else w_start[k])
            wip += sum(max(end - max(c, start), 0.0) for c in self.in_process_batches.values())
        n, total = self._lead_sum
        if n < len(w.lead):
            self._lead_sum = n, total = len(w.lead), total + math.fsum(w.lead[n:])
        per_station = [slice(o, o + u) for o, u in zip(self.offsets, self.units, strict=True)]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(self.quantity_sum > 0, self.ideal_sum / self.quantity_sum, 0.0)
        return {
            "hours": end,
            "exits": w.exits,
            "quantity": w.exit_quantity,
            "lead_sum": total,
            "lead_n": n,
            "wip": wip,
            "made": w.made.tolist(),
            "credit": [float(credit[s].sum()) for s in per_station],
            "processing": [float(hours[s].sum()) for s in per_station],
            **({"valuation": value.tolist() if self.finished_known else None, "station_units": list(self.units)}
               if valuation else {}),
        }  # fmt: skip

    def _replication(self, w: _Window, end: float, products: Mapping[int, str]) -> dict[str, Any]:
        start = w.start
        length = end - start
        w_start = w.w_start if w.opened else [self._worked(k, start) for k in range(self.n_units)]
        # the intervals open at ``end``, closed there as compute_kpis closes them at the log's end
        hours = w.hours.copy()
        for k, st in enumerate(self.state):
            if st >= 0 and end > start:
                hours[k, st] += max(end - max(self.since[k], start), 0.0)
        wip = w.wip_closed + sum(max(end - max(c, start), 0.0) for c in self.in_process_batches.values())
        quarantine = w.quarantine_closed + sum(
            max(end - max(t, start), 0.0) for entries in self.in_quarantine.values() for t in entries
        )
        quarantine_max = w.quarantine_max
        if (self.group_in or self.group_out) and self.now > start:
            top = self._group_max()
            quarantine_max = top if quarantine_max is None else max(quarantine_max, top)
        periods = []
        for j in range(len(self.units)):
            starts, ends = w.periods[j]
            began, closed = self._period_step(j) if j in self.touched else (self.period_start[j], None)
            extra = []
            for span in (closed, None if began is None else (began, end)):
                if span is not None and span[1] > max(span[0], start):
                    extra.append((max(span[0], start), span[1]))
            tail_starts, tail_ends = [a for a, _ in extra], [z for _, z in extra]
            periods.append((np.array(starts + tail_starts, dtype=float), np.array(ends + tail_ends, dtype=float)))
        b = period_bottlenecks(periods, start, end)
        f = Flow(
            batches_per_hour=w.exits / length,
            units_per_hour=w.exit_quantity / length,
            lead_times=np.array(w.lead),
            lead_batches=np.empty(0, np.int64),
            wip=wip / length,
            exits=np.empty(0, np.int64),
            exit_products=np.empty(0, np.int64),
            exit_quantity=np.empty(0),
            origin=(np.empty(0, np.int64), np.empty(0)),
        )  # the lists of exits are not kept: replication_row reads the figures above
        q = Quality(
            rejected_batches=w.rejected_batches,
            lost_units=w.lost_units,
            hold_violations=w.hold_violations,
            released_per_hour=w.approved / length,
            release_lead_times=np.array(w.release_lead),
            qc_times=np.array(w.qc_times),
            quarantine=quarantine / length,
            quarantine_max=quarantine_max if quarantine_max is not None else 0,
            qc_rejected=w.qc_rejected,
        )
        equipment = equipment_oee(hours, w.ideal, w.produced, w.rejected, self.units, length)
        valued = self._line_oee(w, hours, end, w_start, products)
        return replication_row(0, self.stations, self.units, start, end, f, q, equipment, b, valued)

    def _line_oee(
        self, w: _Window, hours: np.ndarray, end: float, w_start: list[float], products: Mapping[int, str]
    ) -> tuple[float, int]:
        code = {name: i for i, name in enumerate(self.products)}
        for batch in [b for b in self.finish_unknown if b in products]:  # known now: the batch's for good
            p = code.get(products[batch], -1)
            if p < 0:
                continue
            self.finished_known = True
            for j, ideal, qty in self.finish_unknown.pop(batch):
                if not math.isnan(ideal) and qty > 0:
                    self.ideal_sum[j, p] += ideal
                    self.quantity_sum[j, p] += qty
        if not self.finished_known:
            return math.nan, -1
        if w.made_unknown:
            still = []
            for batch, qty in w.made_unknown:
                p = code.get(products.get(batch), -1)
                if p >= 0:
                    w.made[p] += qty
                else:
                    still.append((batch, qty))
            w.made_unknown = still
        ideal_sum, quantity_sum, made = self.ideal_sum, self.quantity_sum, w.made
        start = w.start

        def earned(constraint: int) -> tuple[float, float]:
            first = self.offsets[constraint]
            mine = range(first, first + self.units[constraint])
            credit = float(sum(w.ideal[k] for k in mine))
            for k in mine:  # a batch still in process at the window's end: its hours so far
                began = self.in_process[k]
                if began is not None:
                    credit += self._worked(k, end) - (began[1] if began[0] >= start else w_start[k])
            return credit, float(hours[first : first + self.units[constraint], _PROCESSING].sum())

        return valued_oee(ideal_sum, quantity_sum, self.units, made, earned, end - start)


def window_from_totals(since: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, float | None]:
    """The line KPIs of (``since["hours"]``, ``now["hours"]``] from two ``KpiAccumulator.totals`` of one log.

    Throughput, units per hour, WIP and mean lead time are those of ``compute_kpis`` over the log clipped to the
    window, exactly. The line OEE's edge is not: a batch in process at the window's start earns its ideal hours
    less its processing hours before the start (``compute_kpis`` gives it the share of its ideal hours that lies in
    the window; the same when it ran at its ideal rate); the valuation is the whole run's so far."""
    length = float(now["hours"]) - float(since["hours"])
    if length <= 0:
        raise ValueError("a window must end after it starts")
    lead_n = now["lead_n"] - since["lead_n"]
    out: dict[str, float | None] = {
        "throughput_per_hour": (now["exits"] - since["exits"]) / length,
        "units_per_hour": (now["quantity"] - since["quantity"]) / length,
        "wip": (now["wip"] - since["wip"]) / length,
        "lead_time_hours": (now["lead_sum"] - since["lead_sum"]) / lead_n if lead_n else None,
        "oee": None,
    }
    if now.get("valuation") is not None:
        made = np.asarray(now["made"], dtype=float) - np.asarray(since["made"], dtype=float)
        credit = np.asarray(now["credit"], dtype=float) - np.asarray(since["credit"], dtype=float)
        processing = np.asarray(now["processing"], dtype=float) - np.asarray(since["processing"], dtype=float)
        value = np.asarray(now["valuation"], dtype=float)
        units = list(now["station_units"])
        oee, _ = valued_oee(value, np.ones_like(value), units, made, lambda c: (credit[c], processing[c]), length)
        out["oee"] = oee
    return out
