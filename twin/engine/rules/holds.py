"""Hold times: a batch must reach a station within a maximum time of leaving an earlier one.

    holds = compile_holds(station, spec)          # the hold-time rules that end at this station
    clocks = HoldClocks(env, rec, seed, replication, buffers)
    ok = holds_kept(unit, batch)                   # checked when the station takes the batch

A batch whose hold time ran out is scrapped (a ``reject`` of its quantity) or sent to investigation;
after the investigation it comes back to the station's buffer.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from twin.engine.rules.rule import Rule
from twin.eventlog import Event
from twin.random import block_draws, stream_rng
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec, Station

if TYPE_CHECKING:
    from twin.engine.buffer import Buffer
    from twin.engine.recorder import Recorder
    from twin.engine.rules.unit import RulesUnit

RULE = Rule(
    "hold_times", "hold times", ("hold_times",), lambda s: bool(s.hold_times),
    (Event.HOLD_VIOLATION, Event.REJECT, Event.INVESTIGATION, Event.INVESTIGATION_END),
)  # fmt: skip


@dataclass(frozen=True)
class CompiledHold:
    source: int  # station the clock starts at (when the batch leaves it)
    max_hours: float
    scrap: bool
    investigation: Sampler | None
    stream_owner: str


def compile_holds(station: Station, spec: LineSpec) -> tuple[CompiledHold, ...]:
    """The hold-time rules that end at ``station``."""
    names = [s.name for s in spec.stations]
    return tuple(
        CompiledHold(
            source=names.index(h.from_),
            max_hours=spec.hours(h.max),
            scrap=h.action == "scrap",
            investigation=h.investigation.sampler(spec.time_unit) if h.investigation is not None else None,
            stream_owner=f"hold:{h.from_}->{h.to}",
        )
        for h in spec.hold_times
        if h.to == station.name
    )


def is_source(station: Station, spec: LineSpec) -> bool:
    """Whether some hold-time clock starts when a batch leaves ``station``."""
    return any(h.from_ == station.name for h in spec.hold_times)


class HoldClocks:
    """The hold-time clocks of the batches in a replication, and their investigations."""

    def __init__(
        self, env: simpy.Environment, rec: Recorder, seed: int, replication: int, buffers: list[Buffer]
    ) -> None:
        self.env, self.rec, self.seed, self.replication, self.buffers = env, rec, seed, replication, buffers
        self._start: dict[int, dict[int, float]] = {}
        self._investigations: dict[str, Iterator[float]] = {}
        self._arrive = [rec.kind(j, -1, Event.ARRIVE) for j in range(len(buffers))]

    def start(self, batch: int, source: int) -> None:
        self._start.setdefault(batch, {})[source] = self.env._now

    def started(self, batch: int, source: int) -> float | None:
        return self._start.get(batch, {}).get(source)

    def inherit(self, child: int, parents: list[int]) -> None:
        """A batch made from ``parents`` keeps their earliest clocks."""
        clocks: dict[int, float] = {}
        for parent in parents:
            for source, started in self._start.get(parent, {}).items():
                clocks[source] = min(started, clocks.get(source, started))
        if clocks:
            self._start[child] = clocks

    def forget(self, batch: int) -> None:
        self._start.pop(batch, None)

    def investigate(self, batch: int, station: int, hold: CompiledHold) -> None:
        """Send a batch whose hold time ran out to investigation; it comes back to ``station`` after."""
        self._start.get(batch, {}).pop(hold.source, None)
        owner = hold.stream_owner
        if owner not in self._investigations:
            self._investigations[owner] = block_draws(
                hold.investigation, stream_rng(self.seed, self.replication, owner, "investigation")
            )
        delay = next(self._investigations[owner])
        self.env.process(self._investigation(batch, station, delay))

    def _investigation(self, batch: int, station: int, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        self.rec.row(self.env.now, batch, self.rec.kind(station, -1, Event.INVESTIGATION_END))
        yield self.buffers[station].put(batch)
        self.rec.row(self.env.now, batch, self._arrive[station])


def holds_kept(unit: RulesUnit, batch: int) -> bool:
    """True if the batch may go on; scrap or investigate it when one of its hold times ran out."""
    rt = unit.rt
    now = rt.env._now
    for hold in unit.rules.holds:
        started = rt.holds.started(batch, hold.source)
        if started is None or now - started <= hold.max_hours:
            continue
        unit.record("hold_violation", batch, now - started)
        if hold.scrap:
            unit.record("reject", batch, rt.rec.batch_quantity[batch])
            rt.left_line(batch)
        else:
            unit.record("investigation", batch)
            rt.holds.investigate(batch, unit.j, hold)
        return False
    return True
