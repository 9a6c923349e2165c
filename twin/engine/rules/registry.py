"""The batch rules of the spec, in one table: what each rule is called and when a spec uses it.

    >>> [rule.name for rule in rules_used(spec)]          # ['cleaning', 'operators', 'qc', ...]
    >>> RULES["qc"].fields                                 # the spec fields that make the rule

The engine's own implementation of each rule lives in ``twin.engine.rules``; consumers that
implement only some rules (the JAX evaluator, snapshots) say which rule names they cover, and
"which rules of this spec does X leave out" is always ``rules_used(spec)`` minus that set: never a
second hand-kept list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twin.spec.model import LineSpec


@dataclass(frozen=True)
class Rule:
    """One batch rule: its name, what a person calls it, the spec fields that make it, and its test."""

    name: str
    label: str
    fields: tuple[str, ...]
    used: Callable[[LineSpec], bool]


def _changeover_flag(spec: LineSpec, flag: str) -> bool:
    return any(getattr(e, flag, False) for s in spec.stations for e in (s.setup or {}).values())


_TABLE = (
    Rule("cleaning", "cleaning (minor, major, due, dirty and clean holds)",
         ("stations.*.cleaning",), lambda s: any(st.cleaning for st in s.stations)),
    Rule("skids", "shared cleaning skids", ("skids",), lambda s: bool(s.skids)),
    Rule("changeover_cleaning", "major cleans and line clearances of changeovers",
         ("stations.*.setup.*.major_clean", "stations.*.setup.*.line_clearance"),
         lambda s: _changeover_flag(s, "major_clean") or _changeover_flag(s, "line_clearance")),
    Rule("operators", "operators and shifts", ("operators", "calendars", "stations.*.operators"),
         lambda s: bool(s.operators) or any(st.operators for st in s.stations)),
    Rule("rooms", "rooms (headcount and gowning)", ("rooms",), lambda s: bool(s.rooms)),
    Rule("hold_times", "hold times", ("hold_times",), lambda s: bool(s.hold_times)),
    Rule("qc", "QC release", ("qc",), lambda s: s.qc is not None),
    Rule("quality", "yields and rejects", ("stations.*.quality",), lambda s: any(st.quality for st in s.stations)),
    Rule("splits_merges", "splits and merges", ("stations.*.split", "stations.*.merge"),
         lambda s: any(st.split or st.merge for st in s.stations)),
    Rule("release_rules", "release calendar and WIP limit", ("release.calendar", "release.wip_limit"),
         lambda s: bool(s.release.calendar or s.release.wip_limit)),
    Rule("rate", "rate-based equipment", ("stations.*.rate",), lambda s: any(st.rate for st in s.stations)),
)  # fmt: skip

RULES: dict[str, Rule] = {rule.name: rule for rule in _TABLE}


def rules_used(spec: LineSpec) -> list[Rule]:
    """The batch rules ``spec`` uses, in the table's order."""
    return [rule for rule in _TABLE if rule.used(spec)]
