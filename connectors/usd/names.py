"""USD prim names from twin names: ``compounding-vessel`` -> ``compounding_vessel``, ``2nd`` -> ``_2nd``.

>>> prim_name("ibu+200")
'ibu_200'
>>> names = UniqueNames(); names("a-b"), names("a_b")
('a_b', 'a_b_1')
"""

from __future__ import annotations

import re

_INVALID = re.compile(r"[^A-Za-z0-9_]")


def prim_name(name: str) -> str:
    """A valid USD identifier for ``name``: other characters become ``_``; a leading digit gets a ``_``."""
    text = _INVALID.sub("_", name) or "_"
    return f"_{text}" if text[0].isdigit() else text


class UniqueNames:
    """Hands out valid, distinct prim names among siblings, even when two names sanitize alike."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def __call__(self, name: str) -> str:
        base = candidate = prim_name(name)
        n = 0
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._taken.add(candidate)
        return candidate
