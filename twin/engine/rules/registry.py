"""The batch rules, in one table built from the rule modules: what each rule is called, the spec fields
that make it, when a spec uses it, and the events it writes.

    >>> [rule.name for rule in rules_used(spec)]          # ['cleaning', 'operators', 'qc', ...]
    >>> RULES["qc"].fields                                 # the spec fields that make the rule

Each rule lives in its own module of ``twin.engine.rules`` (declaration, compiled form, engine
behaviour). Consumers that implement only some rules (the JAX evaluator, snapshots) say which rule
names they cover, and "which rules of this spec does X leave out" is always ``rules_used(spec)``
minus that set: never a second hand-kept list.
"""

from __future__ import annotations

from twin.engine.rules import changeovers, cleaning, holds, operators, qc, quality, rate, release_gate, skids, splits
from twin.engine.rules.rule import Rule
from twin.spec.model import LineSpec

__all__ = ["RULES", "Rule", "rules_used"]

_TABLE: tuple[Rule, ...] = (
    cleaning.RULE, skids.RULE, changeovers.RULE, operators.OPERATORS, operators.ROOMS, holds.RULE, qc.RULE,
    quality.RULE, splits.RULE, release_gate.RULE, rate.RULE,
)  # fmt: skip

RULES: dict[str, Rule] = {rule.name: rule for rule in _TABLE}


def rules_used(spec: LineSpec) -> list[Rule]:
    """The batch rules ``spec`` uses, in the table's order."""
    return [rule for rule in _TABLE if rule.used(spec)]
