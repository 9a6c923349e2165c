"""One equipment unit under the GMP batch rules, as a SimPy process.

Each batch goes through these phases (each one only where the spec asks for it):

1. take: the next batch from the buffer (``merge``: the next k); a batch whose hold time has
   run out since it left the rule's first station is scrapped or sent to investigation;
2. before: a clean again if the equipment stood clean longer than its clean-hold time, a major
   clean if it stood dirty longer than its dirty-hold time, then the changeover: a major clean if
   the change needs one (and none was done since the last batch), the changeover time, a line
   clearance;
3. process: operators, the processing time (or the batch's units over the rate), failures;
4. quality: units lost to the yield (``scrap``), the whole batch rejected (``reject``);
5. pass on: one batch, or its k lots (``split``), blocking after service; after the last station
   into quarantine when there is a QC lab;
6. after: the clean after every batch: major when due (batches, hours, kg since the last major
   clean) or when the next batch is already waiting and changes product with a major clean,
   minor otherwise. The equipment is dirty from the end of processing until a clean starts; a
   clean that starts later than the dirty-hold time is a major one.

A clean waits for its skid first (``waiting_cleaning``), then for operators; every phase that needs
operators waits for them (``waiting_operator``, or ``off_shift`` when none of its pools is on
shift) and for gowning when it enters a grade A/B room.

This module is the loop; each rule's behaviour is in its own module (``cleaning``, ``changeovers``,
``holds``, ``quality``, ``splits``, ``rate``, ``skids``, ``operators``, ``qc``, ``release_gate``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from twin.engine.failures import CalendarClock, OperatingClock
from twin.engine.initial import UnitStart
from twin.engine.rules import changeovers, cleaning, quality, rate, splits
from twin.engine.rules.cleaning import Hygiene
from twin.engine.rules.compiled import StationRules
from twin.engine.rules.holds import holds_kept

if TYPE_CHECKING:
    from twin.engine.compiled import CompiledStation
    from twin.engine.rules.runtime import LineRuntime

Steps = Generator[simpy.Event, Any, Any]


class RulesUnit:
    """A unit's process and the state its rules keep between batches."""

    def __init__(
        self,
        rt: LineRuntime,
        station: CompiledStation,
        index: int,
        process_draws: list[Any],
        clock: OperatingClock | CalendarClock | None,
        start: UnitStart | None = None,
    ):
        self.rt, self.station, self.u = rt, station, index
        self.start = start
        self.rules: StationRules = rt.rules.stations[station.index]
        self.process_draws = [d.__next__ for d in process_draws]
        self.clock = clock
        j, kind = station.index, rt.rec.kind
        self.j = j
        self.k = {
            name: kind(j, index, event, state)
            for name, event, state in (
                ("starved", "state", "starved"), ("blocked", "state", "blocked"), ("idle", "state", "idle"),
                ("waiting_cleaning", "state", "waiting_cleaning"), ("waiting_operator", "state", "waiting_operator"),
                ("off_shift", "state", "off_shift"), ("gowning", "gowning", "waiting_operator"),
                ("setup", "setup", "setup"), ("line_clearance", "line_clearance", "setup"),
                ("minor", "clean", "cleaning"), ("major", "major_clean", "cleaning"),
                ("start", "start", "processing"), ("finish", "finish", None), ("leave", "leave", None),
                ("scrap", "scrap", None), ("reject", "reject", None), ("hold_violation", "hold_violation", None),
                ("processing_state", "state", "processing"), ("down_state", "state", "down"),
                ("setup_state", "state", "setup"), ("cleaning_state", "state", "cleaning"),
                ("investigation", "investigation", None), ("split", "split", None), ("merge", "merge", None),
            )
        }  # fmt: skip
        self.k_resume = {
            s: kind(j, index, "repair", s) for s in ("processing", "setup", "cleaning", "starved", "blocked")
        }
        self.waiting_state: str | None = None
        self.previous = -1
        self.hygiene = Hygiene()
        draws = rt.station_streams(station)
        self.changeover_draws = {key: d.__next__ for key, d in draws.changeovers.items()}
        self.clean_draw = {kind: d.__next__ for kind, d in draws.cleaning.items()}
        self.line_clearance_draw = draws.line_clearance.__next__ if draws.line_clearance else None
        self.reject_draw = draws.reject.__next__
        self.rate_noise = draws.rate_noise.__next__
        # the steps this station's rules use (the others are skipped, not called)
        rules = self.rules
        phases = rules.operator_phases if rules.operators else ()
        self.ops = {p: p in phases for p in ("setup", "processing", "cleaning")}
        self.has_before = rules.cleaning is not None or bool(rules.changeovers)
        self.calendar_clock = isinstance(clock, CalendarClock)
        self._row = rt.rec.row
        self._env = rt.env

    # -- recording -------------------------------------------------------------------------------
    def record(self, name: str, batch: int = -1, quantity: float | None = None) -> None:
        if quantity is None:
            self._row(self._env.now, batch, self.k[name])
        else:
            self.rt.rec.row_quantity(self._env.now, batch, self.k[name], quantity)

    def record_state(self, time: float, state: str) -> None:
        self.rt.rec.row(time, -1, self.k[state])

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> Steps:
        rt = self.rt
        while True:
            if self.start is not None:  # a run from a plant state: the unit may hold a batch or be busy
                batch, product, kept = yield from self._resume(self.start)
                self.start = None
                if batch < 0:
                    continue
            else:
                batches = yield from self._take()
                if batches is None:
                    self.record("idle")
                    return
                batch = splits.merge(self, batches) if len(batches) > 1 else batches[0]
                product = rt.rec.batch_product[batch]
                if self.has_before:
                    yield from cleaning.before(self)
                    yield from changeovers.change(self, batch, product)
                else:
                    self.previous = product
                kept = yield from self._process(batch, product)
            outputs = splits.split(self, kept) if kept >= 0 else []
            if outputs:
                yield from self._pass_on(outputs)
            if self.rules.cleaning is not None:
                yield from cleaning.after(self, product)

    def _take(self) -> Steps:
        """The next batch (or the next k to merge), or None when a plan has no more."""
        rt, collected = self.rt, []
        while len(collected) < self.rules.merge:
            if self.j == 0 and rt.pulls:
                if rt.gate.active:
                    gate = rt.gate.wait()
                    try:  # record "starved" only if the gate makes the unit wait
                        first = next(gate)
                        self.record("starved")
                        yield first
                        yield from gate
                    except StopIteration:
                        pass
                batch = rt.releaser.pull(rt.env.now)
                if batch < 0:
                    return None
            else:
                request = rt.buffers[self.j].get()
                if not request.triggered:
                    self.record("starved")
                    self.waiting_state = "starved"
                    batch = yield request
                else:
                    batch = request.value
                self.waiting_state = None
                if self.calendar_clock:
                    yield from self._ready("starved")
            if not self.rules.holds or holds_kept(self, batch):
                collected.append(batch)
        return collected

    def _ready(self, waiting: str) -> Steps:
        """After a wait: calendar failures during it, and down time that outlasts it."""
        if isinstance(self.clock, CalendarClock):
            now = self.rt.env.now
            ready = self.clock.wait_over(now, self.k_resume[waiting])
            if ready > now:
                yield self.rt.env.timeout(ready - now)

    def _resume(self, start: UnitStart) -> Steps:
        """Finish what a plant state left on the unit; returns (batch, product, batch or -1 if rejected)."""
        if start.batch < 0:  # busy with no batch (a clean or repair under way), then free
            if start.delay > 0:
                self.record(f"{start.delay_state}_state")
                yield self.rt.env.timeout(start.delay)
                if start.delay_state == "cleaning":
                    self.hygiene.cleaned(self.rt.env.now, major=False)
            return -1, -1, -1
        batch = start.batch
        product = self.previous = self.rt.rec.batch_product[batch]
        if start.delay > 0:
            self.record(f"{start.delay_state}_state", batch)
            yield self.rt.env.timeout(start.delay)
        if start.work_left <= 0:
            return batch, product, batch
        kept = yield from self._process(batch, product, work=start.work_left)
        return batch, product, kept

    def _process(self, batch: int, product: int, work: float | None = None) -> Steps:
        """Process the batch (``work``: hours left of a batch begun before the run); return it, or -1 if rejected."""
        rt = self.rt
        resumed = work is not None
        crew = (yield from self.crew("processing")) if self.ops["processing"] and not resumed else []
        quantity = rt.rec.batch_quantity[batch]
        if resumed:
            self.record("processing_state", batch)
        elif self.rules.rate is not None:
            work = rate.hours(self, quantity)
        else:
            work = self.process_draws[product]()
        if not resumed:
            self.record("start", batch)
            rt.gate.started(batch, self.j)
        now = rt.env.now
        if self.clock is not None:
            work = self.clock.work(now, work, batch, self.k_resume["processing"]) - now
        yield rt.env.timeout(work)
        self.record("finish", batch, quantity)
        self.release_crew(crew)
        self.hygiene.processed(rt.env.now, rt.rules.masses[product] * quantity / rt.line.batch_sizes[product])
        return quality.after_processing(self, batch, quantity)

    def _pass_on(self, batches: list[int]) -> Steps:
        rt = self.rt
        for batch in batches:
            outbound = rt.buffers[self.j + 1] if self.j + 1 < len(rt.buffers) else None
            ready = rt.env.now
            if outbound is not None:
                request = outbound.put(batch)
                if not request.triggered:
                    self.record("blocked", batch)
                    self.waiting_state = "blocked"
                    yield request
                    self.waiting_state = None
                    if isinstance(self.clock, CalendarClock):
                        ready = self.clock.wait_over(rt.env.now, self.k_resume["blocked"])
            self.record("leave", batch, rt.rec.batch_quantity[batch])
            if self.rules.hold_source:
                rt.holds.start(batch, self.j)
            if outbound is not None:
                rt.rec.row(rt.env.now, batch, rt.arrive_kind[self.j + 1])
            else:
                rt.finished_line(batch)
            if ready > rt.env.now:
                yield rt.env.timeout(ready - rt.env.now)

    def crew(self, phase: str) -> Steps:
        """The crew for a phase (empty when the phase needs none)."""
        if not self.rules.operators or phase not in self.rules.operator_phases:
            return []
        rt = self.rt
        granted = rt.operators.request(self, rt.env.now)
        crew, gowning = granted if type(granted) is tuple else (yield granted)
        if gowning > 0:
            self.record("gowning")
            yield rt.env.timeout(gowning)
        return crew

    def release_crew(self, crew: list[Any]) -> None:
        if crew:
            self.rt.operators.release(crew, self.rules.room)

    def work(self, duration: float, state: str, batch: int = -1) -> Steps:
        """A changeover or clean of ``duration`` hours; calendar failures during it extend it."""
        now = self.rt.env.now
        if self.clock is not None:
            duration = self.clock.setup(now, duration, batch, self.k_resume[state]) - now
        yield self.rt.env.timeout(duration)

    def finish_run(self, end: float) -> None:
        """Record calendar failures of a unit still waiting when the run ends."""
        if isinstance(self.clock, CalendarClock) and self.waiting_state:
            self.clock.wait_over(end, self.k_resume[self.waiting_state])
