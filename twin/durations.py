"""Durations with units: ``"45 min"``, ``"2 h"``, ``"3 d"`` or a bare number in the spec's time unit.

>>> to_hours("45 min", "h")
0.75
>>> to_hours(90, "min")
1.5
"""

from __future__ import annotations

import math
import re

HOURS_PER_UNIT: dict[str, float] = {"s": 1 / 3600, "min": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}
_ALIASES = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "week": "w", "weeks": "w",
}  # fmt: skip
_PATTERN = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
TIME_UNITS = tuple(HOURS_PER_UNIT)


def parse_duration(value: object) -> tuple[float, str | None]:
    """Split a duration into (magnitude, canonical unit or None for a bare number).

    Raises ValueError with a readable message for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 2, '45 min' or '3 d' (got {value!r})")
    if isinstance(value, (int, float)):
        number, unit = float(value), None
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise ValueError(f"expected a duration such as 2, '45 min' or '3 d' (got {value!r})")
        number = float(match.group(1))
        unit = None
        if match.group(2):
            unit = _ALIASES.get(match.group(2).lower())
            if unit is None:
                raise ValueError(
                    f"unknown time unit {match.group(2)!r} in {value!r}; use one of {', '.join(TIME_UNITS)}"
                )
    else:
        raise ValueError(f"expected a duration such as 2, '45 min' or '3 d' (got {value!r})")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite duration (got {value!r})")
    return number, unit


def normalize_duration(value: object) -> float | str:
    """The canonical stored form: a float for a bare number, ``"<number> <unit>"`` otherwise."""
    number, unit = parse_duration(value)
    return number if unit is None else f"{number:.15g} {unit}"


def to_hours(value: float | str, time_unit: str) -> float:
    """Convert a stored duration to hours; bare numbers are in ``time_unit``."""
    number, unit = parse_duration(value)
    return number * HOURS_PER_UNIT[unit or time_unit]


def duration_sign(value: float | str) -> float:
    """The magnitude of a duration, for sign checks that need no unit."""
    return parse_duration(value)[0]


def format_hours(hours: float) -> str:
    """A short human form of a duration in hours: ``1.5 h``, ``45 min``, ``3.2 d``."""
    if hours != hours:
        return "—"
    if abs(hours) < 1:
        return f"{hours * 60:.3g} min"
    if abs(hours) < 72:
        return f"{hours:.3g} h"
    days = hours / 24
    return f"{days:.3g} d" if abs(days) < 100 else f"{days:,.0f} d"  # never 1.2e+03 d
