"""The event table as numpy arrays, split by replication, with codes from ``twin.eventlog``.

>>> for replication, cols in by_replication(log.table):
...     finishes = cols.time[cols.event == EVENT["finish"]]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from twin.eventlog import EVENTS, STATES

EVENT = {name: i for i, name in enumerate(EVENTS)}
STATE = {name: i for i, name in enumerate(STATES)}


@dataclass(frozen=True)
class Columns:
    """One replication's rows; categorical columns as integer codes (-1 = null)."""

    time: np.ndarray
    batch: np.ndarray
    product: np.ndarray
    station: np.ndarray
    unit: np.ndarray
    event: np.ndarray
    state: np.ndarray
    quantity: np.ndarray
    ideal: np.ndarray
    parent: np.ndarray

    def __getitem__(self, index: slice | np.ndarray) -> Columns:
        return Columns(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _codes(column: pd.Series, vocabulary: tuple[str, ...] | list[str]) -> np.ndarray:
    """Category codes of ``column`` re-mapped onto ``vocabulary``'s order (-1 for null)."""
    cat = column.astype("category") if column.dtype.name != "category" else column
    remap = np.array([vocabulary.index(c) if c in vocabulary else -1 for c in cat.cat.categories] + [-1])
    return remap[cat.cat.codes.to_numpy()].astype(np.int64)


def table_columns(table: pd.DataFrame, stations: list[str], products: list[str]) -> Columns:
    """The rows of an event table as ``Columns``, in the table's order."""
    return Columns(
        time=table["time"].to_numpy().astype(np.float64),
        batch=table["batch"].to_numpy().astype(np.int64),
        product=_codes(table["product"], products),
        station=_codes(table["station"], stations),
        unit=table["unit"].to_numpy().astype(np.int64),
        event=_codes(table["event"], EVENTS),
        state=_codes(table["state"], STATES),
        quantity=table["quantity"].to_numpy().astype(np.float64),
        ideal=table["ideal"].to_numpy().astype(np.float64),
        parent=table["parent"].to_numpy().astype(np.int64),
    )


def by_replication(table: pd.DataFrame, stations: list[str], products: list[str]) -> Iterator[tuple[int, Columns]]:
    """Yield (replication, rows of it in time order) for each replication in the table."""
    rep = table["replication"].to_numpy()
    time = table["time"].to_numpy()
    order = None
    if len(rep) and (np.any(np.diff(rep) < 0) or np.any((np.diff(time) < 0) & (np.diff(rep) == 0))):
        order = np.lexsort((np.arange(len(rep)), time, rep))
    cols = table_columns(table, stations, products)
    if order is not None:
        cols, rep = cols[order], rep[order]
    bounds = np.flatnonzero(np.diff(rep)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(rep)]))
    for a, b in zip(starts, ends, strict=True):
        if b > a:
            yield int(rep[a]), cols[a:b]
