"""User-facing errors: one family that the CLI turns into clear messages and exit code 2.

>>> raise SpecError([Problem("line.yaml", "stations[1].buffer", "must be >= 0 (got -1)")])
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it came from, which field, what was expected."""

    source: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class TwinError(Exception):
    """Base of every error caused by user input. ``str(err)`` is what the user reads."""


class SpecError(TwinError):
    """A line spec (file, dict or override) has one or more problems; all are listed."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(TwinError):
    """Any other bad input: a missing run folder, a malformed option, an unknown model."""


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an interrupt, so that a run cleans up as after Ctrl-C (exit code 143)."""
