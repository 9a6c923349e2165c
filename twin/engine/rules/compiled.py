"""Batch rules compiled for the engine: hours, indexes and samplers.

>>> rules = compile_rules(spec)     # None when the spec uses none of the rules
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec


@dataclass(frozen=True)
class CompiledChangeover:
    stream: str
    time: Sampler | None
    major_clean: bool
    line_clearance: bool


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


@dataclass(frozen=True)
class CompiledHold:
    source: int  # station the clock starts at (when the batch leaves it)
    max_hours: float
    scrap: bool
    investigation: Sampler | None
    stream_owner: str


@dataclass(frozen=True)
class StationRules:
    changeovers: dict[tuple[int, int], CompiledChangeover]
    cleaning: CompiledCleaning | None
    operators: int  # operators needed (0 = none)
    operator_phases: frozenset[str]
    pools: tuple[int, ...]  # operator pools qualified for the station
    room: int  # index into CompiledRules.rooms; -1 = none
    rate: tuple[float, float, float, float] | None  # units/h, startup h, speed loss, cv
    yield_: float
    reject_probability: float
    split: int
    merge: int
    holds: tuple[CompiledHold, ...]  # hold-time rules ending at this station
    hold_source: bool  # some hold-time rule starts at this station


@dataclass(frozen=True)
class CompiledQc:
    analysts: int
    calendar: int  # index into CompiledRules.calendars; -1 = always
    test_time: Sampler
    incubation: Sampler | None
    oos_probability: float
    investigate: bool
    investigation: Sampler | None


@dataclass(frozen=True)
class CompiledRules:
    stations: tuple[StationRules, ...]
    skids: tuple[tuple[str, int], ...]  # name, capacity
    calendars: tuple[list[tuple[float, float]] | None, ...]  # weekly working intervals
    pools: tuple[tuple[str, int, int], ...]  # name, headcount, calendar index (-1 = always)
    rooms: tuple[tuple[str, float, int], ...]  # name, gowning hours, max people
    qc: CompiledQc | None
    masses: tuple[float, ...]  # kg per batch of each product (0 when unknown)
    release_calendar: int = -1  # index into calendars; -1 = release at any time
    wip_limit: tuple[int, int] | None = None  # (batches, station) of a CONWIP release rule


def uses_rules(spec: LineSpec) -> bool:
    """Whether any batch rule is on (then the line runs on the full loop)."""
    line_level = spec.skids or spec.calendars or spec.operators or spec.rooms or spec.hold_times or spec.qc
    line_level = line_level or spec.release.calendar or spec.release.wip_limit
    changeovers = any(
        not hasattr(entry, "sampler") for s in spec.stations for entry in (s.setup or {}).values()
    )  # rich {time, major_clean, line_clearance} entries
    per_station = any(s.cleaning or s.operators or s.quality or s.rate or s.split or s.merge for s in spec.stations)
    return bool(line_level or changeovers or per_station)


def compile_rules(spec: LineSpec) -> CompiledRules | None:
    """The rules of ``spec`` in engine form, or None when it uses none."""
    if not uses_rules(spec):
        return None
    unit = spec.time_unit
    hours = spec.hours
    products = [p.name for p in spec.products]
    names = [s.name for s in spec.stations]
    skid_names = [k.name for k in spec.skids]
    calendar_names = list(spec.calendars)
    room_of = {station: r for r, room in enumerate(spec.rooms) for station in room.stations}

    stations = []
    for station in spec.stations:
        changeovers = {}
        for a, prev in enumerate(products):
            for b, product in enumerate(products):
                change = station.changeover_for(prev, product)
                if change is not None:
                    changeovers[(a, b)] = CompiledChangeover(
                        f"setup:{prev}->{product}",
                        change.time.sampler(unit) if change.time is not None else None,
                        change.major_clean,
                        change.line_clearance,
                    )
        cleaning = None
        if station.cleaning is not None:
            c = station.cleaning
            cleaning = CompiledCleaning(
                minor=c.minor.sampler(unit) if c.minor else None,
                major=c.major.sampler(unit) if c.major else None,
                line_clearance=c.line_clearance.sampler(unit) if c.line_clearance else None,
                due_batches=c.due.batches if c.due else None,
                due_hours=hours(c.due.hours) if c.due and c.due.hours is not None else None,
                due_kg=c.due.kg if c.due else None,
                skid=skid_names.index(c.skid) if c.skid else -1,
                skid_for=frozenset(c.skid_for),
                dirty_hold=hours(c.dirty_hold) if c.dirty_hold is not None else None,
                clean_hold=hours(c.clean_hold) if c.clean_hold is not None else None,
            )
        holds = tuple(
            CompiledHold(
                source=names.index(h.from_),
                max_hours=hours(h.max),
                scrap=h.action == "scrap",
                investigation=h.investigation.sampler(unit) if h.investigation is not None else None,
                stream_owner=f"hold:{h.from_}->{h.to}",
            )
            for h in spec.hold_times
            if h.to == station.name
        )
        rate = None
        if station.rate is not None:
            r = station.rate
            rate = (r.units_per_hour, hours(r.startup), r.speed_loss, r.cv)
        quality = station.quality
        stations.append(
            StationRules(
                changeovers=changeovers,
                cleaning=cleaning,
                operators=station.operators.count if station.operators else 0,
                operator_phases=frozenset(station.operators.phases) if station.operators else frozenset(),
                pools=tuple(p for p, pool in enumerate(spec.operators) if station.name in pool.qualified),
                room=room_of.get(station.name, -1),
                rate=rate,
                yield_=quality.yield_ if quality else 1.0,
                reject_probability=quality.reject_probability if quality else 0.0,
                split=station.split or 1,
                merge=station.merge or 1,
                holds=holds,
                hold_source=any(h.from_ == station.name for h in spec.hold_times),
            )
        )
    qc = None
    if spec.qc is not None:
        q = spec.qc
        qc = CompiledQc(
            analysts=q.analysts,
            calendar=calendar_names.index(q.calendar) if q.calendar else -1,
            test_time=q.test_time.sampler(unit),
            incubation=q.incubation.sampler(unit) if q.incubation is not None else None,
            oos_probability=q.oos_probability,
            investigate=q.oos_action == "investigate",
            investigation=q.investigation.sampler(unit) if q.investigation is not None else None,
        )
    return CompiledRules(
        stations=tuple(stations),
        skids=tuple((k.name, k.capacity) for k in spec.skids),
        calendars=tuple([i for s in c.shifts for i in s.intervals()] for c in spec.calendars.values()),
        pools=tuple(
            (p.name, p.headcount, calendar_names.index(p.calendar) if p.calendar else -1) for p in spec.operators
        ),
        rooms=tuple((r.name, hours(r.gowning_time()), r.max_people) for r in spec.rooms),
        qc=qc,
        masses=tuple(p.mass_kg or 0.0 for p in spec.products),
        release_calendar=calendar_names.index(spec.release.calendar) if spec.release.calendar else -1,
        wip_limit=(spec.release.wip_limit.batches, names.index(spec.release.wip_limit.until))
        if spec.release.wip_limit
        else None,
    )
