"""Breakdowns of one unit, computed ahead so that a unit sleeps once per batch.

``OperatingClock``: time to failure runs only while the unit processes; a failure suspends the
batch, which resumes after the repair. ``CalendarClock``: time to failure runs on the wall clock,
whatever the unit does; a failure while it waits (starved or blocked) keeps it down until repaired,
and one during a changeover extends the changeover.

Both record ``fail`` rows (state ``down``) and ``repair`` rows (state: what the unit does next) at
the times they happen, which may lie ahead of or behind the simulation clock; the recorder sorts
rows by time at the end. Failures are computed up to ``until`` (the horizon) only: a batch longer than
the run does not make a clock compute the failures of all its time.
"""

from __future__ import annotations

from collections.abc import Iterator

from twin.engine.recorder import Recorder


class OperatingClock:
    """Failures counted in processing time only."""

    def __init__(
        self,
        rec: Recorder,
        ttf: Iterator[float],
        ttr: Iterator[float],
        k_fail: int,
        k_repair: int,
        until: float = float("inf"),
    ):
        self.rec, self.ttf, self.ttr, self.k_fail, self.until = rec, ttf, ttr, k_fail, until
        self.until_failure = next(ttf)

    def work(self, start: float, duration: float, batch: int, k_resume: int) -> float:
        """When processing of ``duration`` hours begun at ``start`` ends, repairs included."""
        if self.until_failure >= duration:
            self.until_failure -= duration
            return start + duration
        t, remaining, row = start, duration, self.rec.row
        while self.until_failure < remaining and t + self.until_failure <= self.until:
            t += self.until_failure
            remaining -= self.until_failure
            row(t, batch, self.k_fail, in_order=False)
            t += next(self.ttr)
            row(t, batch, k_resume, in_order=False)
            self.until_failure = next(self.ttf)
        self.until_failure -= remaining
        return t + remaining

    def setup(self, start: float, duration: float, batch: int, k_resume: int) -> float:
        """Changeovers do not count towards failure."""
        return start + duration

    def wait_over(self, now: float, k_resume: int) -> float:
        """Nothing fails while the unit waits; it can work at once."""
        return now


class CalendarClock:
    """Failures on the wall clock; the next one comes a time-to-failure after the last repair."""

    def __init__(
        self,
        rec: Recorder,
        ttf: Iterator[float],
        ttr: Iterator[float],
        k_fail: int,
        k_repair: int,
        start: float = 0.0,
        until: float = float("inf"),
    ):
        self.rec, self.ttf, self.ttr, self.k_fail, self.k_repair = rec, ttf, ttr, k_fail, k_repair
        self.until = until
        self.next_failure = start + next(ttf)

    def work(self, start: float, duration: float, batch: int, k_resume: int) -> float:
        """When work of ``duration`` hours begun at ``start`` ends, repairs during it included."""
        if self.next_failure >= start + duration:
            return start + duration
        t, remaining, row = start, duration, self.rec.row
        while self.next_failure < t + remaining and self.next_failure <= self.until:
            remaining -= self.next_failure - t
            row(self.next_failure, batch, self.k_fail, in_order=False)
            t = self.next_failure + next(self.ttr)
            row(t, batch, k_resume, in_order=False)
            self.next_failure = t + next(self.ttf)
        return t + remaining

    setup = work

    def wait_over(self, now: float, k_resume: int) -> float:
        """Record the failures of a wait that ends at ``now``; return when the unit can work.

        A repair done by ``now`` returns the unit to its waiting state (``k_resume``); one that ends
        later carries no state, since the unit's next row at that time sets it.
        """
        ready, row = now, self.rec.row
        while self.next_failure <= now:
            row(self.next_failure, -1, self.k_fail, in_order=False)
            repaired = self.next_failure + next(self.ttr)
            if repaired <= now:
                row(repaired, -1, k_resume, in_order=False)
            else:
                row(repaired, -1, self.k_repair, in_order=False)
                ready = repaired
            self.next_failure = repaired + next(self.ttf)
        return ready
