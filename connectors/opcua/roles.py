"""OPC-UA tag roles in one table: what each tag of a tag map means, its OPC-UA type, and how it is read.

    >>> [r.name for r in ROLES if r.level == "unit"]   # state, done, batch, product, count, scrap, reject, alarm
    >>> unit_roles(unit_tags)                          # role -> tag of one unit of a map
    >>> expected_types(tag_map)                        # tag -> "integer" | "string" | "boolean" (the sync checks)
    >>> unit_state(tag_map, unit_tags, {"state": 4, "alarm": False})   # "starved": the Live page's rule

Adding a role touches this table (and the field of ``tagmap.UnitTags`` or ``ReleaseTags`` it names):
the sync's type check, the plant-log decoder's dispatch, the Live page and the emulator (the tags it
declares, their types, and the values each change of its run writes) loop over it. ``variant``
is the OPC-UA type the emulator gives the tag (counters: the smallest unsigned type that holds the
wrap); ``family`` what the sync accepts from a plant (any integer type for a counter, since a PLC's
counters are UInt16, UInt32 or Int64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua

from connectors.opcua.tagmap import TagMap, UnitTags

GOOD_MASK = 0xC0000000


def batch_id(batch: int) -> str:
    """The plant's name of engine batch ``batch`` (as the emulator publishes it)."""
    return f"B{batch + 1:06d}"


@dataclass
class Publishing:
    """What the emulator knows when it encodes a value: the unit's state codes, the product codes, the
    batches released so far."""

    state_code: dict[str, Any] = field(default_factory=dict)
    product_code: dict[str, Any] = field(default_factory=dict)
    released: int = 0


@dataclass(frozen=True)
class Role:
    """One tag role: its name (the map's key), level (unit or line), type family and what it means; and how
    the emulator publishes it: the ``LiveLine`` change that writes it (``field``; None: the emulator's own
    clock) and the value a change's value becomes (``encode``; counters then wrap)."""

    name: str
    level: str  # "unit" or "line"
    family: str  # "integer", "string", "boolean", "code" (integer or string, as the map's codes are), "product"
    counter: bool  # a wrapping counter (the map gives its wrap)
    required: bool
    meaning: str
    field: str | None = None
    encode: Callable[[Publishing, Any], Any] = lambda _p, v: v


ROLES: tuple[Role, ...] = (
    Role("state", "unit", "code", False, True, "the unit's state code (the map's `states` give its twin state)",
         "state", lambda p, state: p.state_code[state]),
    Role("done", "unit", "integer", True, True, "finished batches; each step is a `finish` of the batch held",
         "batches_done"),
    Role("batch", "unit", "string", False, False, "the plant's id of the batch the unit holds",
         "batch", lambda _p, batch: batch_id(batch)),
    Role("product", "unit", "product", False, False, "the product code of that batch (optional for one product)",
         "product", lambda p, product: p.product_code.get(product, product)),
    Role("count", "unit", "integer", True, False, "good units made; counted over each batch's interval",
         "produced", lambda _p, units: round(units)),
    Role("scrap", "unit", "integer", True, False, "units scrapped; each step a `scrap` row",
         "loss.scrap", lambda _p, units: round(units)),
    Role("reject", "unit", "integer", True, False, "units of batches rejected whole; each step a `reject` row",
         "loss.reject", lambda _p, units: round(units)),
    Role("alarm", "unit", "boolean", False, False, "while true the unit counts as `down`",
         "state", lambda _p, state: state == "down"),
    Role("heartbeat", "line", "integer", True, False, "a counter the PLC steps every second (lost values show)"),
    Role("release.batch", "line", "string", False, False, "the last batch released into the line",
         "released", lambda _p, released: batch_id(released[0])),
    Role("release.count", "line", "integer", True, False, "batches released (missed releases show)",
         "released", lambda p, _released: p.released),
)  # fmt: skip
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


def wrap_of(tags: TagMap, unit: UnitTags | None, role: Role) -> int | None:
    """The wrap of a counter role's tag (None for other roles)."""
    if not role.counter:
        return None
    if role.level == "unit":
        return getattr(unit, role.name).wrap
    return tags.heartbeat.wrap if role.name == "heartbeat" else tags.release.count.wrap


def int_type(wrap: int) -> ua.VariantType:
    """The smallest unsigned OPC-UA integer type that holds a counter wrapping at ``wrap``."""
    return ua.VariantType.UInt16 if wrap <= 2**16 else ua.VariantType.UInt32 if wrap <= 2**32 else ua.VariantType.UInt64


def emulated_type(tags: TagMap, unit: UnitTags | None, role: Role) -> tuple[ua.VariantType, Any]:
    """The OPC-UA type the emulator gives a role's tag and its value before anything happened."""
    V = ua.VariantType
    if role.counter:
        return int_type(wrap_of(tags, unit, role)), 0
    if role.family == "code":
        codes = tags.codes_for(unit)
        string_codes = any(isinstance(c, str) for c in tags.states)
        no_info = next((c for c, state in codes.items() if state is None), "" if string_codes else 0)
        return (V.String if isinstance(no_info, str) else V.Int16), no_info
    if role.family == "product":
        numeric = bool(tags.products) and all(isinstance(c, int) for c in tags.products)
        return (V.Int16, 0) if numeric else (V.String, "")
    if role.family == "boolean":
        return V.Boolean, False
    return V.String, ""


def published(tags: TagMap, unit: UnitTags | None, context: Publishing, change_field: str, value: Any) -> list:
    """(tag, value) pairs the emulator writes for a change of ``change_field`` (``unit`` None: a line change)."""
    present = line_roles(tags) if unit is None else unit_roles(unit)
    out = []
    for name, tag in present.items():
        role = BY_NAME[name]
        if role.field == change_field:
            encoded = role.encode(context, value)
            wrap = wrap_of(tags, unit, role)
            out.append((tag, encoded % wrap if wrap else encoded))
    return out


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
