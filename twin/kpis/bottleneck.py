"""Bottlenecks by the active-period method (Roser, Nakano & Tanaka 2001; shifting: Roser 2002).

A station is *active* while all its units are in an active state (processing, setup, down, ...)
rather than waiting (starved, blocked, idle). At any moment the bottleneck is the station whose
current active period is the longest (ties: the earlier station). Where the active period of one
bottleneck overlaps that of the next, both are *shifting* bottlenecks; the rest of a bottleneck's
period it is the *sole* bottleneck. The line's bottleneck is the station with the largest share
of sole plus shifting time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.kpis.states import ACTIVE_CODES, UnitIntervals


@dataclass(frozen=True)
class Bottlenecks:
    sole: np.ndarray  # share of the window each station was the sole bottleneck
    shifting: np.ndarray  # share of the window each station was a shifting bottleneck
    main: int  # index of the station with the largest sole + shifting share (-1: none)


def active_periods(intervals: UnitIntervals, station: int, units: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end times of the periods in which all units of ``station`` are active."""
    mine = (intervals.station == station) & np.isin(intervals.state, ACTIVE_CODES)
    mine &= intervals.end > intervals.start
    starts, ends = intervals.start[mine], intervals.end[mine]
    if not len(starts):
        return np.empty(0), np.empty(0)
    times = np.concatenate((starts, ends))
    deltas = np.concatenate((np.ones(len(starts), np.int64), -np.ones(len(ends), np.int64)))
    order = np.lexsort((-deltas, times))  # at equal times units become active before others stop
    times, count = times[order], np.cumsum(deltas[order])
    full = count >= units
    begins = np.flatnonzero(full & ~np.concatenate(([False], full[:-1])))
    finishes = np.flatnonzero(~full & np.concatenate(([False], full[:-1])))
    period_start, period_end = times[begins], times[finishes]
    keep = period_end > period_start
    return period_start[keep], period_end[keep]


def bottlenecks(intervals: UnitIntervals, units: list[int], start: float, end: float) -> Bottlenecks:
    """Sole and shifting bottleneck shares of each station over the window."""
    return period_bottlenecks([active_periods(intervals, j, units[j]) for j in range(len(units))], start, end)


def period_bottlenecks(periods: list[tuple[np.ndarray, np.ndarray]], start: float, end: float) -> Bottlenecks:
    """Sole and shifting bottleneck shares from each station's active periods (``active_periods``) in the window."""
    n = len(periods)
    length = end - start
    edges = np.unique(np.concatenate([np.concatenate(p) for p in periods] + [np.array([start, end])]))
    if len(edges) < 2:
        return Bottlenecks(np.zeros(n), np.zeros(n), -1)
    mids = (edges[:-1] + edges[1:]) / 2

    # for every elementary interval: each station's covering period (index) and its length
    lengths = np.full((n, len(mids)), -1.0)
    index = np.full((n, len(mids)), -1)
    for j, (ps, pe) in enumerate(periods):
        if not len(ps):
            continue
        k = np.searchsorted(ps, mids, side="right") - 1
        k_ok = np.maximum(k, 0)
        covered = (k >= 0) & (pe[k_ok] > mids)
        lengths[j] = np.where(covered, pe[k_ok] - ps[k_ok], -1.0)
        index[j] = np.where(covered, k, -1)
    winner = np.argmax(lengths, axis=0)  # first maximum: the earlier station wins ties
    has_winner = lengths[winner, np.arange(len(mids))] > 0
    winner = np.where(has_winner, winner, -1)
    period = np.where(has_winner, index[winner, np.arange(len(mids))], -1)

    # bottleneck episodes: runs of elementary intervals with the same (station, period)
    change = np.ones(len(mids), dtype=bool)
    change[1:] = (winner[1:] != winner[:-1]) | (period[1:] != period[:-1])
    first = np.flatnonzero(change & (winner >= 0))
    offsets = np.concatenate(([0], np.cumsum([len(ps) for ps, _ in periods])[:-1])).astype(np.int64)
    episodes = offsets[winner[first]] + period[first]  # each episode's period, as an index into all periods
    all_start = np.concatenate([ps for ps, _ in periods]).astype(float)
    all_end = np.concatenate([pe for _, pe in periods]).astype(float)
    station = np.repeat(np.arange(n), [len(ps) for ps, _ in periods])

    # a station's time as bottleneck: each of its periods that wins an episode, counted once
    won = np.unique(episodes)
    held = np.minimum(all_end[won], end) - np.maximum(all_start[won], start)
    total = np.bincount(station[won], weights=held, minlength=n).astype(float)
    # shifting: where the periods of two consecutive episodes of different stations overlap, for both
    a, b = episodes[:-1], episodes[1:]
    other = station[a] != station[b]
    a, b = a[other], b[other]
    overlap = np.minimum(np.minimum(all_end[a], all_end[b]), end) - np.maximum(
        np.maximum(all_start[a], all_start[b]), start
    )
    overlap = np.where(overlap > 0, overlap, 0.0)
    shifting = np.bincount(station[a], weights=overlap, minlength=n)
    shifting += np.bincount(station[b], weights=overlap, minlength=n)
    shifting = np.minimum(shifting, total)
    share = total / length
    main = int(np.argmax(share)) if share.max() > 0 else -1
    return Bottlenecks(sole=(total - shifting) / length, shifting=shifting / length, main=main)
