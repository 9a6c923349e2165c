"""Shift calendars, operator pools and cleanrooms of the line spec.

    calendars:
      two-shifts: {shifts: [{days: [mon, tue, wed, thu, fri], start: "06:00", end: "22:00"}]}
    operators:
      - {name: granulation-team, headcount: 2, calendar: two-shifts, qualified: [granulation, drying]}
    rooms:
      - {name: filling-room, grade: A, max_people: 3, stations: [filling]}   # gowning 20 min for A/B

    stations:
      - name: granulation
        operators: {count: 1, phases: [setup, processing, cleaning]}

A run starts on a Monday at 00:00; shift times are clock times of the week.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from twin.spec.limits import MAX_LIST
from twin.spec.types import Name, NonNegativeDuration, SpecModel, check_known

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def clock_hours(text: str) -> float:
    """``"06:30"`` -> 6.5 (``"24:00"`` is the end of the day)."""
    match = _CLOCK.match(text)
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"expected a clock time HH:MM between 00:00 and 24:00 (got {text!r})")
    return int(match.group(1)) + int(match.group(2)) / 60


class Shift(SpecModel):
    """A working period on some days of the week; ``end`` before ``start`` runs past midnight."""

    days: tuple[Literal[DAYS], ...] = Field(min_length=1, description="Days the shift starts on.")  # type: ignore[valid-type]
    start: str = Field(description="Start time of day, HH:MM.")
    end: str = Field(description="End time of day, HH:MM (before start: past midnight).")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        clock_hours(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Shift:
        if clock_hours(self.start) % 24 == clock_hours(self.end) % 24 and clock_hours(self.start) == clock_hours(
            self.end
        ):
            raise ValueError(f"shift from {self.start} to {self.end} is empty")
        return self

    def intervals(self) -> list[tuple[float, float]]:
        """Working intervals in hours since Monday 00:00 (within one week, may wrap past its end)."""
        start, end = clock_hours(self.start), clock_hours(self.end)
        length = end - start if end > start else end + 24 - start
        return [(DAYS.index(d) * 24 + start, DAYS.index(d) * 24 + start + length) for d in self.days]


class Calendar(SpecModel):
    """A weekly pattern of shifts (at least one)."""

    shifts: tuple[Shift, ...] = Field(max_length=MAX_LIST, description="Working periods of the week (at least one).")

    @field_validator("shifts")
    @classmethod
    def _some_shift(cls, value: tuple[Shift, ...]) -> tuple[Shift, ...]:
        if not value:
            raise ValueError("needs at least one shift (a calendar without shifts never works)")
        return value

    def weekly_hours(self) -> float:
        """Working hours per week (overlapping shifts counted once)."""
        intervals = sorted(i for shift in self.shifts for i in shift.intervals())
        total, covered_to = 0.0, 0.0
        for start, end in intervals:
            start = max(start, covered_to)
            if end > start:
                total += end - start
                covered_to = end
        return min(total, 168.0)


class OperatorPool(SpecModel):
    """Operators who share a calendar and are qualified for some stations."""

    name: Name = Field(description="Pool name.")
    headcount: int = Field(ge=1, le=1000, description="Operators in the pool.")
    calendar: Name | None = Field(None, description="When they work (a `calendars` entry); none = always.")
    qualified: tuple[Name, ...] = Field(min_length=1, description="Stations they may run.")

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_known([value], info, "calendars", "calendar")
        return value

    @field_validator("qualified")
    @classmethod
    def _known_stations(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        check_known(value, info, "station_names", "station")
        return value


class StationOperators(SpecModel):
    """How many qualified operators a station's phases need."""

    count: int = Field(1, ge=1, le=100, description="Qualified operators each unit needs.")
    phases: tuple[Literal["setup", "processing", "cleaning"], ...] = Field(
        ("setup", "processing", "cleaning"), min_length=1, description="Phases that need them."
    )


class Room(SpecModel):
    """A cleanroom holding stations, with a headcount limit; entering a grade A/B room costs gowning."""

    name: Name = Field(description="Room name.")
    grade: Literal["A", "B", "C", "D"] = Field(description="Cleanroom grade (EU GMP Annex 1).")
    max_people: int = Field(ge=1, le=100, description="Operators at work in the room at once.")
    gowning: NonNegativeDuration | None = Field(None, description="Time to gown on entry; default 20 min for A/B.")
    stations: tuple[Name, ...] = Field(min_length=1, description="Stations in the room.")

    @field_validator("stations")
    @classmethod
    def _known_stations(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        check_known(value, info, "station_names", "station")
        return value

    def gowning_time(self) -> float | str:
        """Gowning time on entry (a duration)."""
        if self.gowning is not None:
            return self.gowning
        return "20 min" if self.grade in ("A", "B") else 0.0
