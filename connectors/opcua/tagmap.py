"""Tag maps: which plant tag means which station state, counter, batch id or alarm.

    >>> tags = load_tag_map("plant_models/tags/osd_tablet.yaml", spec)   # exit 2 on any mismatch
    >>> tags.units()                        # [(station, unit, UnitTags), ...] in line order
    >>> tags.state_of(unit_tags, 4)         # the plant's code 4 -> "starved"

A map is YAML::

    namespace: urn:twin:plc:osd-tablet      # namespace URI of the tags (resolved to an index at connect)
    states: {0: null, 1: processing, 2: setup, 3: down, 4: starved, 5: blocked, 6: idle}
    heartbeat: {tag: PLC_HEARTBEAT, wrap: 65536}
    release: {batch: LINE_RELEASE_BATCH, count: {tag: LINE_RELEASE_COUNT, wrap: 4294967296}}
    stations:
      coating:
        - {state: COATING_U1_STATE, batch: COATING_U1_BATCH, product: COATING_U1_PRODUCT,
           count: {tag: COATING_U1_GOOD, wrap: 4294967296}, done: {tag: COATING_U1_DONE, wrap: 65536},
           alarm: COATING_U1_ALARM}

Tags are string node ids in the map's namespace. ``states`` maps the plant's own state codes
(integers or strings) to twin states; ``null`` means "no information" (e.g. a PLC starting up). A
unit may carry its own ``states``. ``products`` optionally maps plant product codes to product
names. Counters wrap at ``wrap`` (the next value after ``wrap - 1`` is 0): ``count`` counts the
units a unit made, ``done`` its finished batches, ``scrap`` (optional) the units it scrapped and
``reject`` (optional) the units of the batches it rejected whole. While ``alarm`` is true the unit counts as ``down``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin.errors import Problem, SpecError
from twin.eventlog import STATES
from twin.spec.loader import parse_yaml, read_text
from twin.spec.model import LineSpec

Code = int | str

_KNOWN_CODES = {"processing": 1, "setup": 2, "down": 3, "starved": 4, "blocked": 5, "idle": 6}


def default_state_codes() -> dict[int, str | None]:
    """PLC-style integer codes for every twin state (``0`` = no information); new states get 10, 11, ..."""
    codes: dict[int, str | None] = {0: None}
    extra = 10
    for state in STATES:
        if state in _KNOWN_CODES:
            codes[_KNOWN_CODES[state]] = state
        else:
            codes[extra] = state
            extra += 1
    return dict(sorted(codes.items()))


class Counter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tag: str
    wrap: int = Field(default=2**32, ge=2)


class Heartbeat(Counter):
    wrap: int = Field(default=2**16, ge=2)


def _counter(value: Any) -> Any:
    return {"tag": value} if isinstance(value, str) else value


class UnitTags(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    state: str
    done: Counter
    batch: str | None = None
    product: str | None = None
    count: Counter | None = None
    scrap: Counter | None = None
    reject: Counter | None = None
    alarm: str | None = None
    states: dict[Code, str | None] | None = None

    _c1 = field_validator("done", "count", "scrap", "reject", mode="before")(_counter)

    def tags(self) -> dict[str, str]:
        """role -> tag of every tag of the unit (the roles of ``connectors.opcua.roles``)."""
        from connectors.opcua.roles import unit_roles  # the roles table reads this model

        return unit_roles(self)


class ReleaseTags(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    batch: str
    count: Counter | None = None

    _c = field_validator("count", mode="before")(_counter)


class TagMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    namespace: str
    line: str | None = None
    states: dict[Code, str | None]
    products: dict[Code, str] | None = None
    heartbeat: Heartbeat | None = None
    release: ReleaseTags | None = None
    stations: dict[str, list[UnitTags]]

    _h = field_validator("heartbeat", mode="before")(_counter)

    def units(self) -> list[tuple[str, int, UnitTags]]:
        return [(station, u, tags) for station, units in self.stations.items() for u, tags in enumerate(units)]

    def codes_for(self, unit: UnitTags) -> dict[Code, str | None]:
        return unit.states if unit.states is not None else self.states

    def all_tags(self) -> dict[str, str]:
        """tag -> role ("heartbeat", "release.batch", "station/unit.state", ...) of every tag in the map."""
        out: dict[str, str] = {}
        if self.heartbeat:
            out[self.heartbeat.tag] = "heartbeat"
        if self.release:
            out[self.release.batch] = "release.batch"
            if self.release.count:
                out[self.release.count.tag] = "release.count"
        for station, u, unit in self.units():
            for role, tag in unit.tags().items():
                out[tag] = f"{station}[{u}].{role}"
        return out


def _yaml_problems(err: ValidationError, source: str) -> list[Problem]:
    problems = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        problems.append(Problem(source, path, e["msg"]))
    return problems


def parse_tag_map(data: Any, source: str, spec: LineSpec | None = None) -> TagMap:
    """Validate map data (and check it against ``spec``); raises ``SpecError`` with every problem."""
    if not isinstance(data, dict):
        raise SpecError([Problem(source, "", "a tag map is a mapping (namespace, states, stations, ...)")])
    try:
        tags = TagMap.model_validate(data)
    except ValidationError as err:
        raise SpecError(_yaml_problems(err, source)) from None
    problems = []
    for where, codes in [("states", tags.states)] + [
        (f"stations.{s}[{u}].states", t.states) for s, u, t in tags.units() if t.states is not None
    ]:
        for code, state in codes.items():
            if state is not None and state not in STATES:
                problems.append(
                    Problem(source, f"{where}.{code}", f"unknown twin state {state!r} (states: {', '.join(STATES)})")
                )
    seen: dict[str, str] = {}
    roles = [("heartbeat", tags.heartbeat.tag)] if tags.heartbeat else []
    if tags.release:
        roles.append(("release.batch", tags.release.batch))
        if tags.release.count:
            roles.append(("release.count", tags.release.count.tag))
    roles += [(f"stations.{s}[{u}].{r}", tag) for s, u, t in tags.units() for r, tag in t.tags().items()]
    for where, tag in roles:
        if tag in seen:
            problems.append(Problem(source, where, f"tag {tag!r} is also used for {seen[tag]}"))
        seen.setdefault(tag, where)
    if spec is not None:
        problems += _spec_problems(tags, spec, source)
    if problems:
        raise SpecError(problems)
    return tags


def _spec_problems(tags: TagMap, spec: LineSpec, source: str) -> list[Problem]:
    problems = []
    names = [s.name for s in spec.stations]
    for station, units in tags.stations.items():
        if station not in names:
            problems.append(
                Problem(
                    source,
                    f"stations.{station}",
                    f"the spec {spec.name!r} has no station {station!r} (stations: {', '.join(names)})",
                )
            )
        elif len(units) != spec.station(station).units:
            problems.append(
                Problem(
                    source,
                    f"stations.{station}",
                    f"lists {len(units)} unit(s); the spec has {spec.station(station).units}",
                )
            )
    for name in names:
        if name not in tags.stations:
            problems.append(Problem(source, "stations", f"no tags for station {name!r} of the spec"))
    products = [p.name for p in spec.products]
    for code, product in (tags.products or {}).items():
        if product not in products:
            problems.append(
                Problem(source, f"products.{code}", f"unknown product {product!r} (products: {', '.join(products)})")
            )
    return problems


def load_tag_map(path: str | Path, spec: LineSpec | None = None) -> TagMap:
    """Read and validate a tag map file (``SpecError``, exit code 2, on any problem).

    The file is read within the limits of spec files (size, nesting, aliases: ``twin.spec.limits``).
    """
    path = Path(path)
    data, _ = parse_yaml(read_text(path, "tag map"), str(path))
    return parse_tag_map(data, str(path), spec)


def tag_prefix(station: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", station).upper()


def plc_namespace(spec: LineSpec) -> str:
    return f"urn:twin:plc:{spec.name}"


def default_tag_map(spec: LineSpec) -> dict[str, Any]:
    """The emulator's PLC tag layout for a spec, as tag-map data (what ``twin emulate --write-map`` writes)."""
    stations: dict[str, list[dict[str, Any]]] = {}
    for station in spec.stations:
        units = []
        for u in range(station.units):
            p = f"{tag_prefix(station.name)}_U{u + 1}"
            units.append(
                {
                    "state": f"{p}_STATE",
                    "batch": f"{p}_BATCH",
                    "product": f"{p}_PRODUCT",
                    "count": {"tag": f"{p}_GOOD", "wrap": 2**32},
                    "done": {"tag": f"{p}_DONE", "wrap": 2**16},
                    "scrap": {"tag": f"{p}_SCRAP", "wrap": 2**32},
                    "reject": {"tag": f"{p}_REJECT", "wrap": 2**32},
                    "alarm": f"{p}_ALARM",
                }
            )
        stations[station.name] = units
    return {
        "line": spec.name,
        "namespace": plc_namespace(spec),
        "states": default_state_codes(),
        "heartbeat": {"tag": "PLC_HEARTBEAT", "wrap": 2**16},
        "release": {"batch": "LINE_RELEASE_BATCH", "count": {"tag": "LINE_RELEASE_COUNT", "wrap": 2**32}},
        "stations": stations,
    }


def dump_tag_map(data: dict[str, Any], header: str = "") -> str:
    """YAML text of map data, one unit a line."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    body = {k: v for k, v in data.items() if k != "stations"}
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=200)
    lines.append(text.rstrip())
    lines.append("stations:")
    for station, units in data["stations"].items():
        lines.append(f"  {station}:")
        for unit in units:
            lines.append("    - " + yaml.safe_dump(unit, default_flow_style=True, sort_keys=False, width=400).strip())
    return "\n".join(lines) + "\n"


def tag_map_text(tags: TagMap) -> str:
    """YAML text of a map (state codes keep their types); ``parse_tag_map(yaml.safe_load(text), ...)`` reads it."""
    return dump_tag_map(tags.model_dump(mode="python", exclude_none=True))
