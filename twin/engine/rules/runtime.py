"""The shared run-time state of a line under batch rules, for one replication.

    >>> rt = LineRuntime(env, rec, line, releaser, buffers, seed, replication, pulls)

It owns the cleaning skids, the operators, the QC lab, the hold-time clocks of batches, and the
count of batches in the system (a plan that does not repeat is done when it is exhausted and the
count is back to zero).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from twin.engine.buffer import Buffer
from twin.engine.compiled import CompiledLine, CompiledStation
from twin.engine.initial import InitialState
from twin.engine.recorder import Recorder
from twin.engine.release import Releaser
from twin.engine.rules.calendar import WeeklyCalendar
from twin.engine.rules.compiled import CompiledHold
from twin.engine.rules.operators import Operators
from twin.random import block_draws, stream_rng

if TYPE_CHECKING:
    from twin.engine.rules.unit import RulesUnit

QC_OWNER = "qc"


@dataclass
class StationStreams:
    changeovers: dict[tuple[int, int], Iterator[float]]
    cleaning: dict[str, Iterator[float]]
    line_clearance: Iterator[float] | None
    reject: Iterator[float]
    rate_noise: Iterator[float]


def _uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n)


class LineRuntime:
    """Resources and bookkeeping shared by a line's units under the batch rules."""

    def __init__(
        self,
        env: simpy.Environment,
        rec: Recorder,
        line: CompiledLine,
        releaser: Releaser,
        buffers: list[Buffer],
        seed: int,
        replication: int,
        pulls: bool,
        done: simpy.Event,
        initial: InitialState | None = None,
    ):
        assert line.rules is not None
        self.env, self.rec, self.line, self.rules = env, rec, line, line.rules
        self.releaser, self.buffers, self.pulls, self.done = releaser, buffers, pulls, done
        self.seed, self.replication = seed, replication
        self.skids = [simpy.Resource(env, capacity) for _, capacity in self.rules.skids]
        self.operators = Operators(env, self.rules)
        self.arrive_kind = [rec.kind(j, -1, "arrive") for j in range(len(line.stations))]
        self.in_system = 0
        self._hold_start: dict[int, dict[int, float]] = {}
        self._streams: dict[int, StationStreams] = {}
        self._investigations: dict[str, Iterator[float]] = {}
        releaser.on_release = self.entered
        calendar = self.rules.release_calendar
        self.release_calendar = WeeklyCalendar(self.rules.calendars[calendar] if calendar >= 0 else None)
        self.release_rules = calendar >= 0 or self.rules.wip_limit is not None
        self.released_waiting: set[int] = set()  # released batches not yet started at the WIP limit's station
        self._wip_freed = env.event()
        if initial is not None:
            self._restore(initial)
        qc = self.rules.qc
        if qc is not None:
            self.lab = simpy.Resource(env, qc.analysts)
            self.lab_calendar = WeeklyCalendar(self.rules.calendars[qc.calendar] if qc.calendar >= 0 else None)
            draws = lambda stream, sampler: block_draws(sampler, stream_rng(seed, replication, QC_OWNER, stream))  # noqa: E731
            self.qc_test = draws("test", qc.test_time).__next__
            self.qc_incubation = draws("incubation", qc.incubation).__next__ if qc.incubation else None
            self.qc_oos = draws("oos", _uniform).__next__
            self.qc_investigation = draws("investigation", qc.investigation).__next__ if qc.investigation else None
            self.k_qc = {e: rec.kind(-1, -1, e) for e in ("quarantine", "qc_start", "qc_end", "approve", "reject",
                                                          "investigation", "investigation_end")}  # fmt: skip

    def _restore(self, initial: InitialState) -> None:
        """Count the batches of a plant state and send those in quarantine to QC."""
        self.in_system = initial.in_line() + len(initial.quarantine)
        limit = self.rules.wip_limit
        if limit is not None:
            for (station, _), start in initial.units.items():
                if station < limit[1] and start.batch >= 0:
                    self.released_waiting.add(start.batch)
            for station, waiting in initial.buffers.items():
                if station <= limit[1]:
                    self.released_waiting.update(waiting)
        # batches under test first, so that they keep their analysts
        for batch, phase, left in sorted(initial.quarantine, key=lambda q: q[1] != "testing"):
            self.env.process(self._release_testing(batch, phase, left))

    # -- streams -------------------------------------------------------------------------------
    def station_streams(self, station: CompiledStation) -> StationStreams:
        """The rule streams of a station, shared by its units."""
        if station.index not in self._streams:
            rules, owner = self.rules.stations[station.index], station.name

            def draws(stream: str, sampler: Any) -> Iterator[float]:
                return block_draws(sampler, stream_rng(self.seed, self.replication, owner, stream))

            cleaning = {}
            if rules.cleaning is not None:
                for kind in ("minor", "major"):
                    sampler = getattr(rules.cleaning, kind)
                    if sampler is not None:
                        cleaning[kind] = draws(f"clean:{kind}", sampler)
            cv = rules.rate[3] if rules.rate else 0.0
            noise = (lambda rng, n: rng.gamma(1 / cv**2, cv**2, n)) if cv > 0 else (lambda rng, n: np.ones(n))
            self._streams[station.index] = StationStreams(
                changeovers={k: draws(c.stream, c.time) for k, c in rules.changeovers.items() if c.time is not None},
                cleaning=cleaning,
                line_clearance=draws("line_clearance", rules.cleaning.line_clearance)
                if rules.cleaning is not None and rules.cleaning.line_clearance is not None
                else None,
                reject=draws("reject", _uniform),
                rate_noise=draws("rate", noise),
            )
        return self._streams[station.index]

    # -- batches in the system -----------------------------------------------------------------
    def new_batch(self, product: int, quantity: float, parents: list[int]) -> int:
        """A batch made from ``parents`` (split or merge): it inherits their earliest hold-time clocks."""
        batch = self.rec.new_batch(product, quantity)
        clocks: dict[int, float] = {}
        for parent in parents:
            for source, started in self._hold_start.get(parent, {}).items():
                clocks[source] = min(started, clocks.get(source, started))
        if clocks:
            self._hold_start[batch] = clocks
        return batch

    def replaced(self, parents: list[int], children: list[int]) -> None:
        """Parents consumed by a split or merge into children."""
        for parent in parents:
            self._hold_start.pop(parent, None)
        self.in_system += len(children) - len(parents)

    def entered(self, batch: int) -> None:
        self.in_system += 1
        if self.rules.wip_limit is not None:
            self.released_waiting.add(batch)

    def release_gate(self) -> Generator[simpy.Event, Any, bool]:
        """Wait until the release calendar and the WIP limit allow the next release; True if it waited."""
        waited = False
        limit = self.rules.wip_limit
        while True:
            now = self.env.now
            start = self.release_calendar.next_start(now)
            if start > now:
                waited = True
                yield self.env.timeout(start - now)
            elif limit is not None and len(self.released_waiting) >= limit[0]:
                waited = True
                yield self._wip_freed
            else:
                return waited

    def started(self, batch: int, station: int) -> None:
        """A batch starts at ``station``: it no longer counts towards the WIP limit there."""
        limit = self.rules.wip_limit
        if limit is not None and station == limit[1]:
            self._free_wip(batch)

    def _free_wip(self, batch: int) -> None:
        if batch in self.released_waiting:
            self.released_waiting.discard(batch)
            freed, self._wip_freed = self._wip_freed, self.env.event()
            freed.succeed()

    def left_line(self, batch: int) -> None:
        """A batch is out of the system (done, rejected or scrapped)."""
        self._hold_start.pop(batch, None)
        self._free_wip(batch)
        self.in_system -= 1
        if self.in_system == 0 and self.releaser.exhausted() and not self.done.triggered:
            self.done.succeed()

    def finished_line(self, batch: int) -> None:
        """A batch left the last station: into quarantine, or out of the system."""
        if self.rules.qc is None:
            self.left_line(batch)
        else:
            self.rec.row(self.env.now, batch, self.k_qc["quarantine"])
            self.env.process(self._release_testing(batch))

    def next_product(self, station: int) -> int | None:
        """The product of the batch that will come next to a station, if already known."""
        if station == 0 and self.pulls:
            return self.releaser.peek_product()
        items = self.buffers[station].items
        return self.rec.batch_product[items[0]] if items else None

    # -- hold times ----------------------------------------------------------------------------
    def start_hold(self, batch: int, source: int) -> None:
        self._hold_start.setdefault(batch, {})[source] = self.env.now

    def hold_started(self, batch: int, source: int) -> float | None:
        return self._hold_start.get(batch, {}).get(source)

    def investigate(self, batch: int, unit: RulesUnit, hold: CompiledHold) -> None:
        """Send a batch whose hold time ran out to investigation; it comes back to the station after."""
        self._hold_start.get(batch, {}).pop(hold.source, None)
        owner = hold.stream_owner
        if owner not in self._investigations:
            self._investigations[owner] = block_draws(
                hold.investigation, stream_rng(self.seed, self.replication, owner, "investigation")
            )
        delay = next(self._investigations[owner])
        self.env.process(self._investigation(batch, unit.j, delay))

    def _investigation(self, batch: int, station: int, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        self.rec.row(self.env.now, batch, self.rec.kind(station, -1, "investigation_end"))
        yield self.buffers[station].put(batch)
        self.rec.row(self.env.now, batch, self.arrive_kind[station])

    # -- quarantine and QC release ---------------------------------------------------------------
    def _release_testing(
        self, batch: int, phase: str = "waiting", left: float = 0.0
    ) -> Generator[simpy.Event, Any, None]:
        """Quarantine to approval; a forecast resumes a batch in its ``phase`` with ``left`` hours of it to go."""
        qc, env, rec, k = self.rules.qc, self.env, self.rec, self.k_qc
        assert qc is not None
        if phase in ("waiting", "testing"):
            with self.lab.request() as analyst:
                yield analyst
                if phase == "waiting":
                    start = self.lab_calendar.next_start(env.now)
                    if start > env.now:
                        yield env.timeout(start - env.now)
                    rec.row(env.now, batch, k["qc_start"])
                    left = self.qc_test()
                yield env.timeout(left)
                rec.row(env.now, batch, k["qc_end"])
            phase, left = "incubating", self.qc_incubation() if self.qc_incubation is not None else 0.0
        if phase == "incubating":
            if left > 0:
                yield env.timeout(left)
            if self.qc_oos() < qc.oos_probability:
                if not qc.investigate:
                    rec.row_quantity(env.now, batch, k["reject"], rec.batch_quantity[batch])
                    self.left_line(batch)
                    return
                rec.row(env.now, batch, k["investigation"])
                phase, left = "investigating", self.qc_investigation()
        if phase == "investigating":
            yield env.timeout(left)
            rec.row(env.now, batch, k["investigation_end"])
        rec.row_quantity(env.now, batch, k["approve"], rec.batch_quantity[batch])
        self.left_line(batch)
