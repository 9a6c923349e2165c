"""Shared cleaning skids: a clean that needs a skid waits for a free one (``waiting_cleaning``).

    pool = skids.make(arbiter, rules)          # one ``Slots`` per skid, at run start
    yield skids.request(unit)                  # the unit's cleaning skid
    skids.release(unit)

Waiting cleans are served by the serve step at the end of their instant, in order (time of request,
station index, unit index): see ``twin.engine.rules.arbiter``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from twin.engine.rules.rule import Rule
from twin.engine.rules.slots import Slots
from twin.eventlog import State
from twin.spec.model import LineSpec

if TYPE_CHECKING:
    from twin.engine.rules.arbiter import Arbiter, Wake
    from twin.engine.rules.compiled import CompiledRules
    from twin.engine.rules.unit import RulesUnit

RULE = Rule("skids", "shared cleaning skids", ("skids",), lambda s: bool(s.skids))


def compile_skids(spec: LineSpec) -> tuple[tuple[str, int], ...]:
    """(name, capacity) of each skid."""
    return tuple((k.name, k.capacity) for k in spec.skids)


def make(arbiter: Arbiter, rules: CompiledRules) -> list[Slots]:
    return [Slots(arbiter, capacity) for _, capacity in rules.skids]


def request(unit: RulesUnit) -> Wake:
    """Ask for the unit's cleaning skid: what to yield; the unit's ``waiting_cleaning`` is recorded when
    the serve step of this instant cannot grant it."""
    return unit.rt.skids[unit.rules.cleaning.skid].request(
        (unit.rt.env._now, unit.j, unit.u), partial(unit.record, State.WAITING_CLEANING)
    )


def release(unit: RulesUnit) -> None:
    unit.rt.skids[unit.rules.cleaning.skid].release()
