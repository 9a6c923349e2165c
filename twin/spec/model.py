"""The line spec: a validated, immutable, hashable description of one production line.

    >>> spec = LineSpec.from_dict({"name": "demo", "horizon": "100 h",
    ...                            "stations": [{"name": "m1", "process_time": "1 h"}]})
    >>> spec.station("m1").units
    1
    >>> len(spec.spec_hash)
    64

Validation reports every problem of a spec at once (see ``twin.spec.loader`` for files).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from functools import cached_property
from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from twin.durations import TIME_UNITS, to_hours
from twin.spec.cleaning import Changeover, Cleaning, Skid, changeover_of
from twin.spec.distributions import Distribution, DistributionModel
from twin.spec.limits import (
    MAX_BATCH_UNITS,
    MAX_COUNT,
    MAX_LIST,
    MAX_MASS_KG,
    MAX_TOTAL_UNITS,
    MIN_HORIZON_HOURS,
)
from twin.spec.people import Calendar, OperatorPool, Room, StationOperators
from twin.spec.quality import HoldTime, QcLab, Rate, StationQuality
from twin.spec.types import Name, NonNegativeDuration, PositiveDuration, SpecModel, check_known

ANY = "*"


def _products_in_context(info: ValidationInfo) -> set[str] | None:
    products = (info.context or {}).get("products")
    return set(products) if products is not None else None


def _check_product_keys(keys: list[str], info: ValidationInfo, what: str) -> None:
    known = _products_in_context(info)
    if known is None:
        return
    unknown = [k for k in keys if k != ANY and k not in known]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown product {names} in {what} (products: {', '.join(sorted(known)) or 'none'})")


def _process_time_tag(value: Any) -> str:
    if isinstance(value, dict) and "dist" not in value:
        return "tag:per-product"
    return "tag:single"


def _setup_tag(value: Any) -> str:
    if isinstance(value, Changeover) or (isinstance(value, dict) and "dist" not in value):
        return "tag:changeover"
    return "tag:duration"


SetupEntry = Annotated[
    Union[Annotated[Distribution, Tag("tag:duration")], Annotated[Changeover, Tag("tag:changeover")]],  # noqa: UP007
    Discriminator(_setup_tag),
]

ProcessTime = Annotated[
    Union[  # noqa: UP007
        Annotated[Distribution, Tag("tag:single")],
        Annotated[dict[str, Distribution], Tag("tag:per-product")],
    ],
    Discriminator(_process_time_tag),
]


def _unique(name: str, info: ValidationInfo, kind: str) -> str:
    names = (info.context or {}).get(f"{kind}_names") or []
    if names.count(name) > 1:
        raise ValueError(f"duplicate {kind} name {name!r}")
    return name


class Product(SpecModel):
    """A product made on the line, in batches of ``batch_size`` units (tablets, vials)."""

    name: Name = Field(description="Product name (used in changeovers, plans and mixes).")
    batch_size: float = Field(
        gt=0, le=MAX_BATCH_UNITS, allow_inf_nan=False, description="Units (tablets, vials) per batch."
    )
    mass_kg: float | None = Field(
        None, gt=0, le=MAX_MASS_KG, allow_inf_nan=False, description="Mass of a batch (for cleaning due in kg)."
    )
    description: str | None = Field(None, description="Free text.")

    @field_validator("name")
    @classmethod
    def _unique_name(cls, value: str, info: ValidationInfo) -> str:
        return _unique(value, info, "product")


class Failures(SpecModel):
    """Breakdowns of each unit of a station: time to failure, time to repair and what the clock counts."""

    mtbf: Distribution = Field(description="Time between failures (to the next failure).")
    mttr: Distribution = Field(description="Time to repair.")
    basis: Literal["operating", "calendar"] = Field(
        "operating",
        description="operating: time to failure runs only while processing and the batch resumes after repair; "
        "calendar: it runs on the wall clock, whatever the unit is doing.",
    )


class Station(SpecModel):
    """One process step: ``units`` identical pieces of equipment fed from one buffer."""

    name: Name = Field(description="Station name (used in overrides, hold times, rooms and the event log).")
    units: int = Field(1, ge=1, le=1000, description="Parallel identical equipment units.")
    process_time: ProcessTime | None = Field(
        None, description="Per batch; a distribution, or a map product -> distribution (or give `rate`)."
    )
    rate: Rate | None = Field(None, description="Fast equipment: time from the batch's units and a rate.")
    ideal_time: PositiveDuration | dict[str, PositiveDuration] | None = Field(
        None,
        description="Ideal (nameplate) processing time per batch, or a map product -> time, for OEE performance; "
        "default: the mean of process_time.",
    )
    buffer: int | None = Field(
        None,
        ge=0,
        le=MAX_COUNT,
        description="Places in front of this station (not counting units); omitted = unlimited.",
    )
    failures: Failures | None = None
    setup: dict[str, SetupEntry] | None = Field(
        None,
        description="Changeover matrix keyed 'A->B' ('*' matches any product): a time, or "
        "{time, major_clean, line_clearance}.",
    )
    cleaning: Cleaning | None = None
    operators: StationOperators | None = Field(None, description="Operators its phases need (from qualified pools).")
    quality: StationQuality | None = None
    split: int | None = Field(None, ge=2, le=100, description="Each batch leaves as this many lots.")
    merge: int | None = Field(None, ge=2, le=100, description="This many batches are blended into one.")
    equipment: str | None = Field(None, description="Equipment type (granulator, press, filler, ...).")
    description: str | None = Field(None, description="Free text.")

    @model_validator(mode="after")
    def _time_or_rate(self) -> Station:
        if (self.process_time is None) == (self.rate is None):
            raise ValueError("give either 'process_time' or 'rate'")
        return self

    @field_validator("name")
    @classmethod
    def _unique_name(cls, value: str, info: ValidationInfo) -> str:
        return _unique(value, info, "station")

    @field_validator("process_time")
    @classmethod
    def _known_products(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        if not value:
            raise ValueError("needs at least one product")
        problems = []
        try:
            _check_product_keys(list(value), info, "process_time")
        except ValueError as err:
            problems.append(str(err))
        known = _products_in_context(info)
        if known is not None and ANY not in value:
            missing = sorted(known - set(value))
            if missing:
                problems.append(f"no time for product {', '.join(map(repr, missing))} (add it or a '*' entry)")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("ideal_time")
    @classmethod
    def _ideal_products(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict):
            _check_product_keys(list(value), info, "ideal_time")
            known = _products_in_context(info)
            if known is not None and ANY not in value and known - set(value):
                missing = ", ".join(map(repr, sorted(known - set(value))))
                raise ValueError(f"no ideal time for product {missing} (add it or a '*' entry)")
        return value

    @field_validator("setup")
    @classmethod
    def _setup_keys(cls, value: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if value is None:
            return value
        products: list[str] = []
        malformed = []
        for key in value:
            parts = [p.strip() for p in key.split("->")]
            if len(parts) != 2 or not all(parts):
                malformed.append(key)
            else:
                products.extend(parts)
        problems = []
        if malformed:
            keys = ", ".join(map(repr, malformed))
            problems.append(f"changeover key {keys} should look like 'A->B' ('*' matches any product)")
        try:
            _check_product_keys(products, info, "setup")
        except ValueError as err:
            problems.append(str(err))
        if problems:
            raise ValueError("; ".join(problems))
        return {"->".join(p.strip() for p in key.split("->")): dist for key, dist in value.items()}

    def process_time_for(self, product: str) -> DistributionModel:
        """The processing-time distribution of one product (stations with ``process_time``)."""
        if self.process_time is None:
            raise ValueError(f"station {self.name!r} is rate-based")
        if isinstance(self.process_time, dict):
            return self.process_time.get(product) or self.process_time[ANY]
        return self.process_time

    def mean_hours(self, product: str, time_unit: str, batch_units: float) -> float:
        """Mean processing hours of a batch of ``product`` with ``batch_units`` units (rate or distribution)."""
        if self.rate is not None:
            rate = self.rate
            return to_hours(rate.startup, time_unit) + batch_units / (rate.units_per_hour * (1 - rate.speed_loss))
        return self.process_time_for(product).mean_hours(time_unit)

    def ideal_hours(self, product: str, time_unit: str, batch_units: float = 0.0) -> float:
        """Ideal hours per batch of ``product``: ``ideal_time``, else the nameplate rate's time for
        ``batch_units``, else the mean processing time."""
        if self.ideal_time is None:
            if self.rate is not None:
                return batch_units / self.rate.units_per_hour
            return self.process_time_for(product).mean_hours(time_unit)
        value = (
            self.ideal_time.get(product, self.ideal_time.get(ANY))
            if isinstance(self.ideal_time, dict)
            else self.ideal_time
        )
        return to_hours(value, time_unit)

    def changeover_for(self, previous: str, product: str) -> Changeover | None:
        """The changeover from ``previous`` to ``product``: the most specific matching key, or None."""
        if not self.setup:
            return None
        for key in (f"{previous}->{product}", f"{previous}->*", f"*->{product}", "*->*"):
            if key in self.setup:
                if previous == product and key != f"{previous}->{product}":
                    continue  # a wildcard never turns a repeat of the same product into a changeover
                return changeover_of(self.setup[key])
        return None

    def setup_for(self, previous: str, product: str) -> DistributionModel | None:
        """The changeover time from ``previous`` to ``product``, or None."""
        changeover = self.changeover_for(previous, product)
        return changeover.time if changeover is not None else None


class Campaign(SpecModel):
    """A run of ``batches`` consecutive batches of one product."""

    product: Name = Field(description="The product of the campaign.")
    batches: int = Field(ge=1, le=MAX_COUNT, description="Batches of it, back to back.")


class WipLimit(SpecModel):
    """At most ``batches`` released batches that have not yet started at station ``until``."""

    batches: int = Field(ge=1, le=10000, description="Most released batches not yet started at `until` (CONWIP).")
    until: Name = Field(description="The station where a batch stops counting against the limit.")

    @field_validator("until")
    @classmethod
    def _known_station(cls, value: str, info: ValidationInfo) -> str:
        check_known([value], info, "station_names", "station")
        return value


class Release(SpecModel):
    """How batches enter the line."""

    mode: Literal["saturated", "interarrival", "plan"] = Field(
        "saturated",
        description="saturated: the first station never starves; interarrival: batches arrive at random "
        "intervals; plan: campaigns in order.",
    )
    interarrival: Distribution | None = Field(
        None, description="Time between releases (required for interarrival mode, optional for plan mode)."
    )
    plan: tuple[Campaign, ...] | None = Field(None, max_length=MAX_LIST, description="Campaigns in order (plan mode).")
    repeat: bool = Field(False, description="Plan mode: start the plan again when it is done.")
    mix: dict[str, float] | None = Field(
        None, description="Saturated and interarrival modes: relative share of each product (default: equal)."
    )
    calendar: Name | None = Field(None, description="Release batches only in this calendar's working time.")
    wip_limit: WipLimit | None = Field(
        None, description="CONWIP: release only while fewer batches than this wait to start at a station."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Release:
        if self.mode == "interarrival" and self.interarrival is None:
            raise ValueError("mode 'interarrival' needs an 'interarrival' distribution")
        if self.mode == "plan" and not self.plan:
            raise ValueError("mode 'plan' needs a non-empty 'plan' list of {product, batches}")
        if self.mode == "saturated" and self.interarrival is not None:
            raise ValueError("'interarrival' is only used with mode 'interarrival' or 'plan'")
        if self.mode != "plan" and (self.plan is not None or self.repeat):
            raise ValueError("'plan' and 'repeat' are only used with mode 'plan'")
        if self.mode == "plan" and self.mix is not None:
            raise ValueError("'mix' is not used with mode 'plan' (the plan says which product comes next)")
        if (self.wip_limit is not None or self.calendar is not None) and self.interarrival is not None:
            raise ValueError("'wip_limit' and 'calendar' need batches pulled by the first station (no 'interarrival')")
        return self

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_known([value], info, "calendars", "calendar")
        return value

    @field_validator("mix")
    @classmethod
    def _mix(cls, value: dict[str, float] | None, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not value or any(not (w > 0 and w != float("inf")) for w in value.values()):
            raise ValueError("needs positive finite weights, one per product")
        _check_product_keys(list(value), info, "mix")
        return value

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: tuple[Campaign, ...] | None, info: ValidationInfo) -> Any:
        if value is not None:
            _check_product_keys([c.product for c in value], info, "plan")
            if sum(c.batches for c in value) > MAX_COUNT:
                raise ValueError(f"plans at most {MAX_COUNT:,} batches in all (got {sum(c.batches for c in value):,})")
        return value


class LineSpec(SpecModel):
    """A production line: products, stations in flow order, release rule and run length."""

    name: Name = Field(description="Line name.")
    description: str | None = Field(None, description="Free text.")
    time_unit: Literal[TIME_UNITS] = Field("h", description="Unit of bare numbers in durations.")  # type: ignore[valid-type]
    start: datetime | None = Field(
        None,
        description="Calendar time of the run's start, plant local time (2027-01-04T06:00): what times are shown "
        "as, and where the shift calendars' week stands at time 0. Default: the Monday 00:00 after the run is made.",
    )
    horizon: PositiveDuration = Field(description="Default run length.")
    warmup: NonNegativeDuration = Field(0.0, description="Start of the run discarded before KPIs.")
    release: Release = Release()
    products: tuple[Product, ...] = Field(
        (Product(name="batch", batch_size=1),),
        min_length=1,
        max_length=MAX_LIST,
        description="Products; default one called 'batch'.",
    )
    stations: tuple[Station, ...] = Field(min_length=1, max_length=MAX_LIST, description="Stations in flow order.")
    skids: tuple[Skid, ...] = Field((), max_length=MAX_LIST, description="Shared cleaning skids (CIP/SIP).")
    calendars: dict[Name, Calendar] = Field({}, description="Shift calendars by name (weeks from Monday 00:00).")
    operators: tuple[OperatorPool, ...] = Field((), max_length=MAX_LIST, description="Operator pools.")
    rooms: tuple[Room, ...] = Field((), max_length=MAX_LIST, description="Cleanrooms holding stations.")
    hold_times: tuple[HoldTime, ...] = Field(
        (), max_length=MAX_LIST, description="Longest waits of material between two stations."
    )
    qc: QcLab | None = Field(None, description="Quarantine and QC release after the last station.")
    extensions: dict[Name, Any] = Field(
        {},
        description="Plug-in settings by plug-in name (layout: 3-D scenes, optimize: `twin optimize`), each "
        "validated by its plug-in; not part of spec_hash (twin.spec.extensions).",
    )

    def __init__(self, **data: Any) -> None:
        self.__pydantic_validator__.validate_python(data, self_instance=self, context=validation_context(data))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineSpec:
        """Validate a spec given as plain data (as loaded from YAML or JSON)."""
        return cls.model_validate(data, context=validation_context(data))

    @model_validator(mode="before")
    @classmethod
    def _old_plugin_blocks(cls, data: Any) -> Any:
        from twin.spec.extensions import lift_deprecated

        return lift_deprecated(data, cls.model_fields) if isinstance(data, dict) else data

    @field_validator("extensions")
    @classmethod
    def _plugin_blocks(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if not value:
            return value
        from twin.spec.extensions import validate_blocks

        blocks, problems = validate_blocks(value, info.context)
        if problems:
            raise PydanticCustomError(
                "line_rules", "{summary}", {"summary": "; ".join(m for _, m in problems), "problems": problems}
            )
        return blocks

    @field_validator("stations")
    @classmethod
    def _units_in_all(cls, value: tuple[Station, ...]) -> tuple[Station, ...]:
        total = sum(s.units for s in value)
        if total > MAX_TOTAL_UNITS:
            raise ValueError(f"at most {MAX_TOTAL_UNITS:,} units in all stations together (got {total:,})")
        return value

    @field_validator("start", mode="before")
    @classmethod
    def _start_local_time(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"expected a date and time such as 2027-01-04T06:00 (got {value!r})") from None
        else:
            raise ValueError(f"expected a date and time such as 2027-01-04T06:00 (got {value!r})")
        if moment is not None and moment.tzinfo is not None:
            raise ValueError(f"give the plant's local time without a time zone (got {value!r})")
        return moment

    @field_validator("horizon")
    @classmethod
    def _horizon_long_enough(cls, value: float | str, info: ValidationInfo) -> float | str:
        if to_hours(value, (info.context or {}).get("time_unit", "h")) < MIN_HORIZON_HOURS:
            raise ValueError(f"must be at least {MIN_HORIZON_HOURS * 3600:g} s (got {value!r})")
        return value

    @field_validator("warmup")
    @classmethod
    def _warmup_before_horizon(cls, value: float | str, info: ValidationInfo) -> float | str:
        horizon = info.data.get("horizon")
        unit = (info.context or {}).get("time_unit", "h")
        if horizon is not None and to_hours(value, unit) >= to_hours(horizon, unit):
            raise ValueError(f"must be shorter than the horizon ({horizon}) (got {value})")
        return value

    @model_validator(mode="after")
    def _whole_line(self) -> LineSpec:
        from twin.spec.checks import whole_line_problems

        problems = whole_line_problems(self)
        if problems:
            raise PydanticCustomError(
                "line_rules", "{summary}", {"summary": "; ".join(m for _, m in problems), "problems": problems}
            )
        return self

    def hours(self, duration: float | str) -> float:
        """A duration of this spec in hours."""
        return to_hours(duration, self.time_unit)

    @property
    def horizon_hours(self) -> float:
        return self.hours(self.horizon)

    @property
    def warmup_hours(self) -> float:
        return self.hours(self.warmup)

    def station(self, name: str) -> Station:
        """The station called ``name``."""
        for station in self.stations:
            if station.name == name:
                return station
        raise KeyError(name)

    def to_data(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-ready) that ``from_dict`` turns back into an equal spec."""
        return self.model_dump(mode="json", exclude_none=True)

    def extension(self, name: str) -> Any:
        """The validated block of plug-in ``name`` (``extensions.NAME``), or None."""
        return self.extensions.get(name)

    @property
    def week_offset_hours(self) -> float:
        """Hours from Monday 00:00 to the run's start (0 without a ``start``): where the shift calendars'
        week stands at time 0 of a run."""
        if self.start is None:
            return 0.0
        s = self.start
        return s.weekday() * 24.0 + s.hour + s.minute / 60 + s.second / 3600 + s.microsecond / 3.6e9

    @cached_property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON form of what changes a simulation: ``extensions`` left out, and
        ``start`` only as far as it moves the shift calendars (its hour of the week, when there are calendars)."""
        data = self.model_dump(mode="json", exclude_none=True, exclude={"extensions", "start"})
        if self.calendars and self.week_offset_hours:
            data["start_hour_of_week"] = self.week_offset_hours
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def validation_context(data: Any) -> dict[str, Any]:
    """What validators need to know about the whole spec: its time unit and product names."""
    context: dict[str, Any] = {"time_unit": "h", "products": None}
    if not isinstance(data, dict):
        return context
    if data.get("time_unit") in TIME_UNITS:
        context["time_unit"] = data["time_unit"]
    context["product_names"] = _names(data.get("products"))
    context["station_names"] = _names(data.get("stations"))
    context["skids"] = _names(data.get("skids"))
    calendars = data.get("calendars")
    context["calendars"] = [k for k in calendars if isinstance(k, str)] if isinstance(calendars, dict) else []
    products = data.get("products")
    if isinstance(products, (list, tuple)):
        context["products_without_mass"] = [
            p.get("name") for p in products if isinstance(p, dict) and p.get("mass_kg") is None
        ]
    else:
        context["products_without_mass"] = ["batch"]
    if data.get("products") is None:
        context["products"] = ["batch"]
    elif isinstance(data.get("products"), (list, tuple)):
        context["products"] = context["product_names"]
    return context


def _names(items: Any) -> list[str]:
    if not isinstance(items, (list, tuple)):
        return []
    names = [item.get("name") if isinstance(item, dict) else getattr(item, "name", None) for item in items]
    return [n for n in names if isinstance(n, str)]
