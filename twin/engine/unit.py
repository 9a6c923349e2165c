"""One equipment unit as a SimPy process: take a batch, change over, process, pass it on.

The loop is the engine's hot path, so it keeps everything in local variables, records rows with
three appends, and does not yield on a buffer request that is already granted.

Order of same-time events: SimPy processes events at equal times first in, first out; a unit
whose request is granted at once continues without yielding. Waiting units are served first come,
first served; free units of a station take waiting batches in the order the units started waiting;
the first station's units pull new batches in unit order at time 0. The recorded rows keep the
order in which things happened (a batch leaves before it arrives downstream; a unit finishes
before it starts the next batch).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

import simpy

from twin.engine.buffer import Buffer
from twin.engine.compiled import CompiledStation
from twin.engine.failures import CalendarClock, OperatingClock
from twin.engine.initial import UnitStart
from twin.engine.recorder import Recorder
from twin.engine.release import Releaser


class Unit:
    """State shared between a unit's process and the end-of-run bookkeeping."""

    def __init__(
        self,
        rec: Recorder,
        station: CompiledStation,
        index: int,
        process_draws: list[Iterator[float]],
        setup_draws: dict[tuple[int, int], Iterator[float]],
        clock: OperatingClock | CalendarClock | None,
    ):
        self.rec, self.station, self.index = rec, station, index
        self.process_draws, self.setup_draws, self.clock = process_draws, setup_draws, clock
        j, u, kind = station.index, index, rec.kind
        self.k_starved = kind(j, u, "state", "starved")
        self.k_blocked = kind(j, u, "state", "blocked")
        self.k_idle = kind(j, u, "state", "idle")
        self.k_setup = kind(j, u, "setup", "setup")
        self.k_start = kind(j, u, "start", "processing")
        self.k_finish = kind(j, u, "finish")
        self.k_leave = kind(j, u, "leave")
        self.k_resume = {s: kind(j, u, "repair", s) for s in ("processing", "setup", "starved", "blocked")}
        self.k_state = {s: kind(j, u, "state", s) for s in ("processing", "down", "setup", "cleaning")}
        self.waiting_state: str | None = None  # set while waiting, for failures found at the end of a run

    def finish_run(self, end: float) -> None:
        """Record calendar failures of a unit still waiting when the run ends."""
        if isinstance(self.clock, CalendarClock) and self.waiting_state:
            self.clock.wait_over(end, self.k_resume[self.waiting_state])


def unit_process(
    env: simpy.Environment,
    unit: Unit,
    inbound: Buffer | None,
    outbound: Buffer | None,
    releaser: Releaser | None,
    on_exit: Callable[[], None] | None,
    start: UnitStart | None = None,
) -> Generator[simpy.Event, Any, None]:
    """Run one unit forever (or until a plan runs out of batches), from ``start`` if given."""
    rec = unit.rec
    add_time, add_batch, add_kind = rec.times.append, rec.batches.append, rec.kinds.append
    batch_product = rec.batch_product
    timeout = env.timeout
    draws = [d.__next__ for d in unit.process_draws]
    single_product = len(draws) == 1
    draw0 = draws[0]
    setup_draws = {key: d.__next__ for key, d in unit.setup_draws.items()}
    clock = unit.clock
    calendar = isinstance(clock, CalendarClock)
    k_starved, k_blocked, k_setup = unit.k_starved, unit.k_blocked, unit.k_setup
    k_start, k_finish, k_leave = unit.k_start, unit.k_finish, unit.k_leave
    resume = unit.k_resume
    k_arrive_next = rec.kind(unit.station.index + 1, -1, "arrive") if outbound is not None else -1
    previous = -1
    now = env.now
    first = start if start is not None and start.batch >= 0 else None
    if start is not None and start.batch < 0 and start.delay > 0:  # busy with no batch (repair) first
        rec.row(now, -1, unit.k_state[start.delay_state])
        yield timeout(start.delay)
        now = env.now

    while True:
        if first is not None:  # a run that starts from a plant state: the unit already holds a batch
            batch = first.batch
            product = previous = 0 if single_product else batch_product[batch]
            if first.delay > 0:
                rec.row(now, batch, unit.k_state[first.delay_state])
                yield timeout(first.delay)
                now = env.now
            work, resumed_done = first.work_left, first.work_left <= 0
            if not resumed_done:
                rec.row(now, batch, unit.k_state["processing"])
            first = None
        else:
            # 1. take a batch
            if releaser is not None:
                batch = releaser.pull(now)
                if batch < 0:
                    add_time(now)
                    add_batch(-1)
                    add_kind(unit.k_idle)
                    return
            else:
                request = inbound.get()
                if request.triggered:
                    batch = request.value
                else:
                    add_time(now)
                    add_batch(-1)
                    add_kind(k_starved)
                    if calendar:
                        unit.waiting_state = "starved"
                    batch = yield request
                    now = env.now
            if calendar:
                unit.waiting_state = None
                ready = clock.wait_over(now, resume["starved"])
                if ready > now:
                    yield timeout(ready - now)
                    now = env.now

            # 2. change over
            product = 0 if single_product else batch_product[batch]
            if setup_draws and previous >= 0:
                setup = setup_draws.get((previous, product))
                if setup is not None:
                    add_time(now)
                    add_batch(batch)
                    add_kind(k_setup)
                    duration = setup()
                    if clock is not None:
                        duration = clock.setup(now, duration, batch, resume["setup"]) - now
                    yield timeout(duration)
                    now = env.now
            previous = product
            work, resumed_done = draw0() if single_product else draws[product](), False
            add_time(now)
            add_batch(batch)
            add_kind(k_start)

        # 3. process (SimPy wakes the unit at exactly now + work, so "now += work" is env.now)
        if not resumed_done:
            if clock is not None:
                work = clock.work(now, work, batch, resume["processing"]) - now
            yield timeout(work)
            now += work
            add_time(now)
            add_batch(batch)
            add_kind(k_finish)

        # 4. pass it on
        if outbound is None:
            add_time(now)
            add_batch(batch)
            add_kind(k_leave)
            if on_exit is not None:
                on_exit()
            continue
        request = outbound.put(batch)
        ready = now
        if not request.triggered:
            add_time(now)
            add_batch(batch)
            add_kind(k_blocked)
            if calendar:
                unit.waiting_state = "blocked"
            yield request
            now = env.now
            if calendar:
                unit.waiting_state = None
                ready = clock.wait_over(now, resume["blocked"])
        add_time(now)
        add_batch(batch)
        add_kind(k_leave)
        add_time(now)
        add_batch(batch)
        add_kind(k_arrive_next)
        if ready > now:  # failed while blocked and not yet repaired: down before taking the next batch
            yield timeout(ready - now)
            now = env.now
