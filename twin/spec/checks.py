"""Rules that span several parts of a line spec, each reported at its own field path.

>>> whole_line_problems(spec)   # [(("skids", 1, "name"), "skid 'cip-2' is used by no station"), ...]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from twin.spec.cleaning import changeover_of

if TYPE_CHECKING:
    from twin.spec.model import LineSpec

Loc = tuple[str | int, ...]


def whole_line_problems(spec: LineSpec) -> list[tuple[Loc, str]]:
    """Every cross-field problem of a spec whose parts are each valid."""
    return [
        *_cleaning(spec),
        *_operators(spec),
        *_rooms(spec),
        *_hold_times(spec),
        *_qc(spec),
        *_merges(spec),
        *_release(spec),
    ]


def _cleaning(spec: LineSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    used = {s.cleaning.skid for s in spec.stations if s.cleaning is not None and s.cleaning.skid}
    for i, skid in enumerate(spec.skids):
        if skid.name not in used:
            problems.append((("skids", i, "name"), f"skid {skid.name!r} is used by no station"))
    names = [s.name for s in spec.skids]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            problems.append((("skids", i, "name"), f"duplicate skid name {name!r}"))
    for i, station in enumerate(spec.stations):
        for key, entry in (station.setup or {}).items():
            change = changeover_of(entry)
            cleaning = station.cleaning
            if change.major_clean and (cleaning is None or cleaning.major is None):
                problems.append((("stations", i, "setup", key), "needs a major clean: give cleaning.major"))
            if change.line_clearance and (cleaning is None or cleaning.line_clearance is None):
                problems.append((("stations", i, "setup", key), "needs a line clearance: give cleaning.line_clearance"))
    return problems


def _operators(spec: LineSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    names = [p.name for p in spec.operators]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            problems.append((("operators", i, "name"), f"duplicate operator pool name {name!r}"))
    for i, station in enumerate(spec.stations):
        if station.operators is None:
            continue
        pools = [p for p in spec.operators if station.name in p.qualified]
        if not pools:
            problems.append((("stations", i, "operators"), f"no operator pool is qualified for {station.name!r}"))
            continue
        if station.operators.count > sum(p.headcount for p in pools):
            problems.append(
                (("stations", i, "operators", "count"), f"needs {station.operators.count} operators but the pools "
                 f"qualified for it have {sum(p.headcount for p in pools)}")
            )  # fmt: skip
        working = [p for p in pools if p.calendar is None or spec.calendars[p.calendar].weekly_hours() > 0]
        if not working:
            calendars = ", ".join(sorted({repr(p.calendar) for p in pools}))
            problems.append(
                (("stations", i, "operators"), f"needs operators but their calendar {calendars} has no working time")
            )
    return problems


def _rooms(spec: LineSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    seen: dict[str, str] = {}
    for i, room in enumerate(spec.rooms):
        for station in room.stations:
            if station in seen:
                problems.append((("rooms", i, "stations"), f"station {station!r} is already in room {seen[station]!r}"))
            seen[station] = room.name
    return problems


def _hold_times(spec: LineSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    order = [s.name for s in spec.stations]
    for i, hold in enumerate(spec.hold_times):
        if order.index(hold.from_) >= order.index(hold.to):
            problems.append((("hold_times", i), f"{hold.from_!r} must come before {hold.to!r} in the flow"))
    return problems


def _qc(spec: LineSpec) -> list[tuple[Loc, str]]:
    if spec.qc is not None and spec.qc.calendar is not None and spec.calendars[spec.qc.calendar].weekly_hours() == 0:
        return [(("qc", "calendar"), f"calendar {spec.qc.calendar!r} has no working time")]
    return []


def _merges(spec: LineSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    lots = 1  # lots per released batch so far (splits multiply)
    for i, station in enumerate(spec.stations):
        if station.merge is not None:
            if spec.release.mode == "plan":
                for campaign in spec.release.plan or ():
                    if (campaign.batches * lots) % station.merge:
                        problems.append(
                            (("stations", i, "merge"), f"a campaign of {campaign.batches} {campaign.product} batches "
                             f"({campaign.batches * lots} lots here) does not fill whole merges of {station.merge}")
                        )  # fmt: skip
            elif len(spec.products) > 1:
                problems.append((("stations", i, "merge"), "merging needs one product, or a plan of whole merges"))
            lots = lots / station.merge
        if station.split is not None:
            lots *= station.split
    if not math.isfinite(lots):
        problems.append((("stations",), "splits and merges do not balance"))
    return problems


def _release(spec: LineSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    limit = spec.release.wip_limit
    if limit is not None:
        order = [s.name for s in spec.stations]
        j = order.index(limit.until)
        if j == 0:
            problems.append((("release", "wip_limit", "until"), "must be a station after the first"))
        if any(s.split or s.merge for s in spec.stations[:j]):
            problems.append((("release", "wip_limit", "until"), "no split or merge may come before it"))
    calendar = spec.release.calendar
    if calendar is not None and spec.calendars[calendar].weekly_hours() == 0:
        problems.append((("release", "calendar"), f"calendar {calendar!r} has no working time"))
    return problems
