"""Where everything stands: stations, units, buffers and the places batches take, in the line's frame.

    >>> plan = place_line(spec, sizes={"coating": (3.2, 2.0, 2.4), ...}, buffer_slots={"coating": 2, ...})
    >>> plan.stations["coating"].unit_origin(0)     # (x, y, z) in metres, line frame
    >>> plan.stations["coating"].slot(3)            # where the 4th batch waiting in its buffer stands

The automatic layout puts stations along +x in flow order, each as a buffer area followed by its
equipment, with ``layout.aisle`` metres between zones; parallel units stand side by side across the
flow (y), centred on the line's axis. A spec's ``layout`` block moves stations (site position and
rotation), their units and their buffer areas; anything it leaves out keeps the automatic place.
A batch on a unit stands at the unit's load point, just upstream of the equipment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from connectors.usd.layout import Layout, StationPlacement
from twin.spec.model import LineSpec

Vec3 = tuple[float, float, float]

SLOT_PITCH = 1.6  # metres between batch places (a 1.2 m IBC and room to handle it)
BUFFER_COLUMNS = 2  # batch places along the flow in a buffer area; more batches add rows across it
SHOWN_SLOTS_UNLIMITED = 4  # places drawn for an unlimited buffer that never held more
LOAD_GAP = 1.0  # metres from the equipment's upstream face to the centre of a batch on it


@dataclass(frozen=True)
class StationPlan:
    """One station in the line frame: origin, rotation, units and buffer area."""

    name: str
    origin: Vec3
    rotation: float  # degrees about z
    size: Vec3  # equipment length (along the flow), width, height
    unit_offsets: tuple[tuple[float, float], ...]  # station frame
    buffer_center: tuple[float, float]  # station frame
    buffer_slots: int  # places drawn
    buffer_columns: int

    def to_line(self, local: Vec3) -> Vec3:
        """A point of the station frame in the line frame."""
        angle = math.radians(self.rotation)
        c, s = math.cos(angle), math.sin(angle)
        x, y, z = local
        return (self.origin[0] + c * x - s * y, self.origin[1] + s * x + c * y, self.origin[2] + z)

    def unit_origin(self, unit: int) -> Vec3:
        """Centre of a unit's footprint on the floor, line frame."""
        dx, dy = self.unit_offsets[unit]
        return self.to_line((dx, dy, 0.0))

    def load_point(self, unit: int) -> Vec3:
        """Where a batch on ``unit`` stands (line frame): just upstream of the equipment."""
        dx, dy = self.unit_offsets[unit]
        return self.to_line((dx - self.size[0] / 2 - LOAD_GAP, dy, 0.0))

    @property
    def buffer_rows(self) -> int:
        return max(1, math.ceil(self.buffer_slots / self.buffer_columns))

    @property
    def buffer_size(self) -> tuple[float, float]:
        """Length (along the flow) and width of the buffer area, metres."""
        return (self.buffer_columns * SLOT_PITCH, self.buffer_rows * SLOT_PITCH)

    def slot_local(self, index: int) -> Vec3:
        """Place ``index`` of the buffer in the station frame; places beyond those drawn add rows."""
        cols, rows = self.buffer_columns, self.buffer_rows
        col, row = index % cols, index // cols
        x = self.buffer_center[0] + (col - (cols - 1) / 2) * SLOT_PITCH
        y = self.buffer_center[1] + ((rows - 1) / 2 - row) * SLOT_PITCH
        return (x, y, 0.0)

    def slot(self, index: int) -> Vec3:
        """Place ``index`` of the buffer, line frame."""
        return self.to_line(self.slot_local(index))


@dataclass(frozen=True)
class LinePlan:
    """Every station's plan, plus where queued (released, not yet in a station) and finished batches go."""

    stations: dict[str, StationPlan]
    entry: StationPlan  # a pseudo-station whose buffer holds released batches not yet arrived
    exit_point: Vec3


def _unit_offsets(units: int, width: float, aisle: float, given: tuple[tuple[float, float], ...] | None):
    if not given:
        pitch = width + aisle
        return tuple((0.0, (units - 1) / 2 * pitch - u * pitch) for u in range(units))
    offsets = list(given[:units])
    step = (given[-1][0] - given[-2][0], given[-1][1] - given[-2][1]) if len(given) >= 2 else (0.0, -(width + aisle))
    while len(offsets) < units:
        last = offsets[-1]
        offsets.append((last[0] + step[0], last[1] + step[1]))
    return tuple(offsets)


def _columns(slots: int) -> int:
    return 1 if slots <= 1 else BUFFER_COLUMNS


def place_line(spec: LineSpec, sizes: dict[str, Vec3], buffer_slots: dict[str, int]) -> LinePlan:
    """Lay the line out: ``sizes`` per station (equipment length, width, height), places per buffer."""
    layout = spec.extension("layout") or Layout()
    aisle = layout.aisle
    cursor = 0.0
    entry_slots = max(buffer_slots.get("", 0), 1)
    entry_len = _columns(entry_slots) * SLOT_PITCH
    entry = StationPlan("", (0.0, 0.0, 0.0), 0.0, (0.0, 0.0, 0.0), ((0.0, 0.0),), (cursor + entry_len / 2, 0.0),
                        entry_slots, _columns(entry_slots))  # fmt: skip
    cursor += entry_len + aisle
    stations: dict[str, StationPlan] = {}
    for station in spec.stations:
        size = sizes[station.name]
        slots = buffer_slots.get(station.name, 0)
        cols = _columns(slots)
        buffer_len = cols * SLOT_PITCH
        auto_origin = (cursor + buffer_len + aisle + size[0] / 2, 0.0, 0.0)
        auto_buffer = (-(size[0] / 2 + aisle + buffer_len / 2), 0.0)
        cursor = auto_origin[0] + size[0] / 2 + aisle
        placed: StationPlacement | None = layout.stations.get(station.name)
        origin = auto_origin if placed is None else (*placed.position[:2], (*placed.position, 0.0)[2])
        stations[station.name] = StationPlan(
            name=station.name,
            origin=origin,
            rotation=placed.rotation if placed else 0.0,
            size=size,
            unit_offsets=_unit_offsets(station.units, size[1], aisle, placed.units if placed else None),
            buffer_center=placed.buffer if placed and placed.buffer is not None else auto_buffer,
            buffer_slots=slots,
            buffer_columns=cols,
        )
    last = stations[spec.stations[-1].name]
    return LinePlan(stations, entry, last.to_line((last.size[0] / 2 + aisle + 1.0, 0.0, 0.0)))
