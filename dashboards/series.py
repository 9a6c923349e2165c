"""Aggregate and downsample a run's series on the server, so that the browser gets pixels, not events.

    >>> segments = gantt_segments(view.intervals(0), t0=0, t1=4368, bins=1200)
    >>> segments["processing"]           # (row, start, end) arrays: at most one segment per bin and unit
    >>> states_at(view.intervals(0), t=500.0)      # {row: state} at one moment
    >>> counts_at(view.table(0), stations, t=500.0)

A Gantt of half a year of a 20-unit line has about 10^5 state intervals; at 1,200 pixels across,
each unit's bar is cut into bins of one pixel, each bin takes the state the unit spent most of it
in, and neighbouring bins of the same state merge. Intervals longer than a pixel keep their
boundaries to within a pixel; shorter ones are merged into their bin's main state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.eventlog import STATES

Segments = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def gantt_segments(intervals: pd.DataFrame, t0: float, t1: float, bins: int = 1200) -> Segments:
    """Per state, ``(row, start, end)`` of the merged segments over ``[t0, t1]`` (see the module docstring)."""
    if t1 <= t0 or intervals.empty:
        return {}
    edges = np.linspace(t0, t1, bins + 1)
    rows = np.unique(intervals["row"].to_numpy())
    states = intervals["state"].cat.codes.to_numpy()
    starts, ends = intervals["start"].to_numpy(), intervals["end"].to_numpy()
    row_of = intervals["row"].to_numpy()
    n_states = len(intervals["state"].cat.categories)
    out: dict[int, list[tuple[np.ndarray, ...]]] = {}
    for row in rows:
        mine = row_of == row
        s, e, k = starts[mine], ends[mine], states[mine]
        occupancy = np.zeros((n_states, bins))
        for code in np.unique(k[k >= 0]):
            sel = k == code
            occupancy[code] = np.diff(_cumulative_time(s[sel], e[sel], edges))
        covered = occupancy.sum(axis=0) > 0
        if not covered.any():
            continue
        main = np.where(covered, occupancy.argmax(axis=0), -1)
        change = np.flatnonzero(np.diff(main)) + 1
        first = np.concatenate([[0], change])
        last = np.concatenate([change, [bins]])
        code = main[first]
        keep = code >= 0
        first, last, code = first[keep], last[keep], code[keep]
        # the run's own ends (not the bin edges) bound the first and last segments
        lo = np.maximum(edges[first], s.min())
        hi = np.minimum(edges[last], e.max())
        for c in np.unique(code):
            sel = code == c
            out.setdefault(int(c), []).append((np.full(sel.sum(), row), lo[sel], hi[sel]))
    categories = list(intervals["state"].cat.categories)
    return {
        categories[c]: tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[misc]
        for c, parts in sorted(out.items())
    }


def _cumulative_time(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Time spent inside the (disjoint, sorted) intervals up to each of ``at``."""
    durations = ends - starts
    before = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    xp = np.column_stack([starts, ends]).ravel()
    fp = np.column_stack([before, before + durations]).ravel()
    return np.interp(at, xp, fp, left=0.0, right=fp[-1])


def segment_count(segments: Segments) -> int:
    return sum(len(rows) for rows, _, _ in segments.values())


def states_at(intervals: pd.DataFrame, t: float) -> dict[int, str]:
    """Each unit's (``row``'s) state at time ``t``: the interval with start <= t < end."""
    hit = intervals[(intervals["start"] <= t) & (intervals["end"] > t)]
    if hit.empty:  # at the very end of the run: the last state of each unit
        hit = intervals[(intervals["start"] <= t) & (intervals["end"] >= t)]
    hit = hit.drop_duplicates("row", keep="last")
    return dict(zip(hit["row"].astype(int), hit["state"].astype(str), strict=True))


def counts_at(table: pd.DataFrame, stations: list[str], t: float) -> dict[str, int]:
    """Batches waiting in each station's buffer at ``t`` (arrived, not started), and in QC (``"QC"``)."""
    rows = table[table["time"] <= t]
    event, station = rows["event"].astype(str), rows["station"].astype(object)
    arrived = station[event == "arrive"].value_counts()
    started = station[event == "start"].value_counts()
    out = {s: max(int(arrived.get(s, 0)) - int(started.get(s, 0)), 0) for s in stations}
    line_level = station.isna()
    entered = int(((event == "quarantine") & line_level).sum())
    left = int((event.isin(["approve", "reject"]) & line_level).sum())
    out["QC"] = max(entered - left, 0)
    return out


def batch_paths(
    table: pd.DataFrame, stations: list[str], t0: float, t1: float, limit: int = 300
) -> tuple[pd.DataFrame, int]:
    """Start and leave of each batch at each station, for batches in the line during ``[t0, t1]``.

    Returns the rows (batch, product, station index, start, leave) of at most ``limit`` batches
    (evenly spread over those in the window) and how many batches the window holds.
    """
    rows = table[table["event"].isin(["start", "leave"]) & (table["batch"] >= 0) & table["station"].notna()]
    first = rows.groupby("batch")["time"].min()
    last = rows.groupby("batch")["time"].max()
    inside = first.index[(first <= t1) & (last >= t0)]
    total = len(inside)
    if total > limit:
        inside = inside[np.linspace(0, total - 1, limit).round().astype(int)]
    rows = rows[rows["batch"].isin(inside)]
    starts = rows[rows["event"] == "start"].groupby(["batch", "station"], observed=True)["time"].min()
    leaves = rows[rows["event"] == "leave"].groupby(["batch", "station"], observed=True)["time"].max()
    paths = pd.concat({"start": starts, "leave": leaves}, axis=1).reset_index().dropna(subset=["start"])
    paths["leave"] = paths["leave"].fillna(paths["start"])
    products = rows.drop_duplicates("batch").set_index("batch")["product"].astype(str)
    paths["product"] = paths["batch"].map(products)
    paths["station_index"] = paths["station"].map({s: i for i, s in enumerate(stations)}).astype(int)
    return paths.sort_values(["batch", "station_index"]).reset_index(drop=True), total


def state_names() -> tuple[str, ...]:
    """Every state, in the event log's order (legends list them so)."""
    return STATES


def units_at(
    table: pd.DataFrame, intervals: pd.DataFrame, stations: list[str], units: list[int], t: float
) -> dict[int, dict]:
    """Each unit's (``row``'s) state, when it entered it, and the batch on it (started, not yet left) at ``t``.

    A finished batch that cannot move on (blocked) is still on its unit: it leaves with its ``leave`` row.
    """
    out: dict[int, dict] = {}
    hit = intervals[(intervals["start"] <= t) & (intervals["end"] > t)]
    if hit.empty:
        hit = intervals[(intervals["start"] <= t) & (intervals["end"] >= t)]
    rows, states = intervals["row"].to_numpy(), intervals["state"].astype(str).to_numpy()
    starts, ends = intervals["start"].to_numpy(), intervals["end"].to_numpy()
    for i in hit.index.to_numpy():  # intervals are sorted by row, then start (``RunView.intervals``)
        j = i
        while j > 0 and rows[j - 1] == rows[i] and states[j - 1] == states[i] and ends[j - 1] == starts[j]:
            j -= 1  # the same state re-stated (e.g. at a shift change): the unit has been in it since earlier
        out[int(rows[i])] = {"state": str(states[i]), "since": float(starts[j]), "batch": None, "product": None}
    first = np.concatenate([[0], np.cumsum(units)[:-1]])
    on = table[(table["time"] <= t) & table["event"].isin(["start", "leave"]) & (table["batch"] >= 0)]
    last = on.drop_duplicates(["station", "unit"], keep="last")
    index = {s: i for i, s in enumerate(stations)}
    for station, unit, event, batch, product in zip(
        last["station"].astype(str), last["unit"], last["event"].astype(str), last["batch"], last["product"],
        strict=True,
    ):
        if event == "start" and station in index:
            row = int(first[index[station]] + int(unit))
            entry = out.setdefault(row, {"state": None, "since": None, "batch": None, "product": None})
            entry["batch"], entry["product"] = int(batch), (None if pd.isna(product) else str(product))
    return out
