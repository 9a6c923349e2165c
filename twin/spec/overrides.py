"""What-if overrides: ``stations.press.units=2`` style assignments applied to spec data.

    >>> data, origins = apply_overrides(spec.to_data(), ["stations.m2.buffer=4"])

Path segments name list items by their ``name`` (``stations.m2``) or by index (``stations.1``, never
negative); values are read as YAML within the limits of spec files (``4``, ``45 min``,
``{dist: exponential, mean: 2 h}``); ``null`` removes a field so that its default applies (an empty
value is refused).

An override that replaces a whole group of fields (``stations.coating.setup.*->*=4 h`` where the spec
says ``{major_clean: true, line_clearance: true}``) drops the fields it does not repeat; it warns
(``OverrideWarning``, one line in the CLI) naming them and the path that changes one field only.
A distribution counts as one value: replacing it warns about nothing.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from twin.errors import Problem, SpecError
from twin.spec.bounded_yaml import parse_value
from twin.spec.limits import MAX_DEPTH

Loc = tuple[str | int, ...]


class OverrideWarning(UserWarning):
    """An override replaced a group of fields and dropped some of them; ``str()`` is the line a user reads."""


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``path=value`` and read the value as YAML."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise SpecError([Problem(set_label(text), "", "expected PATH=VALUE, e.g. stations.m2.buffer=4")])
    if not raw.strip():
        raise SpecError([Problem(set_label(text), "", "no value after '='; write null to remove a field")])
    return path, parse_value(raw, set_label(text))


def set_label(text: str) -> str:
    """How a problem names an override: ``--set TEXT``, shortened to one readable line."""
    text = text if len(text) <= 80 else text[:77] + "..."
    return "--set " + "".join(c if c.isprintable() else "?" for c in text)


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[Loc, str]]]:
    """Return a copy of ``data`` with the overrides applied, and where each one landed.

    Raises ``SpecError`` naming every override whose path does not exist.
    """
    result, origins, problems = apply_overrides_collecting(data, overrides)
    if problems:
        raise SpecError(problems)
    return result, origins


def apply_overrides_collecting(
    data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[Loc, str]], list[Problem]]:
    """Like ``apply_overrides``, but returns the problems of the overrides that could not apply."""
    problems: list[Problem] = []
    if isinstance(overrides, Mapping):
        pairs = [(path, value, set_label(f"{path}={value}")) for path, value in overrides.items()]
    else:
        pairs = []
        for text in overrides:
            try:
                pairs.append((*parse_assignment(text), set_label(text)))
            except SpecError as err:
                problems.extend(err.problems)
    if not pairs and not problems:
        return data, [], []
    result = copy.deepcopy(data)
    origins: list[tuple[Loc, str]] = []
    for path, value, label in pairs:
        try:
            loc, replaced = _assign(result, path.split("."), value)
        except LookupError as err:
            problems.append(Problem(label, path if len(path) <= 80 else path[:77] + "...", str(err.args[0])))
            continue
        origins.append((loc, label))
        _warn_dropped(label, path, replaced, value)
    return result, origins, problems


def _warn_dropped(label: str, path: str, old: Any, new: Any) -> None:
    """Warn when ``new`` replaces the group of fields ``old`` and leaves some of them out."""
    if not isinstance(old, dict) or "dist" in old or new is None:
        return
    dropped = [str(k) for k in old if not isinstance(new, dict) or k not in new]
    if dropped:
        one = f"{path}.{dropped[0]}=..."
        warnings.warn(
            OverrideWarning(
                f"{label} replaces all of {path} and drops {', '.join(dropped)} "
                f"(was {yaml.safe_dump(old, default_flow_style=True, sort_keys=False, width=10**6).strip()}); "
                f"to change one field only, set it alone (e.g. {one})"
            ),
            stacklevel=3,
        )


def _assign(data: dict[str, Any], parts: list[str], value: Any) -> tuple[Loc, Any]:
    """Set ``value`` at the dotted path; where it landed, and the value it replaced (None if none)."""
    if len(parts) > MAX_DEPTH:
        raise LookupError(f"path of more than {MAX_DEPTH} segments")
    node: Any = data
    replaced: Any = None
    loc: list[str | int] = []
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if not part:
            raise LookupError("empty segment in path")
        if isinstance(node, list):
            index = _item_index(node, part, loc)
            loc.append(index)
            if last:
                replaced, node[index] = node[index], value
            else:
                node = node[index]
        elif isinstance(node, dict):
            loc.append(part)
            if last:
                replaced = node.get(part)
                if value is None:
                    node.pop(part, None)
                else:
                    node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            where = ".".join(str(p) for p in loc) or "the spec"
            raise LookupError(f"{where} is a value, not a group of fields")
    return tuple(loc), replaced


def _item_index(items: list[Any], key: str, loc: list[str | int]) -> int:
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == key:
            return index
    number = key.removeprefix("-")
    if number.isascii() and number.isdigit():
        if key.startswith("-"):
            raise LookupError(f"negative index {key!r}: use 0..{len(items) - 1} or a name")
        if len(number) <= 9 and int(number) < len(items):
            return int(number)
    names = [item.get("name") for item in items if isinstance(item, dict) and "name" in item]
    group = str(loc[-1]) if loc else "items"
    kind = group[:-1] if group.endswith("s") else group
    if names:
        raise LookupError(f"no {kind} named {key!r} ({group}: {', '.join(map(str, names))})")
    raise LookupError(f"no item {key!r} in {group} (indexes 0..{len(items) - 1})")
