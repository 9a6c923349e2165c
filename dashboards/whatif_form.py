"""The what-if form's fields: built from a line spec, turned into ``--set`` overrides, and its
validation problems (the CLI's own: ``twin.experiment.with_overrides``) put back next to each field.

    >>> fields = station_fields(spec)                       # Field(key, loc, label, text) per input
    >>> overrides = changed_overrides(fields, submitted)    # ["stations.coating.units=2", ...]
    >>> spec2 = with_overrides(spec, overrides)             # SpecError with field paths if bad
    >>> field_of(problem.path, fields)                      # the field the problem belongs to
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from twin.spec.model import LineSpec

STATION_COLUMNS = (  # attribute, header
    ("units", "units"),
    ("buffer", "buffer"),
    ("time", "process time (or rate/h)"),
    ("mtbf", "MTBF"),
    ("mttr", "MTTR"),
    ("due", "major clean every N"),
    ("minor", "minor clean"),
    ("major", "major clean"),
)


@dataclass(frozen=True)
class Field:
    key: str  # the override path, list items by name: stations.coating.units
    loc: str  # the validation path, list items by index: stations[6].units
    label: str
    text: str  # the value as the spec has it ("" = not set)


def value_text(value: Any) -> str:
    """A spec value as the form shows it: YAML flow style (``{dist: exponential, mean: 2 h}``)."""
    if value is None:
        return ""
    if isinstance(value, dict) and value.get("dist") == "constant" and set(value) == {"dist", "value"}:
        return value_text(value["value"])
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return str(value)


def _get(data: Mapping[str, Any], *path: str) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def station_fields(spec: LineSpec) -> list[list[Field]]:
    """One row of fields per station, in ``STATION_COLUMNS`` order."""
    rows = []
    for i, station in enumerate(spec.to_data()["stations"]):
        name = station["name"]

        def field(attr: str, *path: str, label: str, st: dict = station, n: str = name, j: int = i) -> Field:
            key = "stations." + n + "." + ".".join(path)
            return Field(key, f"stations[{j}]." + ".".join(path), f"{n} {label}", value_text(_get(st, *path)))

        time = (
            field("time", "rate", "units_per_hour", label="rate per hour")
            if "rate" in station
            else field("time", "process_time", label="process time")
        )
        rows.append(
            [
                field("units", "units", label="units"),
                field("buffer", "buffer", label="buffer"),
                time,
                field("mtbf", "failures", "mtbf", label="MTBF"),
                field("mttr", "failures", "mttr", label="MTTR"),
                field("due", "cleaning", "due", "batches", label="major clean every N batches"),
                field("minor", "cleaning", "minor", label="minor clean"),
                field("major", "cleaning", "major", label="major clean"),
            ]
        )
    return rows


def plan_rows(spec: LineSpec, spare: int = 2) -> list[tuple[str, str]]:
    """The release plan's campaigns as (product, batches) texts, plus ``spare`` empty rows."""
    plan = spec.to_data().get("release", {}).get("plan") or []
    return [(c["product"], str(c["batches"])) for c in plan] + [("", "")] * spare


def plan_override(rows: Sequence[tuple[str | None, str | None]], original: Sequence[tuple[str, str]]) -> str | None:
    """``release.plan=[...]`` when the campaigns differ from the spec's, else None."""
    used = [(p, (b or "").strip()) for p, b in rows if p]
    if used == [(p, b) for p, b in original if p]:
        return None
    items = []
    for product, batches in used:
        try:
            value = yaml.safe_load(batches) if batches else None
        except yaml.YAMLError:
            value = batches
        items.append({"product": product, "batches": value})
    return "release.plan=" + value_text(items)


def changed_overrides(fields: Sequence[Field], submitted: Mapping[str, str | None]) -> list[str]:
    """``path=value`` for every field whose text differs from the spec's (an emptied field: ``path=null``)."""
    out = []
    for f in fields:
        text = (submitted.get(f.key) or "").strip()
        if text == f.text.strip():
            continue
        out.append(f"{f.key}={text if text else 'null'}")
    return out


def field_of(path: str, locs: Sequence[str]) -> str | None:
    """The most specific form location that a validation problem's path falls under (None: whole line)."""
    best = None
    for loc in locs:
        inside = path == loc or path.startswith(loc + ".") or path.startswith(loc + "[")
        if inside and (best is None or len(loc) > len(best)):
            best = loc
    return best
