"""Shared field types of the line spec: durations and names.

Durations are kept exactly as written (a bare number in the spec's ``time_unit``, or a string with
its own unit) so that a spec round-trips and ``--set`` overrides mean what the file means; the
engine converts them to hours when it compiles a spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, StringConstraints, ValidationInfo, WithJsonSchema

from twin.durations import HOURS_PER_UNIT, normalize_duration, parse_duration, to_hours
from twin.spec.limits import MAX_HOURS

DURATION_JSON_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-z]*\s*$"},
    ],
    "description": "A duration: a bare number in the spec's time_unit, or a string such as '45 min', '2 h', '3 d'.",
}


def _positive_duration(value: Any, info: ValidationInfo) -> float | str:
    normalized = normalize_duration(value)
    if parse_duration(normalized)[0] <= 0:
        raise ValueError(f"must be a positive duration (got {value!r})")
    return _at_most_max(normalized, value, info)


def _non_negative_duration(value: Any, info: ValidationInfo) -> float | str:
    normalized = normalize_duration(value)
    if parse_duration(normalized)[0] < 0:
        raise ValueError(f"must be a duration >= 0 (got {value!r})")
    return _at_most_max(normalized, value, info)


def _at_most_max(normalized: float | str, value: Any, info: ValidationInfo) -> float | str:
    if to_hours(normalized, context_time_unit(info)) > MAX_HOURS:
        raise ValueError(f"must be at most {MAX_HOURS:,.0f} h, {MAX_HOURS / 8766:.0f} years (got {value!r})")
    return normalized


PositiveDuration = Annotated[float | str, PlainValidator(_positive_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]
NonNegativeDuration = Annotated[
    float | str, PlainValidator(_non_negative_duration), WithJsonSchema(DURATION_JSON_SCHEMA)
]

# Names end up in dotted override paths ("stations.press.units") and changeover keys ("A->B"),
# so they may not contain dots, spaces or arrows.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_+-]*$", max_length=64)]


class SpecModel(BaseModel):
    """Base of every spec model: immutable, unknown fields rejected; validators built on first use (quick start)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def check_known(names: Iterable[str], info: ValidationInfo, context_key: str, kind: str) -> None:
    """Raise ``ValueError`` for names that the spec being validated does not define.

    ``context_key`` names the list of known names in the validation context (``"station_names"``,
    ``"skids"``, ``"calendars"``); without that context (a part validated on its own) all pass.
    """
    known = (info.context or {}).get(context_key)
    if known is None:
        return
    unknown = [name for name in names if name not in known]
    if unknown:
        listing = ", ".join(known) or "none defined"
        raise ValueError(f"unknown {kind} {', '.join(map(repr, unknown))} ({kind}s: {listing})")


def context_time_unit(info: ValidationInfo) -> str:
    """The spec's time unit during validation (``h`` when validated on its own)."""
    unit = (info.context or {}).get("time_unit", "h")
    return unit if unit in HOURS_PER_UNIT else "h"
