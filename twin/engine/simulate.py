"""Run replications of a line and return their event log.

    >>> log = simulate(spec, replications=5, seed=1)
    >>> log = simulate(spec, horizon=200.0, progress=lambda done: print(f"{done:.0%}"))

Replication ``r`` draws from streams keyed by (seed, r, station, stream), so results do not depend
on how many replications run, in which order, or in which process.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import pandas as pd
import simpy

from twin.engine.budget import check_budget
from twin.engine.buffer import Buffer
from twin.engine.compiled import CompiledLine, CompiledStation, compile_line
from twin.engine.environment import Environment
from twin.engine.failures import CalendarClock, OperatingClock
from twin.engine.initial import InitialState
from twin.engine.recorder import Recorder
from twin.engine.release import RELEASE_OWNER, Releaser, source
from twin.engine.rules.runtime import LineRuntime
from twin.engine.rules.unit import RulesUnit
from twin.engine.unit import Unit, unit_process
from twin.errors import InputError
from twin.eventlog import EventLog
from twin.random import block_draws, stream_rng
from twin.spec.limits import DEFAULT_MAX_EVENTS, MAX_HOURS, MAX_REPLICATIONS, MAX_SEED, MIN_HORIZON_HOURS
from twin.spec.model import LineSpec

Progress = Callable[[float], None]


def simulate(
    spec: LineSpec,
    replications: int = 1,
    seed: int = 0,
    horizon: float | None = None,
    warmup: float | None = None,
    progress: Progress | None = None,
    first_replication: int = 0,
    max_events: float | None = DEFAULT_MAX_EVENTS,
) -> EventLog:
    """Simulate ``replications`` independent runs; times are hours.

    ``horizon`` and ``warmup`` override the spec's; ``progress`` receives the fraction done.
    ``first_replication`` numbers the replications from there (to split work between processes).
    A run estimated past ``max_events`` event-log rows (None: no budget) or the free memory is refused
    before it starts (``InputError``, see ``twin.engine.budget``).
    """
    horizon = spec.horizon_hours if horizon is None else float(horizon)
    warmup = spec.warmup_hours if warmup is None else float(warmup)
    check_run_arguments(replications, seed, horizon, warmup)
    check_budget(spec, horizon, replications, max_events)
    line = compile_line(spec)
    frames = []
    for i in range(replications):
        report = None
        if progress is not None:
            report = lambda f, i=i: progress((i + f) / replications)  # noqa: E731
        frames.append(run_replication(line, seed, first_replication + i, horizon, report))
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    meta = line.log_meta(
        horizon=horizon,
        warmup=warmup,
        replications=replications,
        seed=seed,
        spec_hash=line.spec_hash,
    )
    return EventLog(table, meta)


def check_run_arguments(replications: int, seed: int, horizon: float, warmup: float) -> None:
    """Raise ``InputError`` for run settings no run can have."""
    if not isinstance(replications, int) or replications < 1:
        raise InputError(f"replications must be a whole number >= 1 (got {replications!r})")
    if replications > MAX_REPLICATIONS:
        raise InputError(f"replications must be at most {MAX_REPLICATIONS:,} (got {str(replications)[:30]})")
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a whole number >= 0 (got {seed!r})")
    if seed > MAX_SEED:
        raise InputError(f"seed must be at most 2**63-1 (got {str(seed)[:30]})")
    if not horizon > 0:
        raise InputError(f"horizon must be positive (got {horizon!r} h)")
    if not MIN_HORIZON_HOURS <= horizon <= MAX_HOURS:
        raise InputError(f"horizon must be from 1 s to {MAX_HOURS:,.0f} h (got {horizon!r} h)")
    if not 0 <= warmup < horizon:
        raise InputError(f"warmup must be >= 0 and shorter than the horizon (got {warmup!r} h, horizon {horizon!r} h)")


def run_replication(
    line: CompiledLine, seed: int, replication: int, horizon: float, progress: Progress | None = None
) -> pd.DataFrame:
    """Simulate one replication up to ``horizon`` hours and return its event table."""
    return Replication(line, seed, replication, horizon, progress).run_to_end()


class Replication:
    """One replication that runs to its end, or advances step by step for live use.

        >>> rep = Replication(compile_line(spec), seed=1, replication=0, horizon=500.0)
        >>> rep.advance(10.0); rows = rep.new_rows()     # the rows of (0, 10], in order
        >>> table = rep.run_to_end()                     # the whole event table

    ``new_rows`` gives each row once, when the clock has reached it (failures are computed ahead
    of the clock and wait until then).
    """

    def __init__(
        self,
        line: CompiledLine,
        seed: int,
        replication: int,
        horizon: float,
        progress: Progress | None = None,
        initial: InitialState | None = None,
    ):
        self.line, self.replication, self.horizon = line, replication, horizon
        self.env = env = Environment(initial_time=initial.time if initial else 0.0)
        self.rec = rec = Recorder(line)
        releaser = Releaser(line, rec, seed, replication)
        stations = line.stations
        buffers = [Buffer(env, capacity=s.buffer) for s in stations]
        if initial is not None:
            _restore(initial, rec, releaser, buffers)
        pulls = line.release.interarrival is None
        if not pulls:
            interarrival = block_draws(
                line.release.interarrival, stream_rng(seed, replication, RELEASE_OWNER, "interarrival")
            )
            env.process(source(env, releaser, interarrival, buffers[0]))

        self.done = done = env.event()
        AfterAllAt(env, horizon).callbacks.append(lambda _: done.triggered or done.succeed())
        on_exit = None
        if releaser.planned is not None and line.rules is None:
            exits = [0]
            expected = releaser.planned if initial is None else releaser.planned - initial.released + initial.in_line()

            def on_exit() -> None:
                exits[0] += 1
                if exits[0] == expected:
                    done.succeed()

        self.units: list[Unit | RulesUnit] = []
        runtime = (
            LineRuntime(env, rec, line, releaser, buffers, seed, replication, pulls, done, initial)
            if line.rules
            else None
        )
        starts = initial.units if initial is not None else {}
        for station in stations:
            last = station.index == len(stations) - 1
            draws = _station_draws(line, station, seed, replication)
            for u in range(station.units):
                clock = _clock(rec, station, u, seed, replication, env.now, horizon)
                if runtime is not None:
                    rules_unit = RulesUnit(runtime, station, u, draws[0], clock, starts.get((station.index, u)))
                    self.units.append(rules_unit)
                    env.process(rules_unit.run())
                    continue
                unit = Unit(rec, station, u, draws[0], draws[1], clock)
                self.units.append(unit)
                env.process(
                    unit_process(
                        env,
                        unit,
                        inbound=None if (pulls and station.index == 0) else buffers[station.index],
                        outbound=None if last else buffers[station.index + 1],
                        releaser=releaser if (pulls and station.index == 0) else None,
                        on_exit=on_exit if last else None,
                        start=starts.get((station.index, u)),
                    )
                )
        if progress is not None:
            env.process(_ticker(env, horizon, progress))
        # wall-clock failure clocks: when a wait ends they record the failures due during it, back in time
        self._wall_clocks = [u.clock for u in self.units if isinstance(u.clock, CalendarClock)]
        self._published = 0  # rows before this index were handed out by new_rows
        self._held: list[int] = []  # rows recorded ahead of the clock, not handed out yet
        self._finished = False
        self._clock = 0.0
        done.callbacks.append(self._finish)  # before run()'s stop callback; "processed" is not reliable

    def _finish(self, _: simpy.Event) -> None:
        self._finished = True

    @property
    def now(self) -> float:
        """Simulated time up to which everything has happened (the end, once finished)."""
        return min(self.env.now, self.horizon) if self._finished else self._clock

    @property
    def finished(self) -> bool:
        """True once the horizon is reached or a plan that does not repeat is done."""
        return self._finished

    def advance(self, until: float) -> None:
        """Simulate everything that happens before ``until`` hours (or up to the end)."""
        if until >= self.horizon:
            if not self._finished:
                self.env.run(until=self.done)
            return
        env = self.env
        while not self._finished and env.peek() < until:
            env.step()
        self._clock = max(self._clock, until)

    def settled(self) -> float:
        """Rows before this time are final: ``now``, or earlier while a unit on a wall-clock failure clock has a
        failure due in the past (it records it, and its repair, when its wait ends)."""
        return min([self.now, *(clock.next_failure for clock in self._wall_clocks)])

    def new_rows(self) -> pd.DataFrame:
        """Rows not handed out yet that lie before ``settled()`` (up to the end once finished), in time order."""
        total = len(self.rec.times)
        times = np.frombuffer(self.rec.times, dtype=np.float64)
        candidates = np.concatenate((np.asarray(self._held, dtype=np.int64), np.arange(self._published, total)))
        ready = times[candidates] <= self.now if self._finished else times[candidates] < self.settled()
        self._held = candidates[~ready].tolist()
        self._published = total
        rows = candidates[ready]
        return self.rec.decode(self.replication, rows[np.lexsort((rows, times[rows]))])

    def forget_published(self) -> int:
        """Drop the rows ``new_rows`` has handed out (``Recorder.forget``), for a live run that lasts months; how many.
        ``run_to_end`` and ``end_now`` give only the rows kept after it."""
        count = min([self._published, *self._held])
        if count > 0:
            self.rec.forget(count)
            self._published -= count
            self._held = [i - count for i in self._held]
        return count

    def run_to_end(self) -> pd.DataFrame:
        """Simulate to the end and return the whole event table."""
        if not self._finished:
            self.env.run(until=self.done)
        return self.end_now()

    def end_now(self) -> pd.DataFrame:
        """End the run at ``now`` (at its end, or where a stopped run stands): the whole event table of
        (0, now], closed by an ``end`` row. Nothing may be simulated after it."""
        end = self.now
        for unit in self.units:
            unit.finish_run(end)
        return self.rec.to_frame(self.replication, end)


def _restore(initial: InitialState, rec: Recorder, releaser: Releaser, buffers: list[Buffer]) -> None:
    """Put the live batches of a plant state in place: ids, release rows (in the past), buffers, plan."""
    for batch in range(initial.next_batch):
        product, quantity, _ = initial.batches.get(batch, (0, float("nan"), 0.0))
        rec.new_batch(product, quantity)
    for batch, (_, _, released_at) in initial.batches.items():
        if released_at is not None:  # unknown (released before the plant's data begin): no release row, as in its log
            rec.row(released_at, batch, releaser.k_release, in_order=False)
    for station, waiting in initial.buffers.items():
        buffers[station].items.extend(waiting)
    plan = releaser.plan
    releaser.position = initial.released % len(plan) if plan and releaser.repeat else initial.released


class AfterAllAt(simpy.events.Event):
    """An event at time ``at`` that comes after every ordinary event due then, however late scheduled.

    The run stops on it, so a run to the horizon includes everything that happens at the horizon.
    """

    LATE = 3  # SimPy's own priorities are URGENT = 0 and NORMAL = 1; the batch rules' serve steps are 2

    def __init__(self, env: simpy.Environment, at: float):
        super().__init__(env)
        self._ok, self._value = True, None  # triggered, as SimPy's Timeout sets itself
        env.schedule(self, self.LATE, at - env.now)


def _station_draws(
    line: CompiledLine, station: CompiledStation, seed: int, replication: int
) -> tuple[list[Iterator[float]], dict[tuple[int, int], Iterator[float]]]:
    """Processing and changeover draws of a station, shared by its units in the order they start."""
    owner = station.name
    process = [
        block_draws(sampler, stream_rng(seed, replication, owner, f"process:{line.products[p]}"))
        for p, sampler in enumerate(station.process)
    ]
    setup = {
        key: block_draws(sampler, stream_rng(seed, replication, owner, name))
        for key, (name, sampler) in station.setup.items()
    }
    return process, setup


def _clock(
    rec: Recorder,
    station: CompiledStation,
    u: int,
    seed: int,
    replication: int,
    start: float = 0.0,
    until: float = float("inf"),
) -> OperatingClock | CalendarClock | None:
    """The failure clock of a unit, or None when its station does not fail; calendar time counts from ``start``
    (a run from a plant state starts its units' clocks there, as if each had just been repaired)."""
    if station.failures is None:
        return None
    f = station.failures
    ttf = block_draws(f.time_to_failure, stream_rng(seed, replication, station.name, f"ttf:{u}"))
    ttr = block_draws(f.time_to_repair, stream_rng(seed, replication, station.name, f"ttr:{u}"))
    k_fail = rec.kind(station.index, u, "fail", "down")
    k_repair = rec.kind(station.index, u, "repair")
    if f.calendar:
        return CalendarClock(rec, ttf, ttr, k_fail, k_repair, start, until)
    return OperatingClock(rec, ttf, ttr, k_fail, k_repair, until)


def _ticker(env: simpy.Environment, horizon: float, progress: Progress) -> Generator[simpy.Event, Any, None]:
    step = horizon / 50
    while True:
        progress(min(env.now / horizon, 1.0))
        yield env.timeout(step)
