"""Cleaning: minor and major cleans, cleans falling due, and the dirty- and clean-hold times.

    state = Hygiene()                              # per unit: clean since, dirty since, counters since the last major
    kind = cleaning.clean_before(unit, now)        # a clean again if the hold time of the clean or dirty state ran out
    kind = cleaning.clean_after(unit, product, now)  # the clean after every batch: major when due, minor otherwise
    yield from cleaning.clean(unit, kind)          # "minor" or "major"

After every batch the equipment is cleaned: a major clean when one is due (batches, hours or kg since
the last major clean) or when the next batch is already waiting and changes product with a major
clean, a minor clean otherwise. It is dirty from the end of processing until a clean starts; a clean
that starts later than the dirty-hold time is a major one. A clean waits for its skid first
(``waiting_cleaning``), then for its operators.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.engine.rules import skids
from twin.engine.rules.rule import Rule
from twin.eventlog import Event
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec, Station

if TYPE_CHECKING:
    from twin.engine.rules.unit import RulesUnit

RULE = Rule(
    "cleaning", "cleaning (minor, major, due, dirty and clean holds)", ("stations.*.cleaning",),
    lambda s: any(st.cleaning for st in s.stations), (Event.CLEAN, Event.MAJOR_CLEAN),
)  # fmt: skip


@dataclass(frozen=True)
class CompiledCleaning:
    minor: Sampler | None
    major: Sampler | None
    line_clearance: Sampler | None
    due_batches: int | None
    due_hours: float | None
    due_kg: float | None
    skid: int  # index into CompiledRules.skids; -1 = none
    skid_for: frozenset[str]
    dirty_hold: float | None
    clean_hold: float | None


def compile_cleaning(station: Station, spec: LineSpec) -> CompiledCleaning | None:
    """The cleaning rule of a station in hours and samplers, or None."""
    if station.cleaning is None:
        return None
    c, unit, hours = station.cleaning, spec.time_unit, spec.hours
    return CompiledCleaning(
        minor=c.minor.sampler(unit) if c.minor else None,
        major=c.major.sampler(unit) if c.major else None,
        line_clearance=c.line_clearance.sampler(unit) if c.line_clearance else None,
        due_batches=c.due.batches if c.due else None,
        due_hours=hours(c.due.hours) if c.due and c.due.hours is not None else None,
        due_kg=c.due.kg if c.due else None,
        skid=[k.name for k in spec.skids].index(c.skid) if c.skid else -1,
        skid_for=frozenset(c.skid_for),
        dirty_hold=hours(c.dirty_hold) if c.dirty_hold is not None else None,
        clean_hold=hours(c.clean_hold) if c.clean_hold is not None else None,
    )


@dataclass
class Hygiene:
    """A unit's cleaning state (the equipment starts the run after a major clean)."""

    dirty_since: float | None = None
    clean_since: float = 0.0
    major_since_batch: bool = True
    batches_since_major: int = 0
    kg_since_major: float = 0.0
    major_at: float = 0.0

    def processed(self, now: float, kg: float) -> None:
        """A batch (of ``kg``) finished processing: the equipment is dirty."""
        self.dirty_since = self.clean_since = now
        self.major_since_batch = False
        self.batches_since_major += 1
        self.kg_since_major += kg

    def cleaned(self, now: float, major: bool) -> None:
        self.dirty_since, self.clean_since = None, now
        if major:
            self.major_since_batch = True
            self.batches_since_major, self.kg_since_major, self.major_at = 0, 0.0, now


def clean_before(unit: RulesUnit, now: float) -> str | None:
    """The clean a unit needs before its next batch (None: none): again if the equipment stood clean
    longer than its clean-hold time (or dirty longer than its dirty-hold time)."""
    cleaning, state = unit.rules.cleaning, unit.hygiene
    dirty = state.dirty_since
    if dirty is None and cleaning.clean_hold is not None and now - state.clean_since > cleaning.clean_hold:
        return "minor" if cleaning.minor is not None else "major"
    if dirty is not None and cleaning.dirty_hold is not None and now - dirty > cleaning.dirty_hold:
        return "major"
    return None


def clean_after(unit: RulesUnit, product: int, now: float) -> str | None:
    """The clean after a batch of ``product`` (None: none): major when due or before a change that needs one."""
    cleaning, state = unit.rules.cleaning, unit.hygiene
    if (
        (cleaning.due_batches is not None and state.batches_since_major >= cleaning.due_batches)
        or (cleaning.due_hours is not None and now - state.major_at >= cleaning.due_hours)
        or (cleaning.due_kg is not None and state.kg_since_major >= cleaning.due_kg)
    ):
        return "major"
    upcoming = unit.rt.next_product(unit.j)
    if upcoming is not None:
        change = unit.rules.changeovers.get((product, upcoming))
        if change is not None and change.major_clean:
            return "major"
    return "minor" if cleaning.minor is not None else None


def clean(unit: RulesUnit, kind: str) -> Generator[Any, Any, None]:
    """A minor or major clean: skid, operators, the dirty-hold rule, then the cleaning time."""
    rt, cleaning, state = unit.rt, unit.rules.cleaning, unit.hygiene
    env = rt.env
    skid = False  # holds a skid
    if cleaning.skid >= 0 and kind in cleaning.skid_for:
        yield skids.request(unit)
        skid = True
    crew = None
    if unit.ops["cleaning"]:
        crew, gowning = yield unit.ask_crew()
        if gowning > 0:
            yield from unit.gown(gowning)
    now = env._now
    dirty, hold = state.dirty_since, cleaning.dirty_hold
    if kind == "minor" and dirty is not None and hold is not None and now - dirty > hold:  # stood dirty too long
        kind = "major"
        if not skid and cleaning.skid >= 0 and "major" in cleaning.skid_for:
            yield skids.request(unit)
            skid = True
            now = env._now
    unit.row(now, -1, unit.k[kind])
    duration = unit.clean_draw[kind]()
    if unit.calendar_clock:  # calendar failures extend a clean
        duration = unit.clock.setup(now, duration, -1, unit.k_resume["cleaning"]) - now
    elif unit.clock is not None:  # operating-time ones do not (``OperatingClock.setup``, same rounding)
        duration = (now + duration) - now
    yield env.timeout(duration)
    if crew:
        rt.operators.release(crew, unit.rules.room)
    if skid:
        skids.release(unit)
    state.cleaned(env._now, kind == "major")
