"""Weekly shift calendars at run time: is it working time, and when does that change.

    >>> cal = WeeklyCalendar([(6.0, 22.0), (30.0, 46.0)])   # hours since Monday 00:00
    >>> cal.is_working(7.0), cal.next_change(7.0)
    (True, 22.0)

Intervals are hours of the run's week (``compile_rules`` moves the spec's shifts by the start's hour of
the week); the pattern repeats every 168 hours.
"""

from __future__ import annotations

import bisect
import math

WEEK = 168.0


class WeeklyCalendar:
    """Working intervals of one week, repeated; ``None`` intervals means always working."""

    def __init__(self, intervals: list[tuple[float, float]] | None):
        self.always = intervals is None
        merged: list[list[float]] = []
        for start, end in sorted(intervals or []):
            for s, e in ((start, end),) if end <= WEEK else ((start, WEEK), (0.0, end - WEEK)):
                merged.append([s, e])
        merged.sort()
        union: list[list[float]] = []
        for s, e in merged:
            if union and s <= union[-1][1]:
                union[-1][1] = max(union[-1][1], e)
            else:
                union.append([s, e])
        self.starts = [s for s, _ in union]
        self.ends = [e for _, e in union]
        self.edges = sorted({*self.starts, *self.ends})
        if union and union[0][0] <= 0.0 and union[-1][1] >= WEEK and len(union) == 1:
            self.always = True
        # for each place of a time among the edges (``bisect_right``): the first edge after it at which
        # working time starts or ends, as (weeks ahead, edge index); an edge that changes nothing is skipped
        self._flips: list[tuple[int, int] | None] = []
        if not self.always and self.starts:
            edges, state = self.edges, [self.is_working(e) for e in self.edges]
            n = len(edges)
            for i in range(n + 1):
                working = state[i - 1] if i > 0 else False
                k = next((k for k in range(i, i + n + 1) if state[k % n] != working), None)
                self._flips.append(divmod(k, n) if k is not None else None)

    def is_working(self, t: float) -> bool:
        if self.always:
            return True
        w = t % WEEK
        i = bisect.bisect_right(self.starts, w) - 1
        return i >= 0 and w < self.ends[i]

    def next_change(self, t: float) -> float:
        """The first time after ``t`` at which working turns to not working or back (inf if never)."""
        if self.always or not self.starts:
            return float("inf")
        week, w = divmod(t, WEEK)
        flip = self._flips[bisect.bisect_right(self.edges, w)]
        if flip is None:
            return float("inf")
        ahead, k = flip
        change = (week + ahead) * WEEK + self.edges[k] if ahead else week * WEEK + self.edges[k]
        # weeks ahead plus an edge not exact in binary can fall a hair before the edge of its week: the change
        # is then the first time after it that is on the other side (it used to loop for ever)
        working = self.is_working(t)
        while self.is_working(change) == working or change <= t:
            change = math.nextafter(change, math.inf)
        return change

    def next_start(self, t: float) -> float:
        """``t`` if working then, else the start of the next working period (inf if none)."""
        if self.is_working(t):
            return t
        if not self.starts:
            return float("inf")
        change = self.next_change(t)
        return change if self.is_working(change) else self.next_change(change)
