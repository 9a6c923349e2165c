"""What the scene shows over time, read from an event log and sampled on a time grid (no USD here).

    >>> grid = Grid.over(start_hours=0.0, end_hours=672.0, step_hours=1 / 60)
    >>> tl = build_timeline(log.replication(0), stations, units, grid)
    >>> tl.units[("coating", 0)].state          # a Track: grid indexes where the state changes, and values
    >>> tl.batches[42].location                 # where batch 42 is, from change to change

Sampling rule: the value at grid time g is the value after the last log row at or before g (rows
at equal times in log order, times compared to within ``TOLERANCE_HOURS``), which for states is
exactly ``twin.eventlog.state_intervals``' state at g. A ``Track`` keeps only the grid indexes where
the sampled value changes; resolving it at any grid time gives the sampled value there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TOLERANCE_HOURS = 1e-9
MINUTES_PER_HOUR = 60.0

UNRELEASED, QUEUED, DONE, BUFFER, UNIT = "unreleased", "queued", "done", "buffer", "unit"
UNIT_EVENTS = frozenset({"setup", "start", "finish", "fail", "repair"})
"""Events with a batch and a unit that put (or keep) the batch on that unit."""
GENEALOGY_EVENTS = frozenset({"split", "merge"})
"""Rows that make a new batch from a ``parent`` (batch rules): the new batch appears where the parent was."""


@dataclass(frozen=True)
class Grid:
    """Sample times: ``count`` time codes ``start + k * step`` (time codes are simulated minutes)."""

    start: float
    step: float
    count: int

    @classmethod
    def over(cls, start_hours: float, end_hours: float, step_hours: float) -> Grid:
        step = step_hours * MINUTES_PER_HOUR
        span = (end_hours - start_hours) * MINUTES_PER_HOUR
        return cls(start_hours * MINUTES_PER_HOUR, step, math.floor(span / step + 1e-9) + 1)

    def codes(self, k: np.ndarray) -> np.ndarray:
        """Time codes of grid indexes."""
        return self.start + np.asarray(k, dtype=np.float64) * self.step

    def first_index_at_or_after(self, hours: np.ndarray) -> np.ndarray:
        """For each time, the first grid index whose time is at or after it (within the tolerance)."""
        x = (np.asarray(hours, dtype=np.float64) - TOLERANCE_HOURS) * MINUTES_PER_HOUR - self.start
        return np.ceil(x / self.step).astype(np.int64).clip(0, None)


@dataclass(frozen=True)
class Track:
    """A piecewise-constant signal on a grid: ``values[i]`` holds from grid index ``k[i]`` on."""

    k: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.k)

    def at(self, index: int) -> Any:
        """The value at grid index ``index``."""
        i = int(np.searchsorted(self.k, index, side="right")) - 1
        return self.values[max(i, 0)]


def sample(grid: Grid, hours: np.ndarray, values: Sequence[Any] | np.ndarray, initial: Any) -> Track:
    """The change points on ``grid`` of the signal that takes ``values[i]`` at ``hours[i]`` (time-sorted)."""
    values = np.asarray(values, dtype=object if not isinstance(values, np.ndarray) else values.dtype)
    k = grid.first_index_at_or_after(hours)
    inside = k < grid.count
    k, values = k[inside], values[inside]
    if len(k):
        last_of_index = np.ones(len(k), dtype=bool)
        last_of_index[:-1] = k[1:] != k[:-1]
        k, values = k[last_of_index], values[last_of_index]
    if not len(k) or k[0] > 0:
        k = np.concatenate([[0], k])
        if values.dtype == object:
            first = np.empty(1, dtype=object)
            first[0] = initial
        else:
            first = np.asarray([initial], dtype=None if values.dtype.kind == "U" else values.dtype)
        values = np.concatenate([first, values])
    changed = np.ones(len(k), dtype=bool)
    changed[1:] = values[1:] != values[:-1]
    return Track(k[changed], values[changed])


@dataclass(frozen=True)
class UnitTimeline:
    state: Track  # str ("" before the first state row)
    batch: Track  # int, -1 for none
    product: Track  # str, "" for none
    good_count: Track  # int: good units finished
    batches_done: Track  # int


@dataclass(frozen=True)
class BatchTimeline:
    batch: int
    product: str
    location: Track  # tuples: (UNRELEASED,), (QUEUED, slot), (BUFFER, station, slot), (UNIT, station, unit), (DONE,)


@dataclass
class Timeline:
    grid: Grid
    units: dict[tuple[str, int], UnitTimeline]
    buffers: dict[str, Track]  # station -> fill (int); "" = released batches not yet in a station
    batches: dict[int, BatchTimeline]
    buffer_slots: dict[str, int] = field(default_factory=dict)  # most places in use at once


def build_timeline(
    table: pd.DataFrame,
    stations: Sequence[str],
    units: Sequence[int],
    grid: Grid,
    quality_loss_events: Sequence[str] = (),
) -> Timeline:
    """Sample one replication's event table (``twin.eventlog`` schema) on ``grid``."""
    unit_tracks = _unit_timelines(table, stations, units, grid, quality_loss_events)
    buffers, batches, slots = _batch_timelines(table, stations, grid)
    return Timeline(grid, unit_tracks, buffers, batches, slots)


def _unit_timelines(
    table: pd.DataFrame, stations: Sequence[str], units: Sequence[int], grid: Grid, quality_loss_events: Sequence[str]
) -> dict[tuple[str, int], UnitTimeline]:
    rows = table[(table["unit"] >= 0) & table["station"].notna()]
    event = rows["event"].astype(str).to_numpy()
    state = rows["state"].astype(object).to_numpy()
    time = rows["time"].to_numpy()
    batch = rows["batch"].to_numpy()
    product = rows["product"].astype(object).to_numpy()
    quantity = rows["quantity"].fillna(0.0).to_numpy()
    keys = list(zip(rows["station"].astype(str).to_numpy(), rows["unit"].to_numpy(), strict=True))
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault((key[0], int(key[1])), []).append(i)
    out: dict[tuple[str, int], UnitTimeline] = {}
    for name, count in zip(stations, units, strict=True):
        for u in range(count):
            idx = np.asarray(groups.get((name, u), []), dtype=np.int64)
            t, ev = time[idx], event[idx]
            has_state = pd.notna(state[idx])
            takes = np.isin(ev, ("setup", "start")) & (batch[idx] >= 0)
            on_unit = takes | (ev == "leave")
            finished = ev == "finish"
            lost = np.isin(ev, tuple(quality_loss_events))
            good = np.cumsum(np.where(finished, quantity[idx], 0.0) - np.where(lost, quantity[idx], 0.0))
            good_rows = finished | lost
            out[(name, u)] = UnitTimeline(
                state=sample(grid, t[has_state], state[idx][has_state].astype(str), ""),
                batch=sample(grid, t[on_unit], np.where(takes, batch[idx], -1)[on_unit], -1),
                product=sample(grid, t[on_unit], np.where(takes, product[idx], "")[on_unit].astype(str), ""),
                good_count=sample(grid, t[good_rows], np.rint(good[good_rows]).astype(np.int64), 0),
                batches_done=sample(grid, t[finished], np.arange(1, int(finished.sum()) + 1), 0),
            )
    return out


def _batch_timelines(
    table: pd.DataFrame, stations: Sequence[str], grid: Grid
) -> tuple[dict[str, Track], dict[int, BatchTimeline], dict[str, int]]:
    """Where every batch is after each of its rows, with buffer places handed out lowest-free first."""
    rows = table[table["batch"] >= 0]
    last_station = stations[-1]
    free: dict[str, list[int]] = {name: [] for name in ["", *stations]}
    top: dict[str, int] = dict.fromkeys(free, 0)
    fill: dict[str, int] = dict.fromkeys(free, 0)
    fill_changes: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in free}
    where: dict[int, tuple] = {}
    moves: dict[int, tuple[list[float], list[tuple]]] = {}
    products: dict[int, str] = {}

    def take_place(area: str) -> int:
        if free[area]:
            free[area].sort()
            return free[area].pop(0)
        top[area] += 1
        return top[area] - 1

    def set_fill(area: str, delta: int, t: float) -> None:
        fill[area] += delta
        fill_changes[area][0].append(t)
        fill_changes[area][1].append(fill[area])

    def move(b: int, new: tuple, t: float, product: object) -> None:
        old = where.get(b, (UNRELEASED,))
        if new == old:
            return
        if old[0] in (QUEUED, BUFFER):
            area = "" if old[0] == QUEUED else old[1]
            free[area].append(old[-1])
            set_fill(area, -1, t)
        if new[0] in (QUEUED, BUFFER):
            area = "" if new[0] == QUEUED else new[1]
            new = (*new[:-1], take_place(area))
            set_fill(area, +1, t)
        where[b] = new
        products.setdefault(b, product if isinstance(product, str) else "")
        moves.setdefault(b, ([], []))
        moves[b][0].append(t)
        moves[b][1].append(new)

    parents = rows["parent"].to_numpy() if "parent" in rows.columns else np.full(len(rows), -1)
    last_place: dict[int, tuple] = {}  # where a batch was before a split or merge consumed it
    columns = zip(
        rows["time"].to_numpy(), rows["batch"].to_numpy(), rows["event"].astype(str).to_numpy(),
        rows["station"].astype(object).to_numpy(), rows["unit"].to_numpy(), rows["product"].astype(object).to_numpy(),
        parents, strict=True,
    )  # fmt: skip
    for t, b, ev, station, unit, product, parent in columns:
        b = int(b)
        old = where.get(b, (UNRELEASED,))
        if ev in GENEALOGY_EVENTS and parent >= 0:  # the new batch takes its parent's place; the parent is used up
            parent = int(parent)
            if where.get(parent, (UNRELEASED,))[0] not in (UNRELEASED, DONE):
                last_place[parent] = where[parent]
                move(parent, (DONE,), t, None)
            place = last_place.get(parent)
            if old[0] == UNRELEASED and place is not None:
                move(b, place if place[0] == UNIT else (*place[:-1], None), t, product)
            continue
        if ev == "release" and old[0] == UNRELEASED:
            new: tuple = (QUEUED, None)
        elif ev == "arrive" and isinstance(station, str):
            new = (BUFFER, station, None)
        elif ev in UNIT_EVENTS and isinstance(station, str) and unit >= 0:
            new = (UNIT, station, int(unit))
        elif ev == "leave" and station == last_station:
            new = (DONE,)
        else:
            continue
        move(b, new, t, product)
    buffers = {area: sample(grid, np.asarray(ts, dtype=float), np.asarray(fs, dtype=np.int64), 0)
               for area, (ts, fs) in fill_changes.items()}  # fmt: skip
    batches: dict[int, BatchTimeline] = {}
    for b, (ts, locs) in moves.items():
        values = np.empty(len(locs), dtype=object)
        values[:] = locs
        track = sample(grid, np.asarray(ts, dtype=float), values, (UNRELEASED,))
        if any(v[0] not in (UNRELEASED, DONE) for v in track.values):
            batches[b] = BatchTimeline(b, products[b], track)
    return buffers, batches, top
