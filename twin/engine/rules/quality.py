"""Yields and rejects: units lost at the end of processing (``scrap``), whole batches rejected (``reject``).

    kept = quality.after_processing(unit, batch, quantity)     # the batch, or -1 when rejected
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.engine.rules.rule import Rule
from twin.eventlog import Event
from twin.spec.model import Station

if TYPE_CHECKING:
    from twin.engine.rules.unit import RulesUnit

RULE = Rule(
    "quality", "yields and rejects", ("stations.*.quality",), lambda s: any(st.quality for st in s.stations),
    (Event.SCRAP, Event.REJECT),
)  # fmt: skip


def after_processing(unit: RulesUnit, batch: int, quantity: float) -> int:
    """Apply the station's yield and reject draw to a batch just processed; the batch, or -1 if rejected."""
    rules, rt = unit.rules, unit.rt
    if rules.yield_ < 1:
        lost = quantity * (1 - rules.yield_)
        unit.record("scrap", batch, lost)
        rt.rec.batch_quantity[batch] = quantity - lost
    if rules.reject_probability > 0 and unit.reject_draw() < rules.reject_probability:
        unit.record("reject", batch, rt.rec.batch_quantity[batch])
        rt.left_line(batch)
        return -1
    return batch


def compile_quality(station: Station) -> tuple[float, float]:
    """(yield, reject probability) of a station (1 and 0 without a quality rule)."""
    q = station.quality
    return (q.yield_, q.reject_probability) if q else (1.0, 0.0)
