"""Read a line spec from YAML and report every problem with file, line and field path.

    >>> spec = load_spec("plant_models/osd_tablet.yaml", overrides=["stations.coating.units=2"])
    >>> spec = spec_from_data(data, source="<dashboard form>")

Every failure is a ``SpecError`` listing one ``Problem`` per field.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from twin.errors import Problem, SpecError
from twin.spec.bounded_yaml import compose_bounded, construct_bounded
from twin.spec.distributions import DISTRIBUTIONS
from twin.spec.extensions import lift_deprecated
from twin.spec.limits import MAX_SPEC_BYTES
from twin.spec.model import LineSpec
from twin.spec.overrides import apply_overrides_collecting

Loc = tuple[str | int, ...]


def load_yaml(path: str | Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file into plain data and a map from field path to line number.

    Raises ``SpecError`` for a missing, oversized or unreadable file, malformed YAML, input beyond
    the limits of ``twin.spec.limits`` (nesting, aliases, numbers) or a key given twice.
    """
    return parse_yaml(read_text(path), str(path))


def read_text(path: str | Path, what: str = "spec") -> str:
    """The text of a spec-like file, read up to ``MAX_SPEC_BYTES`` (a device or a huge file is refused)."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([Problem(source, "", "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(source, "", f"is a folder, not a {what} file")]) from None
    except OSError as err:
        raise SpecError([Problem(source, "", f"cannot be read ({err.__class__.__name__}: {err.strerror})")]) from None
    if len(raw) > MAX_SPEC_BYTES:
        limit = f"{MAX_SPEC_BYTES // 1024} KiB"
        raise SpecError([Problem(source, "", f"larger than {limit}, the limit for a {what} file")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError([Problem(source, "", f"not UTF-8 text (byte 0x{raw[err.start]:02x})", line)]) from None


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; see ``load_yaml``."""
    data, lines, duplicates = _parse(text, source)
    if duplicates:
        raise SpecError(duplicates)
    return data, lines


def _parse(text: str, source: str) -> tuple[Any, dict[Loc, int], list[Problem]]:
    node = compose_bounded(text, source)
    lines: dict[Loc, int] = {}
    duplicates: list[Problem] = []
    if node is None:
        return None, lines, duplicates
    data = construct_bounded(node, source)
    _walk(node, (), lines, duplicates, source)
    return data, lines, duplicates


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[Problem], source: str) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line = key_node.start_mark.line + 1
                duplicates.append(Problem(source, format_loc((*loc, key)), "duplicate key", line))
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), lines, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), lines, duplicates, source)


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> LineSpec:
    """Load and validate a spec file, then apply ``--set`` style overrides.

    Raises ``SpecError`` listing every problem; a problem caused by an override names it.
    """
    source = str(path)
    data, lines, duplicates = _parse(read_text(path), source)
    return spec_from_data(data, source, lines, overrides, duplicates)


def spec_from_data(
    data: Any,
    source: str = "<spec>",
    lines: dict[Loc, int] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    extra_problems: Sequence[Problem] = (),
) -> LineSpec:
    """Validate plain data as a spec (after overrides); raise ``SpecError`` listing every problem."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise SpecError([Problem(source, "", f"expected a mapping of spec fields at top level (got {got})")])
    odd = [key for key in data if not isinstance(key, str)]  # pydantic fails on these at the top only
    if odd:
        raise SpecError([Problem(source, "", f"field names must be text (got {_short(key)})") for key in odd])
    lifted = lift_deprecated(data, LineSpec.model_fields, source)
    if lifted is not data and lines:  # an old top-level plug-in block: its lines move with it
        moved = set(lifted["extensions"]) - set(data.get("extensions") or {})
        lines = {(("extensions", *loc) if loc and loc[0] in moved else loc): n for loc, n in lines.items()}
    data, origins, override_problems = apply_overrides_collecting(lifted, overrides)
    extra_problems = [*extra_problems, *override_problems]
    try:
        spec = LineSpec.from_dict(data)
    except ValidationError as err:
        problems = problems_from_validation(err, source, lines or {}, origins)
        raise SpecError([*extra_problems, *problems]) from None
    if extra_problems:
        raise SpecError(extra_problems)
    return spec


def problems_from_validation(
    err: ValidationError, source: str, lines: dict[Loc, int], origins: Sequence[tuple[Loc, str]] = ()
) -> list[Problem]:
    """One readable ``Problem`` per pydantic error, with line numbers where the file has them.

    ``origins`` pairs the location each override set with its text, so that a problem in an
    overridden field names the override rather than the file.
    """
    errors = err.errors(include_url=False)
    problems = []
    for error in errors:
        loc = clean_loc(error["loc"])
        if error["type"] == "too_short" and any(
            clean_loc(e["loc"])[: len(loc)] == loc and e is not error for e in errors
        ):
            continue  # pydantic adds "too short" after the items themselves failed
        if error["type"] == "line_rules":  # several whole-line problems, each at its own path
            located = [(loc + tuple(sub), message) for sub, message in error["ctx"]["problems"]]
        else:
            located = [(loc, pydantic_message(error))]
        for at, message in located:
            origin = next((text for set_loc, text in reversed(origins) if _related(at, set_loc)), None)
            if origin:
                problems.append(Problem(origin, format_loc(at), message))
            else:
                problems.append(Problem(source, format_loc(at), message, _line_of(at, lines)))
    return problems


def _related(a: Loc, b: Loc) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop the internal union tags (``tag:...``) from a pydantic error location."""
    return tuple(part for part in loc if not (isinstance(part, str) and part.startswith("tag:")))


def format_loc(loc: Loc) -> str:
    """``('stations', 1, 'process_time', 'mean')`` -> ``stations[1].process_time.mean``."""
    text = ""
    for part in loc:
        if not isinstance(part, int):
            part = str(part)
            if len(part) > 64 or not part.isprintable():  # a hostile key: shown short, on one line
                part = repr(part[:61] + "..." if len(part) > 64 else part)
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def pydantic_message(error: Any, model: type[BaseModel] = LineSpec) -> str:
    """One pydantic error of ``model`` (LineSpec or a plug-in's block) as a short readable message."""
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = error["loc"][-1]
        close = difflib.get_close_matches(str(name), _all_field_names(model), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field {name!r}{hint}"
    if kind == "unknown_distribution":
        if isinstance(value, dict) and "dist" in value:
            return f"unknown distribution {value['dist']!r}; expected one of: {', '.join(DISTRIBUTIONS)}"
        return f"{error['msg']} (got {_short(value)})"
    if kind == "string_pattern_mismatch":
        return f"should be a name of letters, digits, '_', '+' and '-' (no spaces or dots) (got {_short(value)})"
    message = error["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for subject in ("Input", "Tuple", "List", "Dictionary", "String"):
        if message.startswith(f"{subject} should"):
            message = "should" + message[len(subject) + len(" should") :]
    if kind != "value_error" and _is_scalar(value):
        message += f" (got {_short(value)})"
    return message


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _all_field_names(root: type[BaseModel]) -> list[str]:
    names: set[str] = set()
    todo: list[type[BaseModel]] = [root]
    seen: set[type] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        names.update(model.model_fields)
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return sorted(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation, *annotation.__subclasses__()]
    found = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in(arg))
    for meta in getattr(annotation, "__metadata__", ()) or ():
        found.extend(_models_in(meta))
    return found
