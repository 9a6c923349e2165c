"""Equipment time by state, utilization and OEE per station, as ISO 22400-2 defines them.

For each station over the window, summed over its units (a unit's time is the window, or the part
of it from the unit's first state row on, when a plant feed's first value came later):

- planned busy time PBT = units x window length - time in planned-down states (``idle``: no work
  planned); actual production time APT = time in ``processing``;
- availability A = APT / PBT;
- performance (effectiveness) P = (ideal processing time per batch x batches produced) / APT,
  the ideal time being the ``ideal`` column of each ``finish`` row, credited by the share of the
  batch's processing that lies in the window (a batch begun before the window counts only its
  part in it; one whose start the log does not hold, as when a plant feed is joined mid-batch, at
  most the processing hours the window holds), and at most 1 (a station that beat its ideal time
  in the window, e.g. with the default ideal time, the mean, over a short window, shows 100%);
- quality Q = good quantity / produced quantity (quantities of ``finish`` rows in the window less
  the units the station itself scrapped or rejected of the batches it finished; a batch rejected
  on arrival for an expired hold time is the line's loss, not the receiving station's);
- OEE = A x P x Q; utilization = APT / (units x window length).

Every factor lies in [0, 1] by construction, and the state shares of each unit sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.eventlog import ACTIVE_STATES, PLANNED_DOWN_STATES, QUALITY_LOSS_EVENTS, STATES
from twin.kpis.columns import EVENT, STATE, Columns
from twin.kpis.flow import lookup


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
    fractions: np.ndarray  # hours / (units x window length): the shares of each row sum to 1
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
    cols: Columns,
    intervals: UnitIntervals,
    units: list[int],
    start: float,
    end: float,
    credit: np.ndarray | None = None,
) -> StationStates:
    """State time and OEE factors over the window, per unit and per station (``credit``: ``credited_ideal``'s)."""
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
    credit = credited_ideal(cols, start, end) if credit is None else credit
    ideal = per_unit(credit > 0, credit)
    produced = per_unit(finished, cols.quantity)
    made_here = cols.batch * (len(units) + 1) + cols.station
    own = np.isin(made_here, made_here[finished])
    rejected = np.zeros(n_units)
    for name in QUALITY_LOSS_EVENTS:
        rejected += per_unit(in_window & own & (cols.event == EVENT[name]), cols.quantity)

    return equipment_oee(hours, ideal, produced, rejected, units, length)


def equipment_oee(
    hours: np.ndarray, ideal: np.ndarray, produced: np.ndarray, rejected: np.ndarray, units: list[int], length: float
) -> StationStates:
    """State shares and OEE factors per unit and per station from each unit's totals over a window of ``length``
    hours: ``hours`` [unit, state] in the window, the ``ideal`` hours credited, the quantity ``produced`` and the
    units ``rejected`` of it (units of all stations in order, as ``station_states`` sums them)."""
    offsets = np.concatenate(([0], np.cumsum(units)[:-1])).astype(np.int64)
    # each unit's capacity is the time the log holds its state: the window, unless a plant feed's
    # first state value of the unit came later (what came before is not known, so not counted)
    observed = np.minimum(hours.sum(axis=1), length)
    unit_totals = (hours, observed, ideal, produced, rejected)
    station_totals = tuple(np.add.reduceat(x, offsets, axis=0) for x in unit_totals)
    return StationStates(stations=_oee(*station_totals), units=_oee(*unit_totals))


def _oee(hours: np.ndarray, capacity: np.ndarray, ideal: np.ndarray, produced: np.ndarray, rejected: np.ndarray) -> Oee:
    planned_busy = capacity - hours[:, [STATE[s] for s in PLANNED_DOWN_STATES]].sum(axis=1)
    production = hours[:, STATE["processing"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        availability = production / planned_busy
        performance = np.minimum(ideal / production, 1.0)
        quality = np.where(produced > 0, np.clip((produced - rejected) / produced, 0.0, 1.0), np.nan)
        fractions = hours / capacity[:, None]
        utilization = production / capacity
    return Oee(
        hours=hours,
        fractions=fractions,
        utilization=utilization,
        availability=availability,
        performance=performance,
        quality=quality,
        oee=availability * performance * quality,
    )


def credited_ideal(cols: Columns, start: float, end: float) -> np.ndarray:
    """Per row: the ideal hours a ``finish`` row earns in the window (start, end], 0 on other rows.

    A batch's ideal time is spread over its processing on the unit, from its ``start`` row to its
    ``finish`` (down time excluded), and the window earns the share that lies in it. Without a
    ``start`` row (a plant whose unit stayed ``processing`` from one batch to the next), processing
    begins after the unit's previous ``finish``. A batch whose processing may have begun before the
    log (no earlier row to bound it, or a start at the log's first time: a plant joined mid-batch)
    earns at most the processing hours the window holds.
    """
    credit = np.zeros(len(cols.time))
    finish = np.flatnonzero((cols.event == EVENT["finish"]) & (cols.station >= 0) & (cols.unit >= 0))
    if not len(finish) or end <= start:
        return credit
    first_time = float(cols.time[0])
    intervals = unit_intervals(cols, -np.inf, max(end, float(cols.time[-1])))
    processing = intervals.state == STATE["processing"]
    starts = np.flatnonzero((cols.event == EVENT["start"]) & (cols.station >= 0))
    for station, unit in {(int(cols.station[i]), int(cols.unit[i])) for i in finish}:
        mine = processing & (intervals.station == station) & (intervals.unit == unit)
        span_start, span_end = intervals.start[mine], intervals.end[mine]
        order = np.argsort(span_start, kind="stable")
        span_start, span_end = span_start[order], span_end[order]
        done = np.concatenate(([0.0], np.cumsum(span_end - span_start)))

        def worked(
            t: np.ndarray, s0: np.ndarray = span_start, s1: np.ndarray = span_end, done: np.ndarray = done
        ) -> np.ndarray:
            """Processing hours of this unit up to each time in ``t``."""
            i = np.searchsorted(s0, t, side="right") - 1
            inside = np.clip(t - s0[np.maximum(i, 0)], 0.0, (s1 - s0)[np.maximum(i, 0)]) if len(s0) else 0.0
            return np.where(i >= 0, done[np.maximum(i, 0)] + inside, 0.0)

        rows = finish[(cols.station[finish] == station) & (cols.unit[finish] == unit)]
        started = starts[(cols.station[starts] == station) & (cols.unit[starts] == unit)]
        last_start = lookup(*_last(cols.batch[started], cols.time[started]), cols.batch[rows], np.nan)
        t_finish = cols.time[rows]  # rows in time order: each finish's predecessor is the unit's previous one
        previous = np.concatenate(([-np.inf], t_finish[:-1]))
        # the batch's processing began at its start row or, where a plant feed has none (the state stayed
        # `processing` from one batch to the next), after the unit's previous finish
        t_start = np.where(np.isnan(last_start) | (last_start > t_finish), -np.inf, last_start)
        t_start = np.maximum(t_start, previous)
        censored = t_start <= first_time
        total = worked(t_finish) - worked(t_start)
        held = worked(np.clip(t_finish, start, end)) - worked(np.clip(t_start, start, end))
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, held / total, ((t_finish > start) & (t_finish <= end)).astype(float))
        earned = np.nan_to_num(cols.ideal[rows]) * np.clip(share, 0.0, 1.0)
        credit[rows] = np.where(censored, np.minimum(earned, held), earned)
    return credit


def _last(keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys with their latest time."""
    order = np.lexsort((times, keys))
    keys, times = keys[order], times[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    return keys[last], times[last]


ACTIVE_CODES = np.array(sorted(STATE[s] for s in ACTIVE_STATES))
