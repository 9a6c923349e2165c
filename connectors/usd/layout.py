"""Where a line's equipment stands on the site, for 3D scenes (USD): the spec's ``extensions.layout`` block.

    extensions:
      layout:
        aisle: 2.5                      # metres between zones in the automatic layout
        stations:
          coating: {position: [42, 0], rotation: 90, units: [[0, -2], [0, 2]], buffer: [-5, 0]}
        assets:
          coater: cad/coater_glatt.usd  # a USD asset for every station whose equipment is 'coater'

Coordinates are site metres (x east, y north, z up); ``rotation`` is degrees about z,
counter-clockwise, 0 meaning that material flows along +x. Offsets (``units``, ``buffer``) are in
the station's own frame (x along the flow, y to its left). Stations the block does not place keep
their automatic place; units beyond the given offsets continue the last offset's spacing.
Registered as the ``layout`` entry of ``twin.spec_extensions``: it does not change ``spec_hash``.
"""

from __future__ import annotations

import difflib
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from twin.spec.types import Name, SpecModel

Metres = Annotated[float, Field(allow_inf_nan=False)]
Offset = tuple[Metres, Metres]


class StationPlacement(SpecModel):
    """Where one station stands and how its units and buffer sit around it."""

    position: tuple[Metres, ...] = Field(
        json_schema_extra={"minItems": 2, "maxItems": 3},
        description="Site coordinates of the station's origin in metres: [x, y] or [x, y, z].",
    )
    rotation: Metres = Field(0.0, description="Degrees about the vertical axis, counter-clockwise; 0 = flow along +x.")
    units: tuple[Offset, ...] | None = Field(
        None, min_length=1, description="Offset [x, y] of each unit from the station origin, in the station frame."
    )
    buffer: Offset | None = Field(None, description="Offset [x, y] of the buffer area's centre, in the station frame.")
    asset: str | None = Field(
        None, min_length=1, description="USD asset for this station's equipment (overrides `assets`)."
    )

    @field_validator("position")
    @classmethod
    def _two_or_three(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) not in (2, 3):
            raise ValueError(f"should be [x, y] or [x, y, z] in metres (got {len(value)} number(s))")
        return value


class Layout(SpecModel):
    """Positions of stations on the site and USD assets per equipment type."""

    aisle: Metres = Field(2.0, gt=0, description="Metres between zones (buffer, equipment) in the automatic layout.")
    stations: dict[Name, StationPlacement] = Field(
        default_factory=dict, description="Placement per station name; unplaced stations keep the automatic layout."
    )
    assets: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict, description="USD asset path per equipment type (granulator, press, filler, ...)."
    )

    @field_validator("stations")
    @classmethod
    def _known_stations(cls, value: dict[str, StationPlacement], info: ValidationInfo) -> dict[str, StationPlacement]:
        known = (info.context or {}).get("station_names")
        if not known:
            return value
        unknown = [name for name in value if name not in known]
        if unknown:
            hints = [difflib.get_close_matches(name, known, n=1) for name in unknown]
            names = ", ".join(
                f"{name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                for name, hint in zip(unknown, hints, strict=True)
            )
            raise ValueError(f"unknown station {names}; stations: {', '.join(known)}")
        return value
