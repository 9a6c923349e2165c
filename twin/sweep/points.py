"""The points of a sweep: a full-factorial grid of ``--grid`` axes, or the rows of a scenarios CSV.

    >>> [p.name for p in grid_points(["stations.press.units=1,2", "stations.m2.buffer=0..1"])]
    ['units=1, buffer=0', 'units=1, buffer=1', 'units=2, buffer=0', 'units=2, buffer=1']
    >>> points = csv_points("scenarios.csv")     # one row a point; columns are dotted paths, optional `name`

An axis is ``PATH=V1,V2,...`` (values are YAML, as in ``--set``; commas inside brackets or braces
belong to the value) or ``PATH=A..B`` / ``PATH=A..B..STEP`` for whole numbers from A to B
inclusive. A point carries, with each of its assignments, where it came from, so that a bad value
is reported as ``--grid stations.m2.buffer=0..8`` or ``scenarios.csv:4``.
"""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from twin.errors import InputError

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*(?:\.\.\s*(-?\d+)\s*)?$")
NAME_COLUMN = "name"


@dataclass(frozen=True)
class Point:
    """One scenario of a sweep: a name and its ``path=value`` assignments, each with its origin."""

    name: str
    assignments: tuple[tuple[str, str], ...]  # (path, value text)
    origins: tuple[str, ...] = ()  # where each assignment came from, for messages

    @property
    def overrides(self) -> tuple[str, ...]:
        return tuple(f"{path}={value}" for path, value in self.assignments)


def split_values(text: str) -> list[str]:
    """Split ``a, {x: 1, y: 2}, [3, 4]`` at the commas outside brackets and braces."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def parse_axis(text: str) -> tuple[str, list[str]]:
    """``PATH=V1,V2`` or ``PATH=A..B[..STEP]`` -> (path, [value text, ...])."""
    path, sep, body = text.partition("=")
    path = path.strip()
    if not sep or not path or not body.strip():
        raise InputError(f"--grid {text!r}: expected PATH=V1,V2,... or PATH=A..B (e.g. stations.m2.buffer=0..8)")
    match = _RANGE.match(body)
    if match:
        low, high, step = int(match[1]), int(match[2]), int(match[3] or 1)
        if step <= 0 or high < low:
            raise InputError(f"--grid {text!r}: a range A..B[..STEP] needs A <= B and STEP >= 1")
        return path, [str(v) for v in range(low, high + 1, step)]
    values = split_values(body)
    if any(not v for v in values):
        raise InputError(f"--grid {text!r}: an empty value (two commas in a row, or a comma at the end)")
    if len(set(values)) != len(values):
        raise InputError(f"--grid {text!r}: a value is given twice")
    return path, values


def short_labels(paths: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each path that tells it apart from the others."""
    labels = {}
    for path in paths:
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            label = ".".join(parts[-n:])
            if not any(other != path and other.split(".")[-n:] == parts[-n:] for other in paths):
                break
        labels[path] = label
    return labels


def _name(assignments: tuple[tuple[str, str], ...], labels: dict[str, str]) -> str:
    return ", ".join(f"{labels[p]}={v}" for p, v in assignments) or "baseline"


def grid_points(axes: list[str]) -> list[Point]:
    """The full factorial of the axes (the first axis varies slowest); no axes, no points."""
    if not axes:
        return []
    parsed = [parse_axis(a) for a in axes]
    paths = [p for p, _ in parsed]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise InputError(f"--grid {twice[0]}: the same path is given twice")
    labels = short_labels(paths)
    origins = tuple(f"--grid {text.strip()}" for text in axes)
    points = []
    for combo in itertools.product(*(values for _, values in parsed)):
        assignments = tuple(zip(paths, combo, strict=True))
        points.append(Point(_name(assignments, labels), assignments, origins))
    return points


def csv_points(path: str | Path) -> list[Point]:
    """One point per row of a CSV file: columns are dotted paths, plus an optional ``name`` column.

    An empty cell leaves that field as the spec has it.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot be read as CSV ({err.__class__.__name__}: {err})") from None
    rows = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path}: empty; expected a header of dotted paths and one scenario a row")
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    if any(not h for h in header) or len(set(header)) != len(header):
        raise InputError(f"{path}:1: every column needs a header, each one different (got {', '.join(header)})")
    columns = [h for h in header if h != NAME_COLUMN]
    if not columns:
        raise InputError(f"{path}:1: no column of dotted paths (e.g. stations.press.units)")
    if not body:
        raise InputError(f"{path}: no scenario rows under the header")
    labels = short_labels(columns)
    points, names = [], {}
    for line, row in body:
        if len(row) != len(header):
            raise InputError(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
        cells = dict(zip(header, (c.strip() for c in row), strict=True))
        assignments = tuple((c, cells[c]) for c in columns if cells[c])
        name = cells.get(NAME_COLUMN) or _name(assignments, labels)
        if name in names:
            raise InputError(f"{path}:{line}: scenario name {name!r} already used on line {names[name]}")
        names[name] = line
        points.append(Point(name, assignments, tuple(f"{path}:{line}" for _ in assignments)))
    return points


def combine(first: list[Point], second: list[Point]) -> list[Point]:
    """Every point of ``first`` with every point of ``second`` (scenarios crossed with a grid)."""
    if not first or not second:
        return first or second
    return [
        Point(_joined(a, b), a.assignments + b.assignments, a.origins + b.origins)
        for a, b in itertools.product(first, second)
    ]


def _joined(a: Point, b: Point) -> str:
    """The name of two points crossed: both names, or the one that changes something."""
    if not b.assignments:
        return a.name
    return b.name if not a.assignments and a.name == "baseline" else f"{a.name}; {b.name}"
