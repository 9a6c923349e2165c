"""Equipment time by state, utilization and OEE per station, as ISO 22400-2 defines them.

For each station over the window, summed over its units:

- planned busy time PBT = units x window length - time in planned-down states (``idle``: no work
  planned); actual production time APT = time in ``processing``;
- availability A = APT / PBT;
- performance (effectiveness) P = (ideal processing time per batch x batches produced) / APT,
  the ideal time being the ``ideal`` column of each ``finish`` row in the window;
- quality Q = good quantity / produced quantity (quantities of ``finish`` rows less rejects);
- OEE = A x P x Q; utilization = APT / (units x window length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.eventlog import ACTIVE_STATES, PLANNED_DOWN_STATES, STATES
from twin.kpis.columns import EVENT, STATE, Columns

QUALITY_LOSS_EVENTS: tuple[str, ...] = ()  # events whose quantity counts as rejected (none in the core)


@dataclass(frozen=True)
class UnitIntervals:
    """State intervals of every unit of one replication, clipped to the window."""

    station: np.ndarray
    unit: np.ndarray
    state: np.ndarray
    start: np.ndarray
    end: np.ndarray


def unit_intervals(cols: Columns, start: float, end: float) -> UnitIntervals:
    """Intervals from each state row of a unit to its next one (or the end), clipped to the window."""
    rows = np.flatnonzero(cols.state >= 0)
    station, unit = cols.station[rows], cols.unit[rows]
    key = station * (int(unit.max()) + 2 if len(unit) else 1) + unit
    order = np.argsort(key, kind="stable")  # rows are in time order, so each unit's stay in order
    rows, key = rows[order], key[order]
    t0 = cols.time[rows]
    t1 = np.empty_like(t0)
    t1[:-1] = t0[1:]
    if len(t1):
        t1[-1] = end
        t1[:-1] = np.where(key[1:] == key[:-1], t1[:-1], end)
    return UnitIntervals(
        station=cols.station[rows],
        unit=cols.unit[rows],
        state=cols.state[rows],
        start=np.clip(t0, start, end),
        end=np.clip(t1, start, end),
    )


@dataclass(frozen=True)
class StationStates:
    hours: np.ndarray  # [station, state] hours summed over units
    fractions: np.ndarray  # hours / (units x window length)
    utilization: np.ndarray
    availability: np.ndarray
    performance: np.ndarray
    quality: np.ndarray
    oee: np.ndarray


def station_states(
    cols: Columns, intervals: UnitIntervals, units: list[int], start: float, end: float
) -> StationStates:
    """Per-station state time and OEE factors over the window."""
    n_stations, n_states = len(units), len(STATES)
    length = end - start
    hours = np.zeros((n_stations, n_states))
    valid = (intervals.station >= 0) & (intervals.state >= 0)
    np.add.at(hours, (intervals.station[valid], intervals.state[valid]), (intervals.end - intervals.start)[valid])
    capacity = np.asarray(units, dtype=float) * length
    planned_down = hours[:, [STATE[s] for s in PLANNED_DOWN_STATES]].sum(axis=1)
    planned_busy = capacity - planned_down
    production = hours[:, STATE["processing"]]

    finished = (cols.event == EVENT["finish"]) & (cols.time > start) & (cols.time <= end) & (cols.station >= 0)
    ideal = np.bincount(cols.station[finished], weights=np.nan_to_num(cols.ideal[finished]), minlength=n_stations)
    produced = np.bincount(cols.station[finished], weights=np.nan_to_num(cols.quantity[finished]), minlength=n_stations)
    rejected = np.zeros(n_stations)
    for name in QUALITY_LOSS_EVENTS:
        lost = (cols.event == EVENT[name]) & (cols.time > start) & (cols.time <= end) & (cols.station >= 0)
        rejected += np.bincount(cols.station[lost], weights=np.nan_to_num(cols.quantity[lost]), minlength=n_stations)

    with np.errstate(invalid="ignore", divide="ignore"):
        availability = production / planned_busy
        performance = ideal / production
        quality = np.where(produced > 0, (produced - rejected) / produced, np.nan)
    return StationStates(
        hours=hours,
        fractions=hours / capacity[:, None],
        utilization=production / capacity,
        availability=availability,
        performance=performance,
        quality=quality,
        oee=availability * performance * quality,
    )


ACTIVE_CODES = np.array(sorted(STATE[s] for s in ACTIVE_STATES))
