"""Shared cleaning skids: a clean that needs a skid waits for a free one (``waiting_cleaning``).

    pool = skids.make(env, rules)              # one ``Slots`` per skid, at run start
    skid = skids.request(unit)                 # the unit's cleaning skid
    if skid is not GRANTED: yield skid
    skids.release(unit)

Waiting cleans are served first come, first served (``Slots``, as SimPy's resource queue): at equal
times, in the order the units asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from twin.engine.rules.rule import Rule
from twin.engine.rules.slots import GRANTED, Slots
from twin.eventlog import State
from twin.spec.model import LineSpec

if TYPE_CHECKING:
    from twin.engine.rules.compiled import CompiledRules
    from twin.engine.rules.unit import RulesUnit

RULE = Rule("skids", "shared cleaning skids", ("skids",), lambda s: bool(s.skids))


def compile_skids(spec: LineSpec) -> tuple[tuple[str, int], ...]:
    """(name, capacity) of each skid."""
    return tuple((k.name, k.capacity) for k in spec.skids)


def make(env: simpy.Environment, rules: CompiledRules) -> list[Slots]:
    return [Slots(env, capacity) for _, capacity in rules.skids]


def request(unit: RulesUnit) -> simpy.Event | None:
    """Ask for the unit's cleaning skid: ``GRANTED`` (None) at once, else an event to yield (the unit's
    ``waiting_cleaning`` is recorded then)."""
    request = unit.rt.skids[unit.rules.cleaning.skid].request()
    if request is not GRANTED:
        unit.record(State.WAITING_CLEANING)
    return request


def release(unit: RulesUnit) -> None:
    unit.rt.skids[unit.rules.cleaning.skid].release()
