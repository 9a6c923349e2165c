"""Flow KPIs of one replication over a window: throughput, lead time, work in process.

A batch is in process from its ``release`` (or, for a lot made by a ``split`` or ``merge``, from
its making) until it leaves the last station, is rejected at a station, or is consumed by a split
or merge. Throughput counts batches leaving the line inside the window; a batch's lead time runs
from the release of its earliest ancestor; WIP is the time-average number of batches in process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.kpis.columns import EVENT, Columns


@dataclass(frozen=True)
class Flow:
    batches_per_hour: float
    units_per_hour: float
    lead_times: np.ndarray  # hours, one per batch leaving in the window whose origin the log holds
    lead_batches: np.ndarray  # the batch of each lead time
    wip: float
    exits: np.ndarray  # batch ids leaving in the window
    exit_products: np.ndarray
    exit_quantity: np.ndarray  # good units of each batch leaving in the window
    origin: tuple[np.ndarray, np.ndarray]  # (batch ids, release time of their earliest ancestor)


def origins(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Each batch's origin: its release, or the earliest origin among the parents it was made from."""
    released = cols.event == EVENT["release"]
    batches, times = cols.batch[released], cols.time[released]
    made = np.flatnonzero(np.isin(cols.event, [EVENT["split"], EVENT["merge"]]))
    if not len(made):
        return batches, times
    origin = dict(zip(batches.tolist(), times.tolist(), strict=True))
    for child, parent in zip(cols.batch[made].tolist(), cols.parent[made].tolist(), strict=True):
        inherited = origin.get(parent, np.nan)
        current = origin.get(child)
        origin[child] = inherited if current is None or not current <= inherited else current
    keys = np.fromiter(origin, dtype=np.int64, count=len(origin))
    return keys, np.fromiter(origin.values(), dtype=np.float64, count=len(origin))


def flow(cols: Columns, last_station: int, start: float, end: float) -> Flow:
    """Flow KPIs over the window (start, end]."""
    length = end - start
    leaving = (cols.event == EVENT["leave"]) & (cols.station == last_station)
    exit_batch, exit_time, exit_qty = cols.batch[leaving], cols.time[leaving], cols.quantity[leaving]
    in_window = (exit_time > start) & (exit_time <= end)
    origin = origins(cols)
    lead = after(exit_time[in_window], lookup(*origin, exit_batch[in_window], np.nan))
    known = ~np.isnan(lead)  # a batch released before the log began has no known lead time

    made = np.isin(cols.event, [EVENT["split"], EVENT["merge"]])
    released = cols.event == EVENT["release"]
    created = np.unique(np.concatenate((cols.batch[released], cols.batch[made])), return_index=False)
    created_time = lookup(*_first(np.concatenate((cols.batch[released], cols.batch[made])),
                                  np.concatenate((cols.time[released], cols.time[made]))), created, np.nan)  # fmt: skip
    rejected = (cols.event == EVENT["reject"]) & (cols.station >= 0)
    end_batch = np.concatenate((exit_batch, cols.batch[rejected], cols.parent[made]))
    end_time = np.concatenate((exit_time, cols.time[rejected], cols.time[made]))
    out_time = lookup(*_first(end_batch, end_time), created, np.inf)
    overlap = np.minimum(out_time, end) - np.maximum(created_time, start)
    wip = float(np.clip(overlap, 0, None).sum() / length)

    return Flow(
        batches_per_hour=float(in_window.sum() / length),
        units_per_hour=float(np.nansum(exit_qty[in_window]) / length),
        lead_times=lead[known],
        lead_batches=exit_batch[in_window][known],
        wip=wip,
        exits=exit_batch[in_window],
        exit_products=cols.product[leaving][in_window],
        exit_quantity=exit_qty[in_window],
        origin=origin,
    )


def after(times: np.ndarray, since: np.ndarray) -> np.ndarray:
    """Hours from ``since`` to ``times``; NaN where unknown or negative (a batch id seen leaving before its
    release: a plant that uses its batch ids again, the release of the next batch of that id is not its origin)."""
    with np.errstate(invalid="ignore"):
        return np.where(times >= since, times - since, np.nan)


def _first(keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys with their earliest time."""
    order = np.lexsort((times, keys))
    keys, times = keys[order], times[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return keys[first], times[first]


def lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, missing: float) -> np.ndarray:
    """``values[i]`` where ``keys[i] == query`` (keys unique), else ``missing``."""
    if len(keys) == 0:
        return np.full(len(queries), missing)
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_values = keys[order], values[order]
    pos = np.clip(np.searchsorted(sorted_keys, queries), 0, len(keys) - 1)
    return np.where(sorted_keys[pos] == queries, sorted_values[pos], missing)
