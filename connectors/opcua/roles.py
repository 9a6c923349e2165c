"""OPC-UA tag roles in one table: what each tag of a tag map means, its OPC-UA type, and how it is read.

    >>> [r.name for r in ROLES if r.level == "unit"]   # state, done, batch, product, count, scrap, reject, alarm
    >>> unit_roles(unit_tags)                          # role -> tag of one unit of a map
    >>> expected_types(tag_map)                        # tag -> "integer" | "string" | "boolean" (the sync checks)
    >>> unit_state(tag_map, unit_tags, {"state": 4, "alarm": False})   # "starved": the Live page's rule

Adding a role touches this table (and the field of ``tagmap.UnitTags`` or ``ReleaseTags`` it names):
the sync's type check, the plant-log decoder's dispatch and the Live page loop over it. ``variant``
is the OPC-UA type the emulator gives the tag (counters: the smallest unsigned type that holds the
wrap); ``family`` what the sync accepts from a plant (any integer type for a counter, since a PLC's
counters are UInt16, UInt32 or Int64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.opcua.tagmap import TagMap, UnitTags

GOOD_MASK = 0xC0000000


@dataclass(frozen=True)
class Role:
    """One tag role: its name (the map's key), level (unit or line), type family and what it means."""

    name: str
    level: str  # "unit" or "line"
    family: str  # "integer", "string", "boolean", "code" (integer or string, as the map's codes are), "product"
    counter: bool  # a wrapping counter (the map gives its wrap)
    required: bool
    meaning: str


ROLES: tuple[Role, ...] = (
    Role("state", "unit", "code", False, True, "the unit's state code (the map's `states` give its twin state)"),
    Role("done", "unit", "integer", True, True, "finished batches; each step is a `finish` of the batch held"),
    Role("batch", "unit", "string", False, False, "the plant's id of the batch the unit holds"),
    Role("product", "unit", "product", False, False, "the product code of that batch (optional for one product)"),
    Role("count", "unit", "integer", True, False, "good units made; counted over each batch's interval"),
    Role("scrap", "unit", "integer", True, False, "units scrapped; each step a `scrap` row"),
    Role("reject", "unit", "integer", True, False, "units of batches rejected whole; each step a `reject` row"),
    Role("alarm", "unit", "boolean", False, False, "while true the unit counts as `down`"),
    Role("heartbeat", "line", "integer", True, False, "a counter the PLC steps every second (lost values show)"),
    Role("release.batch", "line", "string", False, False, "the last batch released into the line"),
    Role("release.count", "line", "integer", True, False, "batches released (missed releases show)"),
)
BY_NAME = {r.name: r for r in ROLES}
UNIT_ROLES = tuple(r for r in ROLES if r.level == "unit")
COUNTER_ROLES = frozenset(r.name for r in ROLES if r.counter)


def is_good(status: Any) -> bool:
    """True for an OPC-UA status code of severity Good."""
    return int(status) & GOOD_MASK == 0


def unit_roles(unit: UnitTags) -> dict[str, str]:
    """role -> tag of every tag of one unit."""
    out = {}
    for role in UNIT_ROLES:
        value = getattr(unit, role.name)
        if value:
            out[role.name] = value.tag if role.counter else value
    return out


def line_roles(tags: TagMap) -> dict[str, str]:
    """role -> tag of the line-level tags of a map."""
    out = {}
    if tags.heartbeat:
        out["heartbeat"] = tags.heartbeat.tag
    if tags.release:
        out["release.batch"] = tags.release.batch
        if tags.release.count:
            out["release.count"] = tags.release.count.tag
    return out


def counters(tags: TagMap) -> dict[str, tuple[str, int]]:
    """tag -> (role, wrap) of every counter of a map."""
    out = {}
    for role, tag in line_roles(tags).items():
        if role in COUNTER_ROLES:
            out[tag] = (role, tags.heartbeat.wrap if role == "heartbeat" else tags.release.count.wrap)
    for _s, _u, unit in tags.units():
        for role, tag in unit_roles(unit).items():
            if role in COUNTER_ROLES:
                out[tag] = (role, getattr(unit, role).wrap)
    return out


def _family(tags: TagMap, unit: UnitTags | None, role: Role) -> str:
    if role.family == "code":
        return "string" if all(isinstance(c, str) for c in tags.codes_for(unit)) else "integer"
    if role.family == "product":
        if not tags.products:
            return ""  # any type: names or codes the spec knows
        return "string" if all(isinstance(c, str) for c in tags.products) else "integer"
    return role.family


def expected_types(tags: TagMap) -> dict[str, str]:
    """tag -> the type family its OPC-UA data type must belong to ("integer", "string", "boolean")."""
    out: dict[str, str] = {}
    for name, tag in line_roles(tags).items():
        role = BY_NAME[name]
        if role.family != "string":  # a line's batch id may be of any type
            out[tag] = _family(tags, None, role)
    for _s, _u, unit in tags.units():
        for name, tag in unit_roles(unit).items():
            if name == "batch":
                continue
            family = _family(tags, unit, BY_NAME[name])
            if family:
                out[tag] = family
    return out


def unit_state(tags: TagMap, unit: UnitTags, values: dict[str, Any]) -> str | None:
    """The twin state of a unit from its tags' current values (role -> value): ``down`` while the alarm is
    on, else the state code mapped by the map (None: no information or an unknown code)."""
    if unit.alarm and bool(values.get("alarm")):
        return "down"
    code = values.get("state")
    try:
        return tags.codes_for(unit).get(code)
    except TypeError:  # an unhashable value
        return None


def roles_markdown() -> str:
    """The table of roles as Markdown (the docs' copy: ``python -m connectors.opcua.roles``)."""
    lines = ["| role | level | OPC-UA type | wraps | required | meaning |", "|---|---|---|---|---|---|"]
    for r in ROLES:
        family = {"code": "integer or string (as the map's codes)", "product": "as the map's product codes"}.get(
            r.family, r.family
        )
        lines.append(
            f"| `{r.name}` | {r.level} | {family} | {'yes' if r.counter else ''} | {'yes' if r.required else ''} "
            f"| {r.meaning} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(roles_markdown(), end="")
