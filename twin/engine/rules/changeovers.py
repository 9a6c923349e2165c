"""Changeovers between products: the changeover time, and the major clean and line clearance a change may need.

    changes = compile_changeovers(station, spec)       # {(previous, next): CompiledChangeover}
    step = changes.get((previous, product))            # the unit's loop looks the step up
    yield from changeovers.change(unit, batch, previous, step)

A change that needs a major clean gets one unless one was done since the last batch; the changeover
time and the line clearance follow, with the station's operators when its ``setup`` phase needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.engine.rules import cleaning
from twin.engine.rules.rule import Rule
from twin.eventlog import Event
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec, Station

if TYPE_CHECKING:
    from collections.abc import Generator

    from twin.engine.rules.unit import RulesUnit


def _flag(spec: LineSpec, flag: str) -> bool:
    return any(getattr(e, flag, False) for s in spec.stations for e in (s.setup or {}).values())


RULE = Rule(
    "changeover_cleaning", "major cleans and line clearances of changeovers",
    ("stations.*.setup.*.major_clean", "stations.*.setup.*.line_clearance"),
    lambda s: _flag(s, "major_clean") or _flag(s, "line_clearance"), (Event.MAJOR_CLEAN, Event.LINE_CLEARANCE),
)  # fmt: skip


@dataclass(frozen=True)
class CompiledChangeover:
    stream: str
    time: Sampler | None
    major_clean: bool
    line_clearance: bool


def compile_changeovers(station: Station, spec: LineSpec) -> dict[tuple[int, int], CompiledChangeover]:
    """The changeovers of a station by (previous, next) product index."""
    products = [p.name for p in spec.products]
    changeovers = {}
    for a, prev in enumerate(products):
        for b, product in enumerate(products):
            change = station.changeover_for(prev, product)
            if change is not None:
                changeovers[(a, b)] = CompiledChangeover(
                    f"setup:{prev}->{product}",
                    change.time.sampler(spec.time_unit) if change.time is not None else None,
                    change.major_clean,
                    change.line_clearance,
                )
    return changeovers


def change(unit: RulesUnit, batch: int, previous: int, step: CompiledChangeover) -> Generator[Any, Any, None]:
    """Change the unit over from product ``previous`` to that of ``batch`` by ``step``."""
    if step.major_clean and not unit.hygiene.major_since_batch:
        yield from cleaning.clean(unit, "major")
    if step.time is None and not step.line_clearance:
        return
    crew = None
    if unit.ops["setup"]:
        crew, gowning = yield unit.ask_crew()
        if gowning > 0:
            yield from unit.gown(gowning)
    if step.time is not None:
        unit.record("setup", batch)
        yield from unit.work(unit.changeover_draws[(previous, unit.previous)](), "setup", batch)
    if step.line_clearance:
        unit.record("line_clearance", batch)
        yield from unit.work(unit.line_clearance_draw(), "setup", batch)
    if crew:
        unit.rt.operators.release(crew, unit.rules.room)
