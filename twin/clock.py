"""Calendar time: the one place where "hours since the start of the run" become dates a person reads.

The engine, the event log, JSON and exports keep hours from the start (``time`` column). Everything a
person reads (CLI trace, dashboard tables and charts, forecast, Live, the report) goes through a
``RunClock``: the spec's ``start`` (or, without one, the Monday 00:00 after the run was made) plus
the hours, with the name of the shift where the spec has shift calendars.

    >>> clock = RunClock(datetime(2027, 1, 4, 6, 0))
    >>> clock.text(26.5)
    'Tue 05 Jan 08:30'
    >>> clock.at(26.5).isoformat()
    '2027-01-05T08:30:00'
    >>> clock_for(spec, created="2026-12-06T15:20:00+00:00").start   # no start in the spec
    datetime.datetime(2026, 12, 7, 0, 0)

Shift names: the calendar's name and the shift's clock times (``two-shifts 06:00–22:00``), or
``off shift`` between shifts. The engine moves its shift calendars by the start's hour of the week
(``LineSpec.week_offset_hours``), so both clocks agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

DATE_FORMAT = "%a %d %b %H:%M"  # what tables and the trace show: "Tue 05 Jan 08:30"
LONG_FORMAT = "%a %Y-%m-%d %H:%M"  # headers and the report: "Tue 2027-01-05 08:30"
ISO_MINUTES = "%Y-%m-%dT%H:%M"


def next_monday(after: datetime) -> datetime:
    """Monday 00:00 strictly after ``after`` (naive local time; an aware time is read in its own zone)."""
    day = after.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=7 - day.weekday())


@dataclass(frozen=True)
class ShiftWindow:
    """One working period of the week, in hours since Monday 00:00 (may run past the week's end)."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class RunClock:
    """Hours since the start of a run as calendar dates (see the module docstring)."""

    start: datetime
    shifts: tuple[ShiftWindow, ...] = field(default=())
    stated: bool = True  # False: the start is the default (Monday after the run), not written in the spec

    def at(self, hours: float) -> datetime:
        """The calendar time ``hours`` after the start (to the second)."""
        return self.start + timedelta(seconds=round(float(hours) * 3600))

    def shift(self, hours: float) -> str | None:
        """The shift working at ``hours``: of the calendars' shifts that cover it, the shortest (the most telling:
        a day shift rather than a round-the-clock one); ``off shift`` between shifts, None without calendars."""
        if not self.shifts:
            return None
        moment = self.at(hours)
        week = moment.weekday() * 24 + moment.hour + moment.minute / 60 + moment.second / 3600
        covering = [w for w in self.shifts if w.start <= week < w.end or w.start <= week + 168 < w.end]
        return min(covering, key=lambda w: (w.end - w.start, w.label)).label if covering else "off shift"

    def text(self, hours: float | None, long: bool = False, with_shift: bool = False) -> str:
        """``Tue 05 Jan 08:30`` (``long``: with the year), and `` · shift`` when asked and known."""
        if hours is None or not math.isfinite(float(hours)):
            return "–"
        out = self.at(hours).strftime(LONG_FORMAT if long else DATE_FORMAT)
        shift = self.shift(hours) if with_shift else None
        return f"{out} · {shift}" if shift else out

    def texts(self, hours: Iterable[float | None], with_shift: bool = False) -> list[str]:
        """``text`` of each value (an en dash for missing ones)."""
        return [self.text(h, with_shift=with_shift) for h in hours]

    def dates(self, hours: Any) -> np.ndarray:
        """Numpy datetimes of an array of hours (NaN stays NaT): the x values of a calendar-time chart."""
        values = np.asarray(hours, dtype=float)
        seconds = np.where(np.isfinite(values), np.round(values * 3600), np.nan)
        out = np.datetime64(self.start, "s") + seconds.astype("timedelta64[s]")
        return np.where(np.isfinite(values), out, np.datetime64("NaT"))

    def hours(self, moment: datetime | str) -> float:
        """Hours from the start to ``moment`` (the inverse of ``at``)."""
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        return (moment.replace(tzinfo=None) - self.start).total_seconds() / 3600

    def describe(self) -> str:
        """One line for headers: where the clock starts and whether the spec says so."""
        how = "the spec's start" if self.stated else "no start in the spec: the Monday after the run was made"
        return f"t = 0 is {self.start.strftime(LONG_FORMAT)} ({how})"


DEFAULT_SHIFT_STARTS = (6, 14, 22)  # a line without shift calendars: the day's three 8-hour shifts


def shift_span(clock: RunClock, hours: float) -> tuple[float, str]:
    """When the shift working at ``hours`` began (hours since the clock's start, to the second) and its name.

    With shift calendars a shift is a stretch of one ``RunClock.shift`` name (``off shift`` between shifts);
    without any, the three 8-hour shifts of the day from ``DEFAULT_SHIFT_STARTS``."""
    moment = clock.at(hours)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if not clock.shifts:
        day = (moment - midnight).total_seconds() / 3600
        begin = max((h for h in DEFAULT_SHIFT_STARTS if h <= day), default=DEFAULT_SHIFT_STARTS[-1] - 24)
        end = min((h for h in DEFAULT_SHIFT_STARTS if h > begin), default=DEFAULT_SHIFT_STARTS[0] + 24) % 24
        return clock.hours(midnight + timedelta(hours=begin)), f"shift {begin % 24:02d}:00–{end:02d}:00"
    monday = midnight - timedelta(days=moment.weekday())
    bounds = sorted({round(b * 3600) % (168 * 3600) for w in clock.shifts for b in (w.start, w.end)})  # seconds
    label = clock.shift(hours)
    at, first = moment, True
    for _ in range(len(bounds) + 1):  # back over boundaries while the name stays the same
        week = round((at - monday).total_seconds()) % (168 * 3600)
        back = min((week - b) % (168 * 3600) or (0 if first else 168 * 3600) for b in bounds)
        at, first = at - timedelta(seconds=back), False
        if clock.shift(clock.hours(at - timedelta(seconds=1))) != label:
            break
    return clock.hours(at), label or ""


def shift_windows(calendars: dict[str, Any]) -> tuple[ShiftWindow, ...]:
    """Every shift of the spec's calendars as a labelled window of the week."""
    windows = []
    for name, calendar in calendars.items():
        for shift in calendar.shifts:
            label = f"{name} {shift.start}–{shift.end}"
            windows += [ShiftWindow(label, lo, hi) for lo, hi in shift.intervals()]
    return tuple(windows)


def clock_for(spec: Any, created: datetime | str | None = None) -> RunClock:
    """The clock of a run of ``spec``: its ``start``, else the Monday 00:00 after ``created`` (default now)."""
    shifts = shift_windows(getattr(spec, "calendars", {}) or {})
    start = getattr(spec, "start", None)
    if start is not None:
        return RunClock(start, shifts, stated=True)
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    return RunClock(next_monday(created or datetime.now(UTC)), shifts, stated=False)


def span_text(hours: float | None) -> str:
    """A duration in the unit that reads best (min, h, d, w)."""
    if hours is None or not math.isfinite(hours):
        return "–"
    if abs(hours) < 1:
        return f"{hours * 60:.0f} min"
    if abs(hours) < 48:
        return f"{hours:.1f} h"
    if abs(hours) < 24 * 14:
        return f"{hours / 24:.1f} d"
    return f"{hours / 168:.1f} w"


def rate_unit(per_hour: float | None) -> tuple[str, float]:
    """The line's unit of throughput and its scale from batches/h: batches/day below one an hour, else /h.

    One rule for the CLI, the dashboard and the report, chosen per line by its own rate and always shown.
    """
    if per_hour is not None and math.isfinite(per_hour) and per_hour >= 1:
        return "batches/h", 1.0
    return "batches/day", 24.0


def run_folder_clock(folder: Any) -> RunClock:
    """The clock of a run folder (``twin run --out``, or a stored run): its spec's start and creation time."""
    import json
    from pathlib import Path

    import yaml

    from twin.runfolder import RUN_FILE, SPEC_FILE
    from twin.spec.loader import spec_from_data

    folder = Path(folder)
    source = folder / SPEC_FILE
    spec = spec_from_data(yaml.safe_load(source.read_text(encoding="utf-8")), source=str(source))
    try:
        created = json.loads((folder / RUN_FILE).read_text(encoding="utf-8")).get("created")
    except (OSError, ValueError, AttributeError):
        created = None
    return clock_for(spec, created if isinstance(created, str) else None)
