"""What every batch rule declares about itself (each rule module has one or two ``RULE`` values).

    >>> RULE = Rule("qc", "QC release", ("qc",), lambda spec: spec.qc is not None, (Event.QUARANTINE, ...))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twin.spec.model import LineSpec


@dataclass(frozen=True)
class Rule:
    """One batch rule: its name, what a person calls it, the spec fields that make it, its test, and
    the events it writes into the log (besides the ones every line writes)."""

    name: str
    label: str
    fields: tuple[str, ...]
    used: Callable[[LineSpec], bool]
    events: tuple[str, ...] = ()
