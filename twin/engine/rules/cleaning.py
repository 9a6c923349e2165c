"""Cleaning: minor and major cleans, cleans falling due, and the dirty- and clean-hold times.

    state = Hygiene()                          # per unit: clean since, dirty since, counters since the last major
    yield from cleaning.before(unit)           # a clean again if the hold time of the clean or dirty state ran out
    yield from cleaning.after(unit, product)   # the clean after every batch: major when due, minor otherwise
    yield from cleaning.clean(unit, "major")

After every batch the equipment is cleaned: a major clean when one is due (batches, hours or kg since
the last major clean) or when the next batch is already waiting and changes product with a major
clean, a minor clean otherwise. It is dirty from the end of processing until a clean starts; a clean
that starts later than the dirty-hold time is a major one. A clean waits for its skid first
(``waiting_cleaning``), then for its operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.engine.rules import skids
from twin.engine.rules.rule import Rule
from twin.eventlog import Event
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec, Station

if TYPE_CHECKING:
    from collections.abc import Generator

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


def before(unit: RulesUnit) -> Generator[Any, Any, None]:
    """Before a batch: clean again if the equipment stood clean (or dirty) longer than its hold time."""
    cleaning, state, now = unit.rules.cleaning, unit.hygiene, unit.rt.env.now
    if cleaning is None:
        return
    dirty = state.dirty_since
    if dirty is None and cleaning.clean_hold is not None and now - state.clean_since > cleaning.clean_hold:
        yield from clean(unit, "minor" if cleaning.minor is not None else "major")
    elif dirty is not None and cleaning.dirty_hold is not None and now - dirty > cleaning.dirty_hold:
        yield from clean(unit, "major")


def after(unit: RulesUnit, product: int) -> Generator[Any, Any, None]:
    """The clean after a batch of ``product``: major when due or before a change that needs one."""
    cleaning, state = unit.rules.cleaning, unit.hygiene
    if cleaning is None:
        return
    kind = "minor" if cleaning.minor is not None else None
    due = (
        (cleaning.due_batches is not None and state.batches_since_major >= cleaning.due_batches)
        or (cleaning.due_hours is not None and unit.rt.env.now - state.major_at >= cleaning.due_hours)
        or (cleaning.due_kg is not None and state.kg_since_major >= cleaning.due_kg)
    )
    upcoming = unit.rt.next_product(unit.j)
    change = unit.rules.changeovers.get((product, upcoming)) if upcoming is not None else None
    if due or (change is not None and change.major_clean):
        kind = "major"
    if kind is not None:
        yield from clean(unit, kind)


def clean(unit: RulesUnit, kind: str) -> Generator[Any, Any, None]:
    """A minor or major clean: skid, operators, the dirty-hold rule, then the cleaning time."""
    rt, cleaning, state = unit.rt, unit.rules.cleaning, unit.hygiene
    assert cleaning is not None
    skid = None
    if cleaning.skid >= 0 and kind in cleaning.skid_for:
        skid = yield from skids.acquire(unit)
    crew = (yield from unit.crew("cleaning")) if unit.ops["cleaning"] else []
    if (
        kind == "minor" and state.dirty_since is not None and cleaning.dirty_hold is not None
        and rt.env.now - state.dirty_since > cleaning.dirty_hold
    ):  # fmt: skip
        kind = "major"
        if skid is None and cleaning.skid >= 0 and "major" in cleaning.skid_for:
            skid = yield from skids.acquire(unit)
    unit.record(kind)
    yield from unit.work(unit.clean_draw[kind](), "cleaning")
    unit.release_crew(crew)
    if skid is not None:
        skids.release(unit, skid)
    state.cleaned(rt.env.now, kind == "major")
