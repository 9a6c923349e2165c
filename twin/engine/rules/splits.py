"""Splits and merges: a station passes a batch on as k lots, or takes k batches and makes one.

    child = splits.merge(unit, parents)        # one ``merge`` row per parent
    children = splits.split(unit, batch)       # one ``split`` row per child

New batches inherit the earliest hold-time clocks of their parents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.engine.rules.rule import Rule
from twin.eventlog import Event

if TYPE_CHECKING:
    from twin.engine.rules.unit import RulesUnit

RULE = Rule(
    "splits_merges", "splits and merges", ("stations.*.split", "stations.*.merge"),
    lambda s: any(st.split or st.merge for st in s.stations), (Event.SPLIT, Event.MERGE),
)  # fmt: skip


def merge(unit: RulesUnit, parents: list[int]) -> int:
    """One batch made of ``parents`` (their quantities added)."""
    rt = unit.rt
    quantity = sum(rt.rec.batch_quantity[b] for b in parents)
    child = rt.new_batch(rt.rec.batch_product[parents[0]], quantity, parents)
    for parent in parents:
        rt.rec.row_parent(rt.env.now, child, unit.k["merge"], parent, rt.rec.batch_quantity[parent])
    rt.replaced(parents, [child])
    return child


def split(unit: RulesUnit, batch: int) -> list[int]:
    """The lots a batch leaves the station as (itself when the station does not split)."""
    if unit.rules.split == 1:
        return [batch]
    rt = unit.rt
    share = rt.rec.batch_quantity[batch] / unit.rules.split
    children = [rt.new_batch(rt.rec.batch_product[batch], share, [batch]) for _ in range(unit.rules.split)]
    for child in children:
        rt.rec.row_parent(rt.env.now, child, unit.k["split"], batch, share)
    rt.replaced([batch], children)
    return children
