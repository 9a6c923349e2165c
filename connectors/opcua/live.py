"""What a live run looks like now: per unit state, batch, counts and state durations, from event-log rows.

    >>> line = LiveLine(compile_line(spec))
    >>> for change in line.apply(rep.new_rows()):     # Change(time, unit, field, value), in row order
    ...     publish(change)
    >>> line.units[("coating", 0)].state, line.units[("coating", 0)].produced

The twin server publishes the final values of each tick; the emulator publishes every change with
its own time. States come from the rows' ``state`` column, whatever states the engine has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.engine.compiled import CompiledLine
from twin.eventlog import COLUMNS, QUALITY_LOSS_EVENTS

LINE = None  # the ``unit`` of line-level changes (releases)
_NONE = {"replication": 0, "batch": -1, "unit": -1, "parent": -1, "quantity": np.nan, "ideal": np.nan, "time": np.nan}


def complete(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column of the event-log schema, in order (missing ones hold their "none" value)."""
    for column in COLUMNS:
        if column not in table:
            table[column] = _NONE.get(column)
    return table[list(COLUMNS)]


def end_row(time: float) -> pd.DataFrame:
    """The ``end`` row of a replication observed up to ``time``."""
    return complete(
        pd.DataFrame({"time": [time], "event": ["end"], "product": [None], "station": [None], "state": [None]})
    )


@dataclass
class UnitStatus:
    """One equipment unit as of the last applied row."""

    station: str
    index: int
    state: str | None = None
    since: float = 0.0  # hours: when the current state began
    batch: int = -1
    product: str | None = None
    produced: float = 0.0  # units (tablets, vials) finished
    defective: float = 0.0
    batches_done: int = 0
    speed: float = 0.0  # units per hour of the last finished batch
    started: float | None = None
    durations: dict[str, float] = field(default_factory=dict)  # hours per state, closed intervals
    losses: dict[str, float] = field(default_factory=dict)  # units lost per quality-loss event (scrap, reject)

    def state_hours(self, now: float) -> dict[str, float]:
        """Hours in each state up to ``now`` (the current state's open interval included)."""
        out = dict(self.durations)
        if self.state is not None:
            out[self.state] = out.get(self.state, 0.0) + max(now - self.since, 0.0)
        return out


@dataclass(frozen=True)
class Change:
    time: float
    unit: tuple[str, int] | None  # None: line level
    field: str  # state, batch, product, produced, batches_done, defective, speed, released
    value: Any


class LiveLine:
    """Statuses of every unit and the line, advanced by event-log rows."""

    def __init__(self, line: CompiledLine):
        self.line = line
        self.units = {(s.name, u): UnitStatus(s.name, u) for s in line.stations for u in range(s.units)}
        self.released = 0
        self.last_released = -1
        self.exits = 0
        self.wip = 0
        self.now = 0.0
        self._last = line.stations[-1].name

    def apply(self, rows: pd.DataFrame) -> Iterator[Change]:
        """Apply rows in order; yield every change they make."""
        if not len(rows):
            return
        columns = zip(
            rows["time"].to_numpy(),
            rows["batch"].to_numpy(),
            rows["product"].astype(object),
            rows["station"].astype(object),
            rows["unit"].to_numpy(),
            rows["event"].astype(object),
            rows["state"].astype(object),
            rows["quantity"].to_numpy(),
            strict=True,
        )
        for time, batch, product, station, unit, event, state, quantity in columns:
            time = float(time)
            self.now = max(self.now, time)
            if event == "release":
                self.released += 1
                self.wip += 1
                self.last_released = int(batch)
                yield Change(time, LINE, "released", (int(batch), product))
                continue
            if event == "leave" and station == self._last:
                self.exits += 1
                self.wip -= 1
            if not isinstance(station, str) or unit < 0:
                continue
            key = (station, int(unit))
            status = self.units[key]
            if event in ("setup", "start") and batch >= 0 and batch != status.batch:
                status.batch = int(batch)
                yield Change(time, key, "batch", int(batch))
                if product != status.product:
                    status.product = product
                    yield Change(time, key, "product", product)
            if event == "start":
                status.started = time
            elif event == "finish":
                qty = float(quantity) if quantity == quantity else 0.0
                status.produced += qty
                status.batches_done += 1
                if status.started is not None and time > status.started:
                    status.speed = qty / (time - status.started)
                yield Change(time, key, "produced", status.produced)
                yield Change(time, key, "batches_done", status.batches_done)
            elif event in QUALITY_LOSS_EVENTS:
                qty = float(quantity) if quantity == quantity else 0.0
                status.defective += qty
                status.losses[event] = status.losses.get(event, 0.0) + qty
                yield Change(time, key, "defective", status.defective)
                yield Change(time, key, f"loss.{event}", status.losses[event])
            if isinstance(state, str):
                if status.state is not None:
                    status.durations[status.state] = status.durations.get(status.state, 0.0) + time - status.since
                status.state, status.since = state, time
                yield Change(time, key, "state", state)
