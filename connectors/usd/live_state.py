"""The state of a line now (units, buffers, batches, KPIs), advanced by event-log rows or by plant tags.

    >>> now = LineNow(spec)
    >>> now.apply_rows(rows)                             # a simulated run's new rows (``twin serve``)
    >>> feed = TagFeed(now, tag_map); feed.on_value("COATING_U1_STATE", source_us, 1, 0)   # a plant (``twin sync``)
    >>> with now.lock: now.units[("coating", 0)].state, now.buffers["coating"]

Work is in proportion to what arrives (no replay of the history). Batches are named by labels: the
plant's batch ids (``B000012``) or the engine's numbers as text. A batch is *queued* once released,
in a station's *buffer* once it has finished at the station before (or arrived, in a run), on a
*unit* from its setup or start, and gone when it leaves the last station. A lot split from a batch, or
a batch merged from lots (batch rules), takes its parent's place; the parent is used up. Each unit keeps its last
``RECENT_STATES`` state changes, so that a reader that looks now and then still sees each of them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.spec.model import LineSpec

RECENT_STATES = 64
US_PER_HOUR = 3.6e9
QUEUE = ""  # the "buffer" of released batches not yet at the first station
USED_UP_KEPT = 1024  # split or merged parents remembered (their lots appear within a few rows)


@dataclass
class UnitNow:
    """One unit as of the last change applied."""

    state: str | None = None
    since: float = 0.0  # plant hours: when the state began
    batch: str | None = None  # label of the batch on the unit
    batch_since: float = 0.0
    previous_batch: str | None = None  # the batch before, for a finish reported together with the next batch
    product: str | None = None
    batches_done: int = 0
    recent: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=RECENT_STATES))


class LineNow:
    """Units, buffers and batches of a line now; every change bumps ``version`` and calls ``on_change``.

    Callers hold ``lock`` while they read; the methods below take it themselves.
    """

    def __init__(self, spec: LineSpec, on_change: Callable[[], None] | None = None):
        self.spec = spec
        self.stations = [s.name for s in spec.stations]
        self.version = 0
        self.lock = threading.RLock()
        self.on_change = on_change
        self._next_station = dict(zip(self.stations, [*self.stations[1:], None], strict=True))
        self._clear()

    def _clear(self) -> None:
        spec = self.spec
        self.units = {(s.name, u): UnitNow() for s in spec.stations for u in range(s.units)}
        self.buffers: dict[str, list[str]] = {QUEUE: [], **{name: [] for name in self.stations}}
        self.where: dict[str, tuple] = {}  # batch -> ("buffer", station) | ("unit", station, unit)
        self.products: dict[str, str] = {}  # batch -> product
        self._used_up: dict[str, tuple] = {}  # split or merged parent -> where it was
        self.now = 0.0  # plant hours: the latest time seen
        self.origin_us: int | None = None  # plant feeds: the source time of hour 0
        self.kpis: dict[str, Any] = {}
        self.twin_kpis: dict[str, Any] | None = None
        self.drift: dict[str, Any] | None = None
        self.forecast: dict[str, Any] | None = None  # the latest forecast (``connectors.opcua.forecasting``)

    def set_forecast(self, forecast: dict[str, Any]) -> None:
        """The shadow twin's latest forecast: per batch, when it leaves the line (and is released)."""
        with self.lock:
            self.forecast = forecast
            self._changed()

    def reset(self) -> None:
        """Forget everything: a new run begins."""
        with self.lock:
            self._clear()
            self._changed()

    # ------------------------------------------------------------------------------------------ changes

    def _changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    def _clock(self, t: float) -> None:
        self.now = max(self.now, t)

    def _move(self, batch: str, new: tuple | None, forget: bool = True) -> None:
        """Put ``batch`` at ``new``; ``None``: nowhere (gone from the line if ``forget``, else between places)."""
        old = self.where.pop(batch, None)
        if old is not None and old[0] == "buffer" and batch in self.buffers[old[1]]:
            self.buffers[old[1]].remove(batch)
        if old is not None and old[0] == "unit":
            unit = self.units[(old[1], old[2])]
            if unit.batch == batch:  # another lot still at the unit (a split) is what it holds now
                others = [b for b, w in self.where.items() if w == old]
                unit.previous_batch, unit.batch = batch, others[-1] if others else None
        if new is None:
            if forget:
                self.products.pop(batch, None)
            return
        self.where[batch] = new
        if new[0] == "buffer":
            self.buffers[new[1]].append(batch)

    def set_state(self, key: tuple[str, int], t: float, state: str, restart: bool = False) -> None:
        """Unit ``key`` is in ``state`` from ``t`` on; the same state again starts a new interval only with
        ``restart`` (an event-log state row: ``twin.eventlog.state_intervals`` starts one at every such row)."""
        with self.lock:
            self._clock(t)
            unit = self.units[key]
            if state == unit.state:
                if restart and t != unit.since:
                    unit.since = t
                    self._changed()
                return
            unit.state, unit.since = state, t
            unit.recent.append((t, state))
            self._changed()

    def take(self, key: tuple[str, int], t: float, batch: str, product: str | None = None) -> None:
        """Unit ``key`` holds ``batch`` from ``t`` on (set up for it or processing it)."""
        with self.lock:
            self._clock(t)
            unit = self.units[key]
            if product:
                self.products[batch] = product
            if unit.batch == batch:
                return
            if unit.batch is not None:
                unit.previous_batch = unit.batch
                if self.where.get(unit.batch) == ("unit", *key):
                    del self.where[unit.batch]  # replaced without a finish seen: where it went is unknown
            self._move(batch, ("unit", *key))
            unit.batch, unit.batch_since = batch, t
            unit.product = self.products.get(batch, unit.product)
            self._changed()

    def set_product(self, key: tuple[str, int], product: str | None) -> None:
        """The product on unit ``key`` (and of its batch)."""
        with self.lock:
            unit = self.units[key]
            if product is None or product == unit.product:
                return
            unit.product = product
            if unit.batch is not None:
                self.products[unit.batch] = product
            self._changed()

    def finish(self, key: tuple[str, int], t: float, batch: str | None = None) -> None:
        """Unit ``key`` finished ``batch`` (default: the one it holds, or held until ``t``): it waits for
        the next station, or leaves the line after the last."""
        with self.lock:
            self._clock(t)
            unit = self.units[key]
            if batch is None:
                batch = unit.previous_batch if unit.batch_since >= t and unit.previous_batch else unit.batch
            unit.batches_done += 1
            if batch is not None:
                after = self._next_station[key[0]]
                if self.where.get(batch, ("unit", *key))[0] == "unit":  # not moved on already
                    self._move(batch, ("buffer", after) if after else None)
                if unit.batch == batch:
                    unit.previous_batch, unit.batch = batch, None
            self._changed()

    def release(self, t: float, batch: str, product: str | None = None) -> None:
        """``batch`` is released: queued before the first station."""
        with self.lock:
            self._clock(t)
            if batch in self.where:
                return
            if product:
                self.products[batch] = product
            self._move(batch, ("buffer", QUEUE))
            self._changed()

    def arrive(self, t: float, batch: str, station: str, product: str | None = None) -> None:
        """``batch`` waits in ``station``'s buffer."""
        with self.lock:
            self._clock(t)
            if product:
                self.products.setdefault(batch, product)
            if self.where.get(batch) == ("buffer", station):
                return
            self._move(batch, ("buffer", station))
            self._changed()

    def leave(self, t: float, batch: str, station: str) -> None:
        """``batch`` leaves ``station`` (the line, after the last station)."""
        with self.lock:
            self._clock(t)
            where = self.where.get(batch)
            if where is not None and where[1] == station and (station == self.stations[-1] or where[0] == "unit"):
                self._move(batch, None, forget=station == self.stations[-1])  # on to the next station's buffer
                self._changed()

    def replace(self, t: float, parent: str, batch: str, product: str | None = None) -> None:
        """``batch`` is made from ``parent`` (a split lot, or a merge of several parents): it takes the parent's
        place, and the parent is used up."""
        with self.lock:
            self._clock(t)
            where = self.where.get(parent) or self._used_up.get(parent)
            if parent in self.where:
                self._used_up[parent] = where  # the parent's other lots go there too
                if len(self._used_up) > USED_UP_KEPT:  # a long-running feed keeps only the recent ones
                    del self._used_up[next(iter(self._used_up))]
                self._move(parent, None)
            if product:
                self.products[batch] = product
            if where is not None and batch not in self.where:
                if where[0] == "unit":  # every lot stands at the unit; the unit holds the latest
                    unit = self.units[(where[1], where[2])]
                    unit.batch, unit.batch_since = batch, t
                    self.where[batch] = where
                else:
                    self._move(batch, where)
            self._changed()

    def set_kpis(self, plant: dict[str, Any] | None, twin: dict[str, Any] | None = None,
                 drift: dict[str, Any] | None = None) -> None:  # fmt: skip
        """The latest line KPIs (``KpiReport.summary``), and in shadow mode the twin's and the drift."""
        with self.lock:
            self.kpis, self.twin_kpis, self.drift = plant or {}, twin, drift
            self._changed()

    # ------------------------------------------------------------------------------------------ sources

    def apply_rows(self, rows: pd.DataFrame) -> None:
        """Apply event-log rows (``twin.eventlog`` schema, time order) of a simulated run."""
        if not len(rows):
            return
        parents = rows["parent"].to_numpy() if "parent" in rows.columns else np.full(len(rows), -1)
        columns = zip(
            rows["time"].to_numpy(dtype=float), rows["batch"].to_numpy(), rows["product"].astype(object),
            rows["station"].astype(object), rows["unit"].to_numpy(), rows["event"].astype(object),
            rows["state"].astype(object), parents, strict=True,
        )  # fmt: skip
        with self.lock:
            for t, batch, product, station, unit, event, state, parent in columns:
                label = str(int(batch)) if batch >= 0 else None
                product = product if isinstance(product, str) else None
                if event in ("split", "merge") and label and parent >= 0:
                    self.replace(t, str(int(parent)), label, product)
                    continue
                if event == "release" and label:
                    self.release(t, label, product)
                elif event == "arrive" and label and isinstance(station, str):
                    self.arrive(t, label, station, product)
                elif event == "leave" and label and isinstance(station, str):
                    self.leave(t, label, station)
                if not isinstance(station, str) or unit < 0:
                    continue
                key = (station, int(unit))
                if event in ("setup", "start") and label:
                    self.take(key, t, label, product)
                elif event == "finish":
                    self.units[key].batches_done += 1
                    self._changed()
                if isinstance(state, str):
                    self.set_state(key, t, state, restart=True)
            self._clock(float(rows["time"].max()))


class TagFeed:
    """Plant tag values (a tag map's roles) into a ``LineNow``: states, alarms, batches, products, finishes.

    Time is the values' source time, hours since the first value seen.
    """

    def __init__(self, line: LineNow, tags: Any):
        self.line, self.tags = line, tags
        self.roles: dict[str, tuple[str, tuple[str, int] | None, Any]] = {}
        for station, u, unit in tags.units():
            key = (station, u)
            self.roles[unit.state] = ("state", key, unit)
            self.roles[unit.done.tag] = ("done", key, unit)
            if unit.batch:
                self.roles[unit.batch] = ("batch", key, unit)
            if unit.product:
                self.roles[unit.product] = ("product", key, unit)
            if unit.alarm:
                self.roles[unit.alarm] = ("alarm", key, unit)
        if tags.release is not None:
            self.roles[tags.release.batch] = ("release", None, None)
        self.product_names = {p.name for p in line.spec.products}
        self._plant_state: dict[tuple[str, int], str | None] = {}
        self._alarm: dict[tuple[str, int], bool] = {}
        self._done: dict[tuple[str, int], int] = {}
        self._release_seen = False

    def hours(self, source_us: int) -> float:
        line = self.line
        if line.origin_us is None:
            line.origin_us = source_us
        return (source_us - line.origin_us) / US_PER_HOUR

    def _product(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        name = (self.tags.products or {}).get(value, value)
        return name if name in self.product_names else None

    def on_value(self, tag: str, source_us: int, value: Any, status: int) -> None:
        """One value of ``tag`` (bad statuses and tags of no role are ignored)."""
        role = self.roles.get(tag)
        if role is None or status & 0xC0000000:  # not Good
            return
        kind, key, unit = role
        t = self.hours(source_us)
        line = self.line
        with line.lock:
            if kind == "release":
                first, self._release_seen = not self._release_seen, True
                if value not in (None, "") and not first:  # the first value is the last release before the feed
                    line.release(t, str(value))
            elif kind in ("state", "alarm"):
                if kind == "state":
                    codes = self.tags.codes_for(unit)
                    if value not in codes:
                        return
                    self._plant_state[key] = codes[value]
                else:
                    self._alarm[key] = bool(value)
                state = "down" if self._alarm.get(key) else self._plant_state.get(key)
                if state is not None:
                    line.set_state(key, t, state)
            elif kind == "batch":
                if value not in (None, ""):
                    line.take(key, t, str(value))
            elif kind == "product":
                line.set_product(key, self._product(value))
            elif kind == "done" and isinstance(value, int | np.integer):
                before, self._done[key] = self._done.get(key), int(value)
                if before is not None and int(value) != before:
                    line.finish(key, t)
