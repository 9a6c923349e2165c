"""QC release: a batch that leaves the last station waits in quarantine for an analyst, is tested in the
lab's working time, incubates, and is approved; out of spec, it is rejected or investigated, then approved.

    qc = compile_qc(spec)                      # CompiledQc, or None without a QC lab
    lab = QcLab(rt, qc)                        # at run start
    lab.quarantine(batch)                      # a batch left the line

Batches take analysts in quarantine order, served at the end of each instant (``twin.engine.rules.arbiter``).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from twin.engine.rules.calendar import WeeklyCalendar
from twin.engine.rules.rule import Rule
from twin.engine.rules.slots import Slots
from twin.eventlog import Event
from twin.random import block_draws, stream_rng, uniform
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec

if TYPE_CHECKING:
    from twin.engine.rules.runtime import LineRuntime

QC_OWNER = "qc"

RULE = Rule(
    "qc", "QC release", ("qc",), lambda s: s.qc is not None,
    (Event.QUARANTINE, Event.QC_START, Event.QC_END, Event.APPROVE, Event.REJECT, Event.INVESTIGATION,
     Event.INVESTIGATION_END),
)  # fmt: skip


@dataclass(frozen=True)
class CompiledQc:
    analysts: int
    calendar: int  # index into CompiledRules.calendars; -1 = always
    test_time: Sampler
    incubation: Sampler | None
    oos_probability: float
    investigate: bool
    investigation: Sampler | None


def compile_qc(spec: LineSpec) -> CompiledQc | None:
    if spec.qc is None:
        return None
    q, unit = spec.qc, spec.time_unit
    return CompiledQc(
        analysts=q.analysts,
        calendar=list(spec.calendars).index(q.calendar) if q.calendar else -1,
        test_time=q.test_time.sampler(unit),
        incubation=q.incubation.sampler(unit) if q.incubation is not None else None,
        oos_probability=q.oos_probability,
        investigate=q.oos_action == "investigate",
        investigation=q.investigation.sampler(unit) if q.investigation is not None else None,
    )


class QcLab:
    """The QC lab of one replication: analysts on their calendar, and the QC draws."""

    def __init__(self, rt: LineRuntime, qc: CompiledQc) -> None:
        env, rec, seed, replication = rt.env, rt.rec, rt.seed, rt.replication
        self.rt, self.qc, self.env, self.rec = rt, qc, env, rec
        self.lab = Slots(rt.arbiter, qc.analysts)
        self.station = len(rt.line.stations)  # QC requests come after the stations' in the serve order
        self.asked = 0  # QC requests so far: their order at equal times
        calendars = rt.rules.calendars
        self.calendar = WeeklyCalendar(calendars[qc.calendar] if qc.calendar >= 0 else None)
        draws = lambda stream, sampler: block_draws(sampler, stream_rng(seed, replication, QC_OWNER, stream))  # noqa: E731
        self.test = draws("test", qc.test_time).__next__
        self.incubation = draws("incubation", qc.incubation).__next__ if qc.incubation else None
        self.oos = draws("oos", uniform).__next__
        self.investigation = draws("investigation", qc.investigation).__next__ if qc.investigation else None
        self.k = {
            e: rec.kind(-1, -1, e)
            for e in (Event.QUARANTINE, Event.QC_START, Event.QC_END, Event.APPROVE, Event.REJECT,
                      Event.INVESTIGATION, Event.INVESTIGATION_END)
        }  # fmt: skip

    def quarantine(self, batch: int) -> None:
        """A batch left the last station: into quarantine, then through QC."""
        self.rec.row(self.env._now, batch, self.k[Event.QUARANTINE])
        self.env.process(self.release_testing(batch))

    def release_testing(
        self, batch: int, phase: str = "waiting", left: float = 0.0
    ) -> Generator[simpy.Event, Any, None]:
        """Quarantine to approval; a forecast resumes a batch in its ``phase`` with ``left`` hours of it to go."""
        qc, env, rec, k = self.qc, self.env, self.rec, self.k
        if phase in ("waiting", "testing"):
            self.asked += 1
            yield self.lab.request((env._now, self.station, self.asked))
            if phase == "waiting":
                start = self.calendar.next_start(env._now)
                if start > env._now:
                    yield env.timeout(start - env._now)
                rec.row(env._now, batch, k[Event.QC_START])
                left = self.test()
            yield env.timeout(left)
            rec.row(env._now, batch, k[Event.QC_END])
            self.lab.release()
            phase, left = "incubating", self.incubation() if self.incubation is not None else 0.0
        if phase == "incubating":
            if left > 0:
                yield env.timeout(left)
            if self.oos() < qc.oos_probability:
                if not qc.investigate:
                    rec.row_quantity(env._now, batch, k[Event.REJECT], rec.batch_quantity[batch])
                    self.rt.left_line(batch)
                    return
                rec.row(env._now, batch, k[Event.INVESTIGATION])
                phase, left = "investigating", self.investigation()
        if phase == "investigating":
            yield env.timeout(left)
            rec.row(env._now, batch, k[Event.INVESTIGATION_END])
        rec.row_quantity(env._now, batch, k[Event.APPROVE], rec.batch_quantity[batch])
        self.rt.left_line(batch)
