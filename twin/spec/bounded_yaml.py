"""YAML read within bounds: nesting, values after alias expansion and number lengths are capped.

    >>> node = compose_bounded(text, "line.yaml")      # SpecError past a limit, or on malformed YAML
    >>> data = construct_bounded(node, "line.yaml")
    >>> value = parse_value("{dist: gamma, mean: 2 h, sd: 30 min}", "--set stations.m1.process_time=...")

A "billion laughs" document (aliases of aliases) composes into a small graph of nodes but expands
to billions of values for whatever walks it; the expansion is counted on the graph, each node
once, before anything walks it. A recursive alias (a node that contains itself) is refused too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from twin.errors import Problem, SpecError
from twin.spec.limits import MAX_DEPTH, MAX_NODES, MAX_NUMBER_CHARS

_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Refused(Exception):
    """Input past a limit (not malformed YAML): always an error, never read as a plain string."""

    def __init__(self, message: str, mark: yaml.Mark | None):
        super().__init__(message)
        self.message, self.line = message, (mark.line + 1 if mark is not None else None)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth and a node budget while composing, and short numbers only."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
            if self._nodes > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES:,} values", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            raise _Refused(f"a number of {len(node.value):,} characters (at most {MAX_NUMBER_CHARS})", node.start_mark)
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as err:  # e.g. a date such as 0000-01-01
            text = node.value if isinstance(node.value, str) else node.tag
            raise _Refused(f"cannot read {text[:40]!r} ({err})", node.start_mark) from None


def _problem(source: str, message: str, line: int | None) -> SpecError:
    return SpecError([Problem(source, "", message, line)])


@contextmanager
def _reported(source: str) -> Iterator[None]:
    """Turn a refusal or a YAML error inside the block into a one-line ``SpecError`` naming ``source``."""
    try:
        yield
    except _Refused as err:
        raise _problem(source, err.message, err.line) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = " ".join(str(x) for x in (err.context, err.problem) if x)
        raise _problem(source, f"malformed YAML: {what}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise _problem(source, f"malformed YAML: {err}", None) from None


def compose_bounded(text: str, source: str) -> yaml.Node | None:
    """The node graph of one YAML document; ``SpecError`` for malformed YAML or input past a limit."""
    with _reported(source):
        return _compose(text)


def _compose(text: str) -> yaml.Node | None:
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as err:  # PyYAML checks the whole text for characters it refuses
        line = text.count("\n", 0, err.position)
        mark = yaml.Mark("", err.position, line, 0, None, None)
        message = f"contains a control character ({_char(err.character)}) that YAML does not allow"
        raise _Refused(message, mark) from None
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is not None:
        check_expansion(node)
    return node


def _char(character: Any) -> str:
    code = ord(character) if isinstance(character, str) else int(character)
    return f"U+{code:04X}"


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand past ``MAX_NODES`` values or ``MAX_DEPTH`` levels, or loop.

    Each node is visited once (sizes and depths are remembered), so the check costs as much as the
    graph, not as its expansion.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        children = _children(node)
        if leaving:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES:
                raise _Refused(f"aliases expand to more than {MAX_NODES:,} values", node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise _Refused(f"aliases expand to more than {MAX_DEPTH} levels of nesting", node.start_mark)
            continue
        if key in size:
            continue
        if key in on_path:
            raise _Refused("an alias refers to a value that contains it (a loop)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def construct_bounded(node: yaml.Node, source: str) -> Any:
    """Plain data from a node graph checked by ``compose_bounded``; ``SpecError`` for unreadable values."""
    with _reported(source):
        return _construct(node)


def _construct(node: yaml.Node) -> Any:
    constructor = _BoundedLoader("")
    try:
        return constructor.construct_document(node)
    finally:
        constructor.dispose()


def parse_value(text: str, source: str) -> Any:
    """A ``--set`` value read as YAML; text that is not YAML stays a string, input past a limit is refused."""
    try:
        node = _compose(text)
        return None if node is None else _construct(node)
    except _Refused as err:
        raise _problem(source, err.message, None) from None
    except yaml.YAMLError:
        return text.strip()
