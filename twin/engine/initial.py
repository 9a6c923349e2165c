"""Where a run starts when it does not start empty: a plant state, for forecasts.

    >>> state = InitialState(time=1250.0, batches={45: (0, 1e6, 1201.5)}, units={(1, 0): UnitStart(45, 1.2)},
    ...                      buffers={2: [44]}, quarantine=[40], released=46, next_batch=47)
    >>> Replication(line, seed, replication, horizon=1250.0 + 24.0, initial=state)

Times are hours on the run's own clock (0 = a Monday 00:00, as for shift calendars). Every number
here is concrete: ``twin.forecast`` draws remaining times conditionally on elapsed ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UnitStart:
    """What a unit holds when the run starts: a batch with work left, after an optional delay."""

    batch: int
    work_left: float  # processing hours still to do; 0 = processed, waiting to pass the batch on
    delay: float = 0.0  # hours before the work resumes (repair, changeover or clean left)
    delay_state: str = "down"  # the unit's state during the delay: down, setup or cleaning


@dataclass(frozen=True)
class InitialState:
    time: float
    batches: dict[int, tuple[int, float, float | None]]  # live batch -> (product index, units, released at or None)
    units: dict[tuple[int, int], UnitStart] = field(default_factory=dict)  # (station, unit) -> start
    buffers: dict[int, list[int]] = field(default_factory=dict)  # station -> batches waiting, in order
    quarantine: list[tuple[int, str, float]] = field(default_factory=list)
    """Batches in quarantine: (batch, phase, hours left of it); phases waiting, testing, incubating, investigating."""
    released: int = 0  # batches released so far (position in the plan)
    next_batch: int = 0  # first free batch id

    def in_line(self) -> int:
        """Batches on units and in buffers."""
        return sum(1 for s in self.units.values() if s.batch >= 0) + sum(len(b) for b in self.buffers.values())
