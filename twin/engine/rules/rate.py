"""Rate-based equipment: a batch takes start-up plus its units over the effective rate, with noise.

    work = rate.hours(unit, quantity)       # start-up + quantity / (rate * (1 - loss)) * noise
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.engine.rules.rule import Rule
from twin.spec.model import LineSpec, Station

if TYPE_CHECKING:
    from twin.engine.rules.unit import RulesUnit

RULE = Rule("rate", "rate-based equipment", ("stations.*.rate",), lambda s: any(st.rate for st in s.stations))


def compile_rate(station: Station, spec: LineSpec) -> tuple[float, float, float, float] | None:
    """(units per hour, start-up hours, speed loss, cv) of a rate-based station, else None."""
    if station.rate is None:
        return None
    r = station.rate
    return (r.units_per_hour, spec.hours(r.startup), r.speed_loss, r.cv)


def hours(unit: RulesUnit, quantity: float) -> float:
    """Processing hours of ``quantity`` units on the unit's rate (draws the ``rate`` stream when cv > 0)."""
    rate, startup, loss, cv = unit.rules.rate
    return startup + quantity / (rate * (1 - loss)) * (unit.rate_noise() if cv > 0 else 1.0)
