"""Cleaning and changeover rules of the line spec.

cleaning:                      # per station
  minor: 45 min                # after every batch
  major: 4 h                   # on a product change that needs it, and when due
  line_clearance: 30 min       # with changeovers that need it
  due: {batches: 10, hours: 240 h, kg: 3000}   # since the last major clean, whichever comes first
  skid: cip-1                  # shared CIP/SIP skid (a top-level `skids` entry)
  dirty_hold: 48 h             # left dirty longer: the major clean instead of the minor one
  clean_hold: 72 h             # left clean longer: cleaned again before use

setup:                         # per station: the changeover matrix
  "*->*": {time: 2 h, major_clean: true, line_clearance: true}
  "A->A": 15 min
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from twin.spec.distributions import Distribution
from twin.spec.limits import MAX_COUNT, MAX_LIST, MAX_MASS_KG
from twin.spec.types import Name, PositiveDuration, SpecModel, check_known


class Changeover(SpecModel):
    """One entry of a station's changeover matrix."""

    time: Distribution | None = Field(None, description="Changeover time (change parts, format); none = only cleaning.")
    major_clean: bool = Field(False, description="The change needs a major clean before it.")
    line_clearance: bool = Field(False, description="The change needs a line clearance after it.")

    @model_validator(mode="after")
    def _does_something(self) -> Changeover:
        if self.time is None and not self.major_clean and not self.line_clearance:
            raise ValueError("a changeover needs a time, a major clean or a line clearance")
        return self


class CleaningDue(SpecModel):
    """When a major clean falls due since the last one, whichever comes first."""

    batches: int | None = Field(None, ge=1, le=MAX_COUNT, description="After this many batches.")
    hours: PositiveDuration | None = Field(None, description="After this much time.")
    kg: float | None = Field(
        None, gt=0, le=MAX_MASS_KG * MAX_COUNT, allow_inf_nan=False, description="After this many kg processed."
    )

    @model_validator(mode="after")
    def _one_rule(self) -> CleaningDue:
        if self.batches is None and self.hours is None and self.kg is None:
            raise ValueError("give at least one of batches, hours, kg")
        return self

    @field_validator("kg")
    @classmethod
    def _masses_known(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and (info.context or {}).get("products_without_mass"):
            missing = ", ".join(map(repr, (info.context or {})["products_without_mass"]))
            raise ValueError(f"a rule in kg needs every product's mass_kg (missing for {missing})")
        return value


class Cleaning(SpecModel):
    """Cleaning rules of one station's equipment."""

    minor: Distribution | None = Field(None, description="Clean after every batch.")
    major: Distribution | None = Field(None, description="Major clean: on product changes that need it, and when due.")
    line_clearance: Distribution | None = Field(None, description="Line clearance time, for changeovers that need it.")
    due: CleaningDue | None = None
    skid: Name | None = Field(None, description="The shared cleaning skid (CIP/SIP) the cleans need.")
    skid_for: tuple[Literal["minor", "major"], ...] = Field(("minor", "major"), description="Cleans that use the skid.")
    dirty_hold: PositiveDuration | None = Field(None, description="Longest validated time dirty before cleaning.")
    clean_hold: PositiveDuration | None = Field(None, description="Longest validated time clean before use.")

    @field_validator("skid")
    @classmethod
    def _known_skid(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_known([value], info, "skids", "skid")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Cleaning:
        problems = []
        if self.due is not None and self.major is None:
            problems.append("'due' needs a 'major' clean time")
        if self.dirty_hold is not None and self.major is None:
            problems.append("'dirty_hold' needs a 'major' clean time (a late clean is a major one)")
        if self.clean_hold is not None and self.minor is None and self.major is None:
            problems.append("'clean_hold' needs a 'minor' or 'major' clean time")
        if self.minor is None and self.major is None and self.line_clearance is None:
            problems.append("give at least one of minor, major, line_clearance")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Skid(SpecModel):
    """A shared cleaning resource (CIP/SIP skid) that several stations queue for."""

    name: Name = Field(description="Skid name, named by the stations' cleaning rules.")
    capacity: int = Field(1, ge=1, le=MAX_LIST, description="Cleans it can run at once.")


def changeover_of(value: Any) -> Changeover:
    """A changeover from a setup entry: a bare distribution means a changeover time only."""
    return value if isinstance(value, Changeover) else Changeover(time=value)
