"""Parse ``-s "NAME: path=value, path=value"`` scenario options.

    >>> parse_scenario("second coater: stations.coating.units=2, stations.coating.buffer=3")
    ('second coater', ['stations.coating.units=2', 'stations.coating.buffer=3'])

Commas inside brackets or braces belong to the value (``{dist: gamma, mean: 2 h, sd: 1 h}``).
"""

from __future__ import annotations

from twin.errors import InputError


def parse_scenario(text: str) -> tuple[str, list[str]]:
    """Split a scenario option into its name and its ``path=value`` assignments."""
    name, sep, body = text.partition(":")
    name = name.strip()
    if not sep or not name or "=" in name:
        raise InputError(f'-s {text!r}: expected "NAME: path=value, path=value"')
    parts, depth, current = [], 0, ""
    for char in body:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    assignments = [p.strip() for p in parts if p.strip()]
    if not assignments:
        raise InputError(f"-s {text!r}: scenario {name!r} changes nothing (add path=value pairs)")
    bad = [a for a in assignments if "=" not in a]
    if bad:
        raise InputError(f"-s {text!r}: {bad[0]!r} is not path=value")
    return name, assignments
