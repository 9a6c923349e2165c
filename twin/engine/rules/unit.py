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
from simpy.events import PENDING

from twin.engine.failures import CalendarClock, OperatingClock
from twin.engine.initial import UnitStart
from twin.engine.rules import splits
from twin.engine.rules.arbiter import Wake
from twin.engine.rules.changeovers import change
from twin.engine.rules.cleaning import Hygiene, clean, clean_after, clean_before
from twin.engine.rules.compiled import StationRules
from twin.engine.rules.holds import holds_kept
from twin.engine.rules.operators import Request
from twin.engine.rules.quality import after_processing
from twin.engine.rules.rate import hours as rate_hours

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
        self.calendar_clock = isinstance(clock, CalendarClock)
        self.row = rt.rec.row  # rec.row, bound: (time, batch, kind)
        self._env = rt.env
        self.crew_request = Request(self)

    # -- recording -------------------------------------------------------------------------------
    def record(self, name: str, batch: int = -1, quantity: float | None = None) -> None:
        if quantity is None:
            self.row(self._env._now, batch, self.k[name])
        else:
            self.rt.rec.row_quantity(self._env._now, batch, self.k[name], quantity)


    def record_state(self, time: float, state: str) -> None:
        self.rt.rec.row(time, -1, self.k[state])

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> Steps:
        """The unit's process: one flat loop, the common steps inline, rare ones in helpers.

        It makes and yields exactly the SimPy events the phases above need, in that order; a buffer
        get or put granted at once does not yield (the crew and a skid are granted by the serve step
        at the end of the instant, ``twin.engine.rules.arbiter``)."""
        rt, env, rec, rules, j = self.rt, self._env, self.rt.rec, self.rules, self.j
        add_t, add_b, add_k = rec.times.append, rec.batches.append, rec.kinds.append
        times, quantity_row, quantity_value = rec.times, rec._quantity_rows.append, rec._quantities.append
        batch_product, batch_quantity = rec.batch_product, rec.batch_quantity
        k = self.k
        k_starved, k_blocked, k_start, k_finish, k_leave = (
            k["starved"], k["blocked"], k["start"], k["finish"], k["leave"]
        )  # fmt: skip
        k_resume_processing, k_resume_blocked = self.k_resume["processing"], self.k_resume["blocked"]
        timeout, clock, calendar_clock = env.timeout, self.clock, self.calendar_clock
        pulls = j == 0 and rt.pulls
        gate, pull = rt.gate, rt.releaser.pull
        get = None if pulls else rt.buffers[j].get
        outbound = rt.buffers[j + 1] if j + 1 < len(rt.buffers) else None
        put = outbound.put if outbound is not None else None
        k_arrive = rt.arrive_kind[j + 1] if outbound is not None else -1
        merge, split, holds, hold_source = rules.merge, rules.split, rules.holds, rules.hold_source
        cleaning, changeovers = rules.cleaning, rules.changeovers
        hold_cleans = cleaning is not None and (cleaning.clean_hold is not None or cleaning.dirty_hold is not None)
        wip_station = gate.wip_limit is not None and gate.wip_limit[1] == j
        quality_on = rules.yield_ < 1 or rules.reject_probability > 0
        crew_processing, request_crew, release_crew = self.ops["processing"], rt.operators.request, rt.operators.release
        crew_request = self.crew_request
        room, rate, draws = rules.room, rules.rate, self.process_draws
        masses, sizes, hygiene = rt.rules.masses, rt.line.batch_sizes, self.hygiene
        while True:
            work = None
            if self.start is not None:  # a run from a plant state: the unit may hold a batch or be busy
                batch, product, work = yield from self._resume(self.start)
                self.start = None
                if batch < 0:
                    continue
            else:
                # 1. take the next batch (or the next k to merge)
                collected: list[int] = []
                while True:
                    if pulls:
                        if gate.active:
                            yield from self._gate_wait()
                        batch = pull(env._now)
                        if batch < 0:
                            break
                    else:
                        request = get()
                        if request._value is PENDING:
                            add_t(env._now)
                            add_b(-1)
                            add_k(k_starved)
                            self.waiting_state = "starved"
                            batch = yield request
                            self.waiting_state = None
                        else:
                            batch = request._value
                        if calendar_clock:
                            yield from self._ready("starved")
                    if holds and not holds_kept(self, batch):
                        continue
                    if merge == 1:
                        break
                    collected.append(batch)
                    if len(collected) == merge:
                        batch = splits.merge(self, collected)
                        break
                if batch < 0:
                    self.record("idle")
                    return
                product = batch_product[batch]
                # 2. before: hold-time cleans, the changeover
                if hold_cleans:
                    kind = clean_before(self, env._now)
                    if kind is not None:
                        yield from clean(self, kind)
                if changeovers:
                    previous, self.previous = self.previous, product
                    step = changeovers.get((previous, product)) if previous >= 0 else None
                    if step is not None:
                        yield from change(self, batch, previous, step)
                else:
                    self.previous = product
            # 3. process (``work``: hours left of a batch begun before the run; -1: processed already)
            if work is None or work > 0:
                crew = None
                quantity = batch_quantity[batch]
                if work is None:
                    if crew_processing:
                        crew, gowning = yield request_crew(crew_request, env._now)
                        if gowning > 0:
                            yield from self.gown(gowning)
                    work = rate_hours(self, quantity) if rate is not None else draws[product]()
                    add_t(env._now)
                    add_b(batch)
                    add_k(k_start)
                    if wip_station:
                        gate.started(batch, j)
                else:
                    self.record("processing_state", batch)
                if clock is not None:
                    now = env._now
                    work = clock.work(now, work, batch, k_resume_processing) - now
                yield timeout(work)
                now = env._now
                quantity_row(len(times))
                quantity_value(quantity)
                add_t(now)
                add_b(batch)
                add_k(k_finish)
                if crew:
                    release_crew(crew, room)
                hygiene.processed(now, masses[product] * quantity / sizes[product])
                kept = after_processing(self, batch, quantity) if quality_on else batch
            else:
                kept = batch
            # 4. pass on (blocking after service; after the last station, into quarantine or out)
            if kept >= 0:
                for batch in (kept,) if split == 1 else splits.split(self, kept):
                    ready = env._now
                    if put is not None:
                        request = put(batch)
                        if request._value is PENDING:
                            add_t(ready)
                            add_b(batch)
                            add_k(k_blocked)
                            self.waiting_state = "blocked"
                            yield request
                            self.waiting_state = None
                            ready = env._now
                            if calendar_clock:
                                ready = clock.wait_over(ready, k_resume_blocked)
                    now = env._now
                    quantity_row(len(times))
                    quantity_value(batch_quantity[batch])
                    add_t(now)
                    add_b(batch)
                    add_k(k_leave)
                    if hold_source:
                        rt.holds.start(batch, j)
                    if put is not None:
                        add_t(now)
                        add_b(batch)
                        add_k(k_arrive)
                    else:
                        rt.finished_line(batch)
                    if ready > now:
                        yield timeout(ready - now)
            # 5. after: the clean after every batch
            if cleaning is not None:
                kind = clean_after(self, product, env._now)
                if kind is not None:
                    yield from clean(self, kind)

    def _gate_wait(self) -> Steps:
        """Wait for the release gate; record ``starved`` only if it makes the unit wait."""
        gate = self.rt.gate.wait()
        try:
            first = next(gate)
            self.record("starved")
            yield first
            yield from gate
        except StopIteration:
            pass

    def _ready(self, waiting: str) -> Steps:
        """After a wait: calendar failures during it, and down time that outlasts it."""
        if isinstance(self.clock, CalendarClock):
            now = self.rt.env.now
            ready = self.clock.wait_over(now, self.k_resume[waiting])
            if ready > now:
                yield self.rt.env.timeout(ready - now)

    def _resume(self, start: UnitStart) -> Steps:
        """Begin from what a plant state left on the unit: (batch, product, hours of processing left);
        batch -1 when the unit held none."""
        env = self._env
        if start.batch < 0:  # busy with no batch (a clean or repair under way), then free
            if start.delay > 0:
                self.record(f"{start.delay_state}_state")
                yield env.timeout(start.delay)
                if start.delay_state == "cleaning":
                    self.hygiene.cleaned(env.now, major=False)
            return -1, -1, 0.0
        batch = start.batch
        product = self.previous = self.rt.rec.batch_product[batch]
        if start.delay > 0:
            self.record(f"{start.delay_state}_state", batch)
            yield env.timeout(start.delay)
        return batch, product, start.work_left

    def ask_crew(self) -> Wake:
        """Ask for the unit's crew for a phase, now: yield this for (crew, gowning hours), granted by a serve step;
        then ``gown`` when the gowning hours are not 0."""
        return self.rt.operators.request(self.crew_request, self._env._now)

    def gown(self, hours: float) -> Steps:
        """Gowning to enter the unit's room."""
        self.record("gowning")
        yield self._env.timeout(hours)

    def work(self, duration: float, state: str, batch: int = -1) -> Steps:
        """A changeover or clean of ``duration`` hours; calendar failures during it extend it."""
        if self.clock is not None:
            now = self._env._now
            duration = self.clock.setup(now, duration, batch, self.k_resume[state]) - now
        yield self._env.timeout(duration)

    def finish_run(self, end: float) -> None:
        """Record calendar failures of a unit still waiting when the run ends."""
        if isinstance(self.clock, CalendarClock) and self.waiting_state:
            self.clock.wait_over(end, self.k_resume[self.waiting_state])
