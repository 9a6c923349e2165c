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

from twin.eventlog import ACTIVE_STATES, PLANNED_DOWN_STATES, QUALITY_LOSS_EVENTS, STATES
from twin.kpis.columns import EVENT, STATE, Columns


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
class Oee:
    """State shares and OEE factors of a set of equipment (stations, or single units), one row each."""

    hours: np.ndarray  # [equipment, state]
    fractions: np.ndarray  # hours / (units x window length)
    utilization: np.ndarray
    availability: np.ndarray
    performance: np.ndarray
    quality: np.ndarray
    oee: np.ndarray


@dataclass(frozen=True)
class StationStates:
    stations: Oee  # one row per station, its units summed
    units: Oee  # one row per unit, stations in order, then units in order


def station_states(
    cols: Columns, intervals: UnitIntervals, units: list[int], start: float, end: float
) -> StationStates:
    """State time and OEE factors over the window, per unit and per station."""
    length = end - start
    offsets = np.concatenate(([0], np.cumsum(units)[:-1])).astype(np.int64)
    n_units = int(sum(units))

    hours = np.zeros((n_units, len(STATES)))
    valid = (intervals.station >= 0) & (intervals.state >= 0) & (intervals.unit >= 0)
    unit_index = offsets[intervals.station[valid]] + intervals.unit[valid]
    np.add.at(hours, (unit_index, intervals.state[valid]), (intervals.end - intervals.start)[valid])

    in_window = (cols.time > start) & (cols.time <= end) & (cols.station >= 0) & (cols.unit >= 0)

    def per_unit(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        index = offsets[cols.station[rows]] + cols.unit[rows]
        return np.bincount(index, weights=np.nan_to_num(values[rows]), minlength=n_units)

    finished = in_window & (cols.event == EVENT["finish"])
    ideal, produced = per_unit(finished, cols.ideal), per_unit(finished, cols.quantity)
    rejected = np.zeros(n_units)
    for name in QUALITY_LOSS_EVENTS:
        rejected += per_unit(in_window & (cols.event == EVENT[name]), cols.quantity)

    unit_totals = (hours, np.full(n_units, length), ideal, produced, rejected)
    station_totals = tuple(np.add.reduceat(x, offsets, axis=0) for x in unit_totals)
    return StationStates(stations=_oee(*station_totals), units=_oee(*unit_totals))


def _oee(hours: np.ndarray, capacity: np.ndarray, ideal: np.ndarray, produced: np.ndarray, rejected: np.ndarray) -> Oee:
    planned_busy = capacity - hours[:, [STATE[s] for s in PLANNED_DOWN_STATES]].sum(axis=1)
    production = hours[:, STATE["processing"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        availability = production / planned_busy
        performance = ideal / production
        quality = np.where(produced > 0, (produced - rejected) / produced, np.nan)
    return Oee(
        hours=hours,
        fractions=hours / capacity[:, None],
        utilization=production / capacity,
        availability=availability,
        performance=performance,
        quality=quality,
        oee=availability * performance * quality,
    )


ACTIVE_CODES = np.array(sorted(STATE[s] for s in ACTIVE_STATES))
