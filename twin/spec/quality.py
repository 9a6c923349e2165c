"""Rate-based equipment, quality losses, hold times and QC release of the line spec.

stations:
  - name: compression
    rate: {units_per_hour: 300000, startup: 20 min, speed_loss: 0.15}
    quality: {yield: 0.995, reject_probability: 0.005}
hold_times:
  - {from: granulation, to: compression, max: 72 h, action: scrap}
qc:
  analysts: 3
  test_time: {dist: triangular, low: 7 d, mode: 10 d, high: 20 d}
  oos_probability: 0.03
  oos_action: investigate
  investigation: {dist: uniform, low: 5 d, high: 15 d}
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from twin.spec.distributions import Distribution
from twin.spec.limits import MAX_UNITS_PER_HOUR
from twin.spec.types import Name, NonNegativeDuration, PositiveDuration, SpecModel, check_known


class Rate(SpecModel):
    """Fast equipment by rate: time = startup + batch units / (units_per_hour x (1 - speed_loss))."""

    units_per_hour: float = Field(
        gt=0, le=MAX_UNITS_PER_HOUR, allow_inf_nan=False, description="Nameplate rate (units of the batch)."
    )
    startup: NonNegativeDuration = Field(0.0, description="Fixed start-up time per batch.")
    speed_loss: float = Field(0.0, ge=0, lt=1, description="Share of nameplate speed lost to micro-stops.")
    cv: float = Field(0.0, ge=0, le=2, description="Coefficient of variation of the run time (gamma); 0 = fixed.")


class StationQuality(SpecModel):
    """Quality losses of a station: units lost from every batch, and whole batches rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    yield_: float = Field(1.0, alias="yield", gt=0, le=1, description="Share of units that come out good.")
    reject_probability: float = Field(0.0, ge=0, lt=1, description="Chance a batch is rejected after processing.")


class HoldTime(SpecModel):
    """Longest time material may wait between leaving one station and starting at a later one."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: Name = Field(alias="from", description="Station the material leaves.")
    to: Name = Field(description="Station that must start it in time.")
    max: PositiveDuration = Field(description="Longest wait from leaving `from` to starting at `to`.")
    action: Literal["scrap", "investigate"] = Field(
        "scrap", description="Past the limit the batch is scrapped, or investigated and then goes on."
    )
    investigation: Distribution | None = Field(None, description="Delay of an investigation before the batch goes on.")

    @model_validator(mode="after")
    def _investigation(self) -> HoldTime:
        if self.action == "investigate" and self.investigation is None:
            raise ValueError("action 'investigate' needs an 'investigation' time")
        return self

    @field_validator("from_", "to")
    @classmethod
    def _known_station(cls, value: str, info: ValidationInfo) -> str:
        check_known([value], info, "station_names", "station")
        return value


class QcLab(SpecModel):
    """Quarantine and release testing after the last station."""

    analysts: int = Field(ge=1, le=1000, description="Analysts testing batches at once.")
    calendar: Name | None = Field(None, description="When the analysts work (a `calendars` entry); none = always.")
    test_time: Distribution = Field(description="Analyst's hands-on testing time of one batch.")
    incubation: Distribution | None = Field(
        None, description="Elapsed time after testing before the result (e.g. 14 d sterility), no analyst needed."
    )
    oos_probability: float = Field(0.0, ge=0, le=1, description="Chance of an out-of-specification result.")
    oos_action: Literal["reject", "investigate"] = Field(
        "reject", description="An OOS batch is rejected, or investigated and then approved."
    )
    investigation: Distribution | None = Field(None, description="Investigation delay before release after an OOS.")

    @model_validator(mode="after")
    def _investigation(self) -> QcLab:
        if self.oos_action == "investigate" and self.investigation is None:
            raise ValueError("oos_action 'investigate' needs an 'investigation' time")
        return self

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_known([value], info, "calendars", "calendar")
        return value
