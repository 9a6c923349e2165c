"""The calibrated spec file: the user's own file with the new values put in place, each with its provenance.

    >>> text = calibrated_text(original, [Edit(("stations", "press", "failures", "mtbf"),
    ...                                        {"dist": "exponential", "mean": "81.3 h"}, "calibrated ...")])
    >>> write_atomically(Path("calibrated.yaml"), text)

Only the text of each changed value is replaced (found through the YAML parser's positions), so
everything else in the file (comments, order, quoting, flow or block style, blank lines) stays
byte for byte. A new value is written in flow style (``{dist: gamma, mean: 1.52 h, sd: 18 min}``);
its provenance goes at the end of its line where the line is free, else on a comment line above
the key. A value the file does not have yet (a default) is added to its mapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from twin import files
from twin.errors import InputError


@dataclass(frozen=True)
class Edit:
    path: tuple[str, ...]  # YAML path; list items by name (or index)
    value: Any
    comment: str


def render(value: Any) -> str:
    """A value as inline (flow) YAML."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render(str(k))}: {render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return np.format_float_positional(value, trim="-")
    text = str(value)
    try:
        plain = yaml.safe_load(text) == text and not re.search(r"[:#{}\[\],&*!|>'\"%@`]", text)
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def _same_key(yaml_key: str, part: str) -> bool:
    if "->" in yaml_key or "->" in part:
        return "->".join(p.strip() for p in yaml_key.split("->")) == "->".join(p.strip() for p in part.split("->"))
    return yaml_key == part


def _find_key(mapping: yaml.MappingNode, part: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key, value in mapping.value:
        if isinstance(key, yaml.ScalarNode) and _same_key(str(key.value), part):
            return key, value
    return None


def _find_item(sequence: yaml.SequenceNode, part: str) -> yaml.Node | None:
    for item in sequence.value:
        if isinstance(item, yaml.MappingNode):
            name = _find_key(item, "name")
            if name is not None and isinstance(name[1], yaml.ScalarNode) and name[1].value == part:
                return item
    if part.isdigit() and int(part) < len(sequence.value):
        return sequence.value[int(part)]
    return None


def _content_end(node: yaml.Node) -> int:
    """Where a node's own text ends (a block collection's end mark runs on over blank lines)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return node.end_mark.index
    children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
    return max((_content_end(c) for c in children), default=node.start_mark.index)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _indent(text: str, line_start: int) -> str:
    return re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]


def _comments_in(text: str) -> list[str]:
    """Comments found in a piece of YAML text (to keep those of a value that is replaced)."""
    found = []
    for line in text.splitlines():
        match = re.search(r"(?:^|\s)#\s?(.*)$", line)
        if match:
            found.append(match.group(1).rstrip())
    return found


def _nest(parts: tuple[str, ...], value: Any) -> Any:
    for part in reversed(parts):
        value = {part: value}
    return value


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class _Plan:
    """Text changes collected over all edits, applied from the end of the file backwards."""

    def __init__(self, text: str, source: str):
        self.text, self.source = text, source
        self.changes: list[tuple[int, int, str]] = []  # start, end, new text
        self.above: dict[int, list[str]] = {}  # line start -> comment lines to put above it
        self.inserts: dict[tuple[int, str], tuple[yaml.MappingNode, dict[str, Any], list[str], int]] = {}

    def comment_above(self, line_start: int, comments: list[str]) -> None:
        self.above.setdefault(line_start, []).extend(c for c in comments if c)

    def apply(self) -> str:
        text = self.text
        changes = list(self.changes)
        for (_, key), (mapping, value, comments, anchor) in self.inserts.items():
            changes.append(self._insertion(mapping, key, value[key], comments, anchor))
        for line_start, comments in self.above.items():
            indent = _indent(text, line_start)
            changes.append((line_start, line_start, "".join(f"{indent}# {c}\n" for c in comments)))
        # apply the new text from the end of the file backwards, so positions stay valid
        changes.sort(key=lambda c: (c[0], c[1]), reverse=True)
        for (_, end, _), (next_start, _, _) in zip(changes[1:], changes[:-1], strict=True):
            if end > next_start:
                raise InputError(f"{self.source}: two calibrated values overlap in the file; nothing was written")
        for start, end, new in changes:
            text = text[:start] + new + text[end:]
        return text

    def _insertion(
        self, mapping: yaml.MappingNode, key: str, value: Any, comments: list[str], anchor: int
    ) -> tuple[int, int, str]:
        text = self.text
        entry = f"{render(key)}: {render(value)}"
        if mapping.flow_style or not mapping.value:
            close = mapping.end_mark.index - 1
            if text[close] != "}":
                line = mapping.start_mark.line + 1
                raise InputError(f"{self.source}:{line}: cannot add {key!r} to this mapping")
            self.comment_above(anchor, comments)
            return close, close, (", " if mapping.value else "") + entry
        indent = " " * mapping.value[0][0].start_mark.column
        position = _line_end(text, _content_end(mapping))
        lines = "".join(f"\n{indent}# {c}" for c in comments if c)
        return position, position, f"{lines}\n{indent}{entry}"


def calibrated_text(text: str, edits: Sequence[Edit], header: Sequence[str] = (), source: str = "spec") -> str:
    """``text`` (a spec file) with each edit's value put in and its comment beside it."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise InputError(f"{source}: not a spec (a YAML mapping)")
    plan = _Plan(text, source)
    for edit in edits:
        _plan_edit(plan, root, edit)
    result = plan.apply()
    if header:
        result = "".join(f"# {line}\n" for line in header) + result
    return result


def _plan_edit(plan: _Plan, root: yaml.MappingNode, edit: Edit) -> None:
    text = plan.text
    node: yaml.Node = root
    anchor: int | None = None  # start of the line of the innermost block key (or block list item) on the path
    key_node: yaml.Node | None = None
    for depth, part in enumerate(edit.path):
        if isinstance(node, yaml.MappingNode):
            found = _find_key(node, part)
            if found is None:
                rest = edit.path[depth:]
                slot = (id(node), rest[0])
                if slot in plan.inserts:
                    _, value, comments, _ = plan.inserts[slot]
                    _merge(value, _nest(rest, edit.value))
                    comments.append(edit.comment)
                else:
                    where = anchor if anchor is not None else _line_start(text, node.start_mark.index)
                    plan.inserts[slot] = (node, _nest(rest, edit.value), [edit.comment], where)
                return
            key_node, value_node = found
            if not node.flow_style:
                anchor = _line_start(text, key_node.start_mark.index)
            if value_node.start_mark.index < key_node.end_mark.index:
                where = ".".join(edit.path)
                raise InputError(f"{plan.source}: {where} is a YAML alias; write the value out to calibrate it")
            node = value_node
        elif isinstance(node, yaml.SequenceNode):
            item = _find_item(node, part)
            if item is None:
                raise InputError(f"{plan.source}: no item {part!r} at {'.'.join(edit.path[:depth])}")
            if not node.flow_style:
                anchor = _line_start(text, item.start_mark.index)
            node = item
        else:
            raise InputError(f"{plan.source}: {'.'.join(edit.path[:depth])} is a value, not a group of fields")
    assert key_node is not None and anchor is not None
    new = render(edit.value)
    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        start, end = node.start_mark.index, node.end_mark.index
    else:  # a block mapping or list: replace everything after the key's colon, keep its comments
        start = text.index(":", key_node.end_mark.index) + 1
        end = _content_end(node)
        new = " " + new
        kept = _comments_in(text[start : _line_end(text, end)])
        if kept:
            plan.comment_above(anchor, kept)
    plan.changes.append((start, end, new))
    rest_of_line = text[end : _line_end(text, end)]
    on_anchor_line = _line_start(text, start) == anchor and _line_start(text, end) == anchor
    if not edit.comment:
        return
    if on_anchor_line and not rest_of_line.strip():
        plan.changes.append((end, end + len(rest_of_line), f"  # {edit.comment}"))
    else:
        plan.comment_above(anchor, [edit.comment])


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one step (a temporary file beside it, then a rename), with the umask's mode."""
    files.write_atomically(path, text)
