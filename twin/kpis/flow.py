"""Flow KPIs of one replication over a window: throughput, lead time, work in process.

A batch is in process from its ``release`` row until its ``leave`` row at the last station.
Throughput counts batches leaving the line inside the window; lead times are those of these
batches; WIP is the time-average number of batches in process over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.kpis.columns import EVENT, Columns


@dataclass(frozen=True)
class Flow:
    batches_per_hour: float
    units_per_hour: float
    lead_times: np.ndarray  # hours, one per batch leaving in the window
    wip: float
    exits: np.ndarray  # batch ids leaving in the window
    exit_products: np.ndarray


def flow(cols: Columns, last_station: int, start: float, end: float) -> Flow:
    """Flow KPIs over the window (start, end]."""
    length = end - start
    released = cols.event == EVENT["release"]
    release_batch, release_time = cols.batch[released], cols.time[released]
    leaving = (cols.event == EVENT["leave"]) & (cols.station == last_station)
    exit_batch, exit_time, exit_qty = cols.batch[leaving], cols.time[leaving], cols.quantity[leaving]
    exit_product = cols.product[leaving]

    in_window = (exit_time > start) & (exit_time <= end)
    lead = exit_time[in_window] - lookup(release_batch, release_time, exit_batch[in_window], np.nan)
    lead = lead[~np.isnan(lead)]
    out_time = lookup(exit_batch, exit_time, release_batch, np.inf)
    overlap = np.minimum(out_time, end) - np.maximum(release_time, start)
    wip = float(np.clip(overlap, 0, None).sum() / length)

    return Flow(
        batches_per_hour=float(in_window.sum() / length),
        units_per_hour=float(np.nansum(exit_qty[in_window]) / length),
        lead_times=lead,
        wip=wip,
        exits=exit_batch[in_window],
        exit_products=exit_product[in_window],
    )


def lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, missing: float) -> np.ndarray:
    """``values[i]`` where ``keys[i] == query`` (keys unique), else ``missing``."""
    if len(keys) == 0:
        return np.full(len(queries), missing)
    order = np.argsort(keys, kind="stable")
    sorted_keys, sorted_values = keys[order], values[order]
    pos = np.clip(np.searchsorted(sorted_keys, queries), 0, len(keys) - 1)
    return np.where(sorted_keys[pos] == queries, sorted_values[pos], missing)
