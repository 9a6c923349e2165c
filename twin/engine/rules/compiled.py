"""Batch rules compiled for the engine: hours, indexes and samplers, put together from each rule's module.

>>> rules = compile_rules(spec)     # None when the spec uses none of the rules
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.engine.rules.calendar import WEEK
from twin.engine.rules.changeovers import CompiledChangeover, compile_changeovers
from twin.engine.rules.cleaning import CompiledCleaning, compile_cleaning
from twin.engine.rules.holds import CompiledHold, compile_holds, is_source
from twin.engine.rules.operators import compile_pools, compile_rooms
from twin.engine.rules.qc import CompiledQc, compile_qc
from twin.engine.rules.quality import compile_quality
from twin.engine.rules.rate import compile_rate
from twin.engine.rules.registry import rules_used
from twin.engine.rules.release_gate import compile_release
from twin.engine.rules.skids import compile_skids
from twin.spec.cleaning import Changeover
from twin.spec.model import LineSpec

__all__ = ["CompiledChangeover", "CompiledCleaning", "CompiledHold", "CompiledQc", "CompiledRules", "StationRules"]


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
    """Whether the line runs on the rules loop: a batch rule is used, or a calendar or a changeover
    written as a mapping (``{time: ...}``) is (the rules loop draws those as the rules do)."""
    changeovers = any(isinstance(entry, Changeover) for s in spec.stations for entry in (s.setup or {}).values())
    return bool(rules_used(spec) or spec.calendars or changeovers)


def _run_clock(intervals: list[tuple[float, float]], spec: LineSpec) -> list[tuple[float, float]]:
    """Working intervals of the week (hours since Monday 00:00) as hours of the run's week: a run that
    starts at Monday 06:00 (``start``) is 6 h into the week at time 0."""
    offset = spec.week_offset_hours
    return [((a - offset) % WEEK, (a - offset) % WEEK + (b - a)) for a, b in intervals] if offset else intervals


def compile_rules(spec: LineSpec) -> CompiledRules | None:
    """The rules of ``spec`` in engine form, or None when it uses none."""
    if not uses_rules(spec):
        return None
    room_of = {station: r for r, room in enumerate(spec.rooms) for station in room.stations}
    stations = []
    for station in spec.stations:
        yield_, reject = compile_quality(station)
        stations.append(
            StationRules(
                changeovers=compile_changeovers(station, spec),
                cleaning=compile_cleaning(station, spec),
                operators=station.operators.count if station.operators else 0,
                operator_phases=frozenset(station.operators.phases) if station.operators else frozenset(),
                pools=tuple(p for p, pool in enumerate(spec.operators) if station.name in pool.qualified),
                room=room_of.get(station.name, -1),
                rate=compile_rate(station, spec),
                yield_=yield_,
                reject_probability=reject,
                split=station.split or 1,
                merge=station.merge or 1,
                holds=compile_holds(station, spec),
                hold_source=is_source(station, spec),
            )
        )
    release_calendar, wip_limit = compile_release(spec)
    calendars = spec.calendars.values()
    return CompiledRules(
        stations=tuple(stations),
        skids=compile_skids(spec),
        calendars=tuple(_run_clock([i for s in c.shifts for i in s.intervals()], spec) for c in calendars),
        pools=compile_pools(spec),
        rooms=compile_rooms(spec),
        qc=compile_qc(spec),
        masses=tuple(p.mass_kg or 0.0 for p in spec.products),
        release_calendar=release_calendar,
        wip_limit=wip_limit,
    )
