"""Cheap event recording for the engine's hot loop, turned into the event-log table at the end.

Each row costs three appends: time, batch and a "kind" that packs (station, unit, event, state),
registered once per call site:

    >>> rec = Recorder(line)
    >>> k_start = rec.kind(station=0, unit=0, event="start", state="processing")
    >>> rec.times.append(now); rec.batches.append(batch); rec.kinds.append(k_start)
"""

from __future__ import annotations

from array import array

import numpy as np
import pandas as pd

from twin.engine.compiled import CompiledLine
from twin.eventlog import EVENTS, STATES, categorical

_EVENT = {name: i for i, name in enumerate(EVENTS)}
_STATE = {name: i for i, name in enumerate(STATES)}
_QUANTITY_EVENTS = (_EVENT["finish"], _EVENT["leave"])


class Recorder:
    """Rows of one replication, kept as compact arrays until ``to_frame``."""

    def __init__(self, line: CompiledLine):
        self.line = line
        self.times = array("d")
        self.batches = array("q")
        self.kinds = array("i")
        self.batch_product = array("h")
        self.batch_quantity = array("d")  # units of each batch when it was created
        self._quantity_rows, self._quantities = array("q"), array("d")  # rows carrying their own quantity
        self._parent_rows, self._parents = array("q"), array("q")  # split and merge rows: the parent batch
        self._kinds: list[tuple[int, int, int, int]] = []
        self._kind_index: dict[tuple[int, int, int, int], int] = {}
        self.in_order = True  # False once a row is recorded ahead of, or behind, the clock

    def kind(self, station: int, unit: int, event: str, state: str | None = None) -> int:
        """The code of rows with this station, unit, event and state (-1 = none)."""
        key = (station, unit, _EVENT[event], _STATE[state] if state else -1)
        code = self._kind_index.get(key)
        if code is None:
            code = self._kind_index[key] = len(self._kinds)
            self._kinds.append(key)
        return code

    def new_batch(self, product: int, quantity: float | None = None) -> int:
        """Register a batch (of ``quantity`` units, default its product's batch size) and return its id."""
        self.batch_product.append(product)
        self.batch_quantity.append(self.line.batch_sizes[product] if quantity is None else quantity)
        return len(self.batch_product) - 1

    def row_quantity(self, time: float, batch: int, kind: int, quantity: float, in_order: bool = True) -> None:
        """Record a row that carries its own quantity (units lost, or a batch's units after a loss)."""
        self._quantity_rows.append(len(self.times))
        self._quantities.append(quantity)
        self.row(time, batch, kind, in_order)

    def row_parent(self, time: float, batch: int, kind: int, parent: int, quantity: float) -> None:
        """Record a ``split`` or ``merge`` row: ``batch`` came from ``parent``."""
        self._parent_rows.append(len(self.times))
        self._parents.append(parent)
        self.row_quantity(time, batch, kind, quantity)

    def row(self, time: float, batch: int, kind: int, in_order: bool = True) -> None:
        """Record one row (the hot loop inlines this)."""
        self.times.append(time)
        self.batches.append(batch)
        self.kinds.append(kind)
        if not in_order:
            self.in_order = False

    def forget(self, count: int) -> None:
        """Drop the first ``count`` rows (a live run's rows already handed out): memory stays bounded over a long
        run. Row indices are relative to what is kept; the arrays are changed in place, so the appends the hot
        loops hold stay valid. Batches are kept (a row names its batch by index): ~10 bytes each."""
        if count <= 0:
            return
        del self.times[:count], self.batches[:count], self.kinds[:count]
        for rows, values in ((self._quantity_rows, self._quantities), (self._parent_rows, self._parents)):
            index, kept = rows.tolist(), values.tolist()
            rows[:] = array("q", [i - count for i in index if i >= count])
            values[:] = array(values.typecode, [v for i, v in zip(index, kept, strict=True) if i >= count])

    def to_frame(self, replication: int, end: float) -> pd.DataFrame:
        """The replication's rows as an event-log table, sorted by time, cut at ``end``, closed by an ``end`` row."""
        self.row(end, -1, self.kind(-1, -1, "end"))
        time = np.frombuffer(self.times, dtype=np.float64)
        keep = time <= end
        if self.in_order and keep.all():
            return self.decode(replication, slice(None))
        rows = np.flatnonzero(keep)
        return self.decode(replication, rows[np.argsort(time[rows], kind="stable")])

    def decode(self, replication: int, rows: slice | np.ndarray) -> pd.DataFrame:
        """Selected rows (a slice or indices, in the order wanted) as an event-log table."""
        time = np.frombuffer(self.times, dtype=np.float64)[rows]
        batch = np.frombuffer(self.batches, dtype=np.int64)[rows]
        kind = np.frombuffer(self.kinds, dtype=np.int32)[rows]
        kinds = np.array(self._kinds, dtype=np.int64).reshape(-1, 4)
        station, unit, event, state = (kinds[:, i].astype(np.int16)[kind] for i in range(4))
        bprod = np.frombuffer(self.batch_product, dtype=np.int16)
        has_batch = batch >= 0
        safe_batch = np.where(has_batch, batch, 0)
        product = np.where(has_batch, bprod[safe_batch] if len(bprod) else -1, -1)
        carries_quantity = np.isin(kinds[:, 2], _QUANTITY_EVENTS)[kind] & has_batch
        bqty = np.frombuffer(self.batch_quantity, dtype=np.float64)
        quantity = np.where(carries_quantity, bqty[safe_batch] if len(bqty) else np.nan, np.nan)
        parent = np.full(len(time), -1, dtype=np.int64)
        if len(self._quantity_rows) or len(self._parent_rows):
            position = np.full(len(self.times), -1, dtype=np.int64)
            position[rows] = np.arange(len(time))
            where = position[np.frombuffer(self._quantity_rows, dtype=np.int64)]
            quantity[where[where >= 0]] = np.frombuffer(self._quantities, dtype=np.float64)[where >= 0]
            where = position[np.frombuffer(self._parent_rows, dtype=np.int64)]
            parent[where[where >= 0]] = np.frombuffer(self._parents, dtype=np.int64)[where >= 0]
        # a trailing row of NaN serves the line-level rows, whose station index is -1
        ideal_table = np.array([s.ideal for s in self.line.stations] + [[np.nan] * len(self.line.products)])
        is_finish = (kinds[:, 2] == _EVENT["finish"])[kind]
        ideal = np.where(is_finish, ideal_table[station, np.maximum(product, 0)], np.nan)
        rates = np.array([s.rate or np.nan for s in self.line.stations] + [np.nan])
        by_rate = is_finish & ~np.isnan(rates[station])
        if by_rate.any():  # rate-based stations: the nameplate time of the units actually processed
            ideal[by_rate] = quantity[by_rate] / rates[station[by_rate]]
        n = len(time)
        return pd.DataFrame(
            {
                "time": time,
                "replication": np.full(n, replication, dtype=np.int32),
                "batch": batch,
                "product": categorical(product, self.line.products),
                "station": categorical(station, [s.name for s in self.line.stations]),
                "unit": unit.astype(np.int16),
                "event": categorical(event, EVENTS),
                "state": categorical(state, STATES),
                "quantity": quantity,
                "ideal": ideal,
                "parent": parent,
            },
            copy=False,  # keeps each column its own block: no costly consolidation of millions of rows
        )
