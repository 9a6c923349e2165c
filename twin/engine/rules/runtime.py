"""The shared run-time state of a line under batch rules, for one replication.

    >>> rt = LineRuntime(env, rec, line, releaser, buffers, seed, replication, pulls)

It owns the rules' shared resources (cleaning skids, operators, the QC lab, and the arbiter that
serves them at the end of each instant; the release gate, the hold-time clocks of batches) and the
count of batches in the system (a plan that does not repeat is done when it is exhausted and the
count is back to zero).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from twin.engine.buffer import Buffer
from twin.engine.compiled import CompiledLine, CompiledStation
from twin.engine.initial import InitialState
from twin.engine.recorder import Recorder
from twin.engine.release import Releaser
from twin.engine.rules import skids
from twin.engine.rules.arbiter import Arbiter
from twin.engine.rules.holds import HoldClocks
from twin.engine.rules.operators import Operators
from twin.engine.rules.qc import QC_OWNER, QcLab
from twin.engine.rules.release_gate import ReleaseGate
from twin.eventlog import Event
from twin.random import block_draws, stream_rng, uniform

__all__ = ["QC_OWNER", "LineRuntime", "StationStreams"]


@dataclass
class StationStreams:
    changeovers: dict[tuple[int, int], Iterator[float]]
    cleaning: dict[str, Iterator[float]]
    line_clearance: Iterator[float] | None
    reject: Iterator[float]
    rate_noise: Iterator[float]


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
        self.arbiter = Arbiter(env)  # serves skids, operators and QC analysts at the end of each instant
        self.skids = skids.make(self.arbiter, self.rules)
        self.operators = Operators(self.arbiter, self.rules)
        self.arrive_kind = [rec.kind(j, -1, Event.ARRIVE) for j in range(len(line.stations))]
        self.in_system = 0
        self.holds = HoldClocks(env, rec, seed, replication, buffers)
        self._streams: dict[int, StationStreams] = {}
        releaser.on_release = self.entered
        calendar = self.rules.release_calendar
        self.gate = ReleaseGate(env, self.rules.calendars[calendar] if calendar >= 0 else None, self.rules.wip_limit)
        self.qc = QcLab(self, self.rules.qc) if self.rules.qc is not None else None
        if initial is not None:
            self._restore(initial)

    def _restore(self, initial: InitialState) -> None:
        """Count the batches of a plant state and send those in quarantine to QC."""
        self.in_system = initial.in_line() + len(initial.quarantine)
        limit = self.rules.wip_limit
        if limit is not None:
            for (station, _), start in initial.units.items():
                if station < limit[1] and start.batch >= 0:
                    self.gate.waiting.add(start.batch)
            for station, waiting in initial.buffers.items():
                if station <= limit[1]:
                    self.gate.waiting.update(waiting)
        # batches under test first, so that they keep their analysts
        for batch, phase, left in sorted(initial.quarantine, key=lambda q: q[1] != "testing"):
            self.env.process(self.qc.release_testing(batch, phase, left))

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
                reject=draws("reject", uniform),
                rate_noise=draws("rate", noise),
            )
        return self._streams[station.index]

    # -- batches in the system -----------------------------------------------------------------
    def new_batch(self, product: int, quantity: float, parents: list[int]) -> int:
        """A batch made from ``parents`` (split or merge): it inherits their earliest hold-time clocks."""
        batch = self.rec.new_batch(product, quantity)
        self.holds.inherit(batch, parents)
        return batch

    def replaced(self, parents: list[int], children: list[int]) -> None:
        """Parents consumed by a split or merge into children."""
        for parent in parents:
            self.holds.forget(parent)
        self.in_system += len(children) - len(parents)

    def entered(self, batch: int) -> None:
        self.in_system += 1
        self.gate.released(batch)

    def left_line(self, batch: int) -> None:
        """A batch is out of the system (done, rejected or scrapped)."""
        self.holds.forget(batch)
        self.gate.left(batch)
        self.in_system -= 1
        if self.in_system == 0 and self.releaser.exhausted() and not self.done.triggered:
            self.done.succeed()

    def finished_line(self, batch: int) -> None:
        """A batch left the last station: into quarantine, or out of the system."""
        if self.qc is None:
            self.left_line(batch)
        else:
            self.qc.quarantine(batch)

    def next_product(self, station: int) -> int | None:
        """The product of the batch that will come next to a station, if already known: the first waiting batch not
        already handed to another unit (a hand-over to a waiting unit completes later at the same instant)."""
        if station == 0 and self.pulls:
            return self.releaser.peek_product()
        buffer = self.buffers[station]
        claimed = len(buffer.get_queue)
        items = buffer.items
        return self.rec.batch_product[items[claimed]] if len(items) > claimed else None
