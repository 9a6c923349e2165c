"""Release rules: batches are released only in the release calendar's working time and, under a WIP
limit (CONWIP), only while fewer than N released batches wait to start at the limit's station.

    rules = compile_release(spec)               # (calendar index, wip limit) of the spec
    gate = ReleaseGate(env, calendar, wip_limit)
    waited = yield from gate.wait()             # before the first station pulls the next batch
    gate.released(batch); gate.started(batch, station); gate.left(batch)
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from twin.engine.rules.calendar import WeeklyCalendar
from twin.engine.rules.rule import Rule
from twin.spec.model import LineSpec

RULE = Rule(
    "release_rules", "release calendar and WIP limit", ("release.calendar", "release.wip_limit"),
    lambda s: bool(s.release.calendar or s.release.wip_limit),
)  # fmt: skip


def compile_release(spec: LineSpec) -> tuple[int, tuple[int, int] | None]:
    """(index of the release calendar or -1, (batches, station index) of the WIP limit or None)."""
    calendar = list(spec.calendars).index(spec.release.calendar) if spec.release.calendar else -1
    limit = spec.release.wip_limit
    names = [s.name for s in spec.stations]
    return calendar, (limit.batches, names.index(limit.until)) if limit else None


class ReleaseGate:
    """When the next batch may be released."""

    def __init__(
        self, env: simpy.Environment, calendar: list[tuple[float, float]] | None, wip_limit: tuple[int, int] | None
    ) -> None:
        self.env, self.wip_limit = env, wip_limit
        self.calendar = WeeklyCalendar(calendar)
        self.active = calendar is not None or wip_limit is not None
        self.waiting: set[int] = set()  # released batches not yet started at the WIP limit's station
        self._freed = env.event()

    def wait(self) -> Generator[simpy.Event, Any, bool]:
        """Wait until the release calendar and the WIP limit allow the next release; True if it waited."""
        waited = False
        limit = self.wip_limit
        while True:
            now = self.env.now
            start = self.calendar.next_start(now)
            if start > now:
                waited = True
                yield self.env.timeout(start - now)
            elif limit is not None and len(self.waiting) >= limit[0]:
                waited = True
                yield self._freed
            else:
                return waited

    def released(self, batch: int) -> None:
        if self.wip_limit is not None:
            self.waiting.add(batch)

    def started(self, batch: int, station: int) -> None:
        """A batch starts at ``station``: it no longer counts towards the WIP limit there."""
        if self.wip_limit is not None and station == self.wip_limit[1]:
            self.left(batch)

    def left(self, batch: int) -> None:
        if batch in self.waiting:
            self.waiting.discard(batch)
            freed, self._freed = self._freed, self.env.event()
            freed.succeed()
