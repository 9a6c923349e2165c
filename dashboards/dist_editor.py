"""The what-if form's distribution editor: a family picker and parameter fields with units, composed into
the same text the form validates (``{dist: gamma, mean: 2 h, sd: 30 min}``), so validation is the CLI's.

    >>> FAMILIES["triangular"]                      # (Param("low", "duration"), Param("mode", ...), ...)
    >>> compose("gamma", {"mean": ("2", "h"), "sd": ("30", "min")})
    '{dist: gamma, mean: 2 h, sd: 30 min}'
    >>> decompose("{dist: exponential, mean: 45 min}")
    ('exponential', {'mean': ('45', 'min')})

Families and their parameters are read from the spec's registry (``twin.spec.distributions.DISTRIBUTIONS``)
and each model's JSON schema (a duration field has the duration pattern), never listed here by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from twin.durations import TIME_UNITS, parse_duration
from twin.spec.distributions import DISTRIBUTIONS

SLOTS = 3  # parameter fields on the page: the most any family with scalar parameters has


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "duration" (a number and a unit), "number", or "list" (comma-separated durations)


def _kind(schema: dict[str, Any]) -> str:
    if any("pattern" in option for option in schema.get("anyOf", [])):
        return "duration"
    return "list" if schema.get("type") == "array" else "number"


def _families() -> dict[str, tuple[Param, ...]]:
    out = {}
    for name, model in DISTRIBUTIONS.items():
        props = model.model_json_schema()["properties"]
        out[name] = tuple(Param(k, _kind(v)) for k, v in props.items() if k != "dist")
    return out


FAMILIES: dict[str, tuple[Param, ...]] = _families()


def compose(family: str, values: dict[str, tuple[str | None, str | None]]) -> str:
    """The field's text for ``family`` with ``values`` (param -> (number text, unit)); a constant is bare."""
    parts = []
    for param in FAMILIES[family]:
        number, unit = values.get(param.name, (None, None))
        number = (number or "").strip()
        if param.kind == "duration":
            parts.append((param.name, f"{number} {unit}".strip() if number else ""))
        elif param.kind == "list":
            parts.append((param.name, "[" + number.strip("[] ") + "]"))
        else:
            parts.append((param.name, number))
    if family == "constant":
        return parts[0][1]
    return "{" + ", ".join([f"dist: {family}"] + [f"{k}: {v}" for k, v in parts]) + "}"


def _split(value: Any) -> tuple[str, str]:
    try:
        number, unit = parse_duration(value)
    except ValueError:
        return str(value), "h"
    text = f"{number:g}"
    return text, unit or "h"


def decompose(text: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """A field's text as (family, param -> (number text, unit)); an unreadable text reads as a constant of it."""
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return "constant", {"value": (text, "h")}
    if isinstance(value, dict) and value.get("dist") in FAMILIES:
        family = str(value["dist"])
        out = {}
        for param in FAMILIES[family]:
            raw = value.get(param.name)
            if raw is None:
                continue
            if param.kind == "duration":
                out[param.name] = _split(raw)
            elif param.kind == "list":
                out[param.name] = (", ".join(str(v) for v in raw) if isinstance(raw, list) else str(raw), "")
            else:
                out[param.name] = (f"{raw:g}" if isinstance(raw, (int, float)) else str(raw), "")
        return family, out
    if value is None:
        return "constant", {}
    return "constant", {"value": _split(value)}


UNITS = TIME_UNITS
