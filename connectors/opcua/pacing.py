"""A replication paced to the wall clock: ``speed`` simulated seconds per second, or as fast as it goes.

    >>> run = PacedRun(compile_line(spec), seed=1, horizon=500.0, speed=60.0)   # speed=None: "max"
    >>> run.start(time.monotonic())
    >>> rows = run.step(time.monotonic())      # the event rows of the simulated time that passed
    >>> run.sim_time(time.monotonic())         # hours, continuous (for heartbeats)
    >>> run.table                              # the whole event table once finished

At ``max`` speed each step advances far enough to yield about ``chunk`` rows, so that a server can
publish between steps.
"""

from __future__ import annotations

import pandas as pd

from twin.engine.compiled import CompiledLine
from twin.engine.simulate import Replication
from twin.errors import InputError


def parse_speed(text: str) -> float | None:
    """``"60"`` -> 60.0; ``"max"`` -> None (as fast as possible)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not speed > 0:
        raise InputError(
            f"--speed {text!r}: expected a positive number (1 = real time, 60 = a minute a second) or 'max'"
        )
    return speed


class PacedRun:
    """One replication advanced by wall-clock ticks; it can be paused, started and reset."""

    def __init__(self, line: CompiledLine, seed: int, horizon: float, speed: float | None, chunk: int = 2000):
        self.line, self.seed, self.horizon, self.speed, self.chunk = line, seed, horizon, speed, chunk
        self.rep = Replication(line, seed, 0, horizon)
        self.running = False
        self.table: pd.DataFrame | None = None  # the whole event table, once finished
        self._anchor_wall = 0.0
        self._anchor_sim = 0.0
        self._step_hours = max(horizon / 2000.0, 1e-6)

    @property
    def now(self) -> float:
        """Hours simulated so far."""
        return self.rep.now

    @property
    def finished(self) -> bool:
        return self.table is not None

    def start(self, wall: float) -> None:
        if not self.running and not self.finished:
            self.running = True
            self._anchor_wall, self._anchor_sim = wall, self.rep.now

    def pause(self, wall: float) -> None:
        if self.running:
            self.running = False

    def sim_time(self, wall: float) -> float:
        """The simulated clock at ``wall`` (between steps too); it stands still while paused or finished."""
        if not self.running or self.speed is None:
            return self.rep.now
        return min(self._anchor_sim + (wall - self._anchor_wall) * self.speed / 3600.0, self.horizon)

    def skip_to(self, hours: float) -> pd.DataFrame:
        """Simulate silently up to ``hours`` (to resume a run); returns the rows before it."""
        self.rep.advance(hours)
        return self.rep.new_rows()

    def stop(self) -> None:
        """End the run where it stands (stopped before its end): ``table`` becomes the event table of (0, now]."""
        if not self.finished:
            self.table = self.rep.end_now()
            self.running = False

    def step(self, wall: float) -> pd.DataFrame:
        """Advance to where the clock says and return the new rows (none while paused)."""
        if not self.running or self.finished:
            return self.rep.new_rows().iloc[:0]
        if self.speed is None:
            before = len(self.rep.rec.times)
            self.rep.advance(self.rep.now + self._step_hours)
            made = len(self.rep.rec.times) - before
            if made < self.chunk / 2:
                self._step_hours *= 2
            elif made > self.chunk * 2:
                self._step_hours /= 2
        else:
            self.rep.advance(self.sim_time(wall))
        if self.rep.finished:
            self.table = self.rep.run_to_end()
            self.running = False
        rows = self.rep.new_rows()
        return rows[rows["event"] != "end"] if self.finished else rows
