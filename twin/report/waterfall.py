"""The loss waterfall of ISO 22400-2: where a station's calendar time goes, hours per cause.

    >>> fall = waterfall(summary, "coating")      # from a run's KPI summary (``compute_kpis(log).summary``)
    >>> [(s.name, s.hours, s.kind) for s in fall.steps]
    [('calendar time', 336.0, 'total'), ('off shift', -40.1, 'loss'), ..., ('fully productive time', 98.2, 'total')]
    >>> top_causes(fall, 3)                        # the three largest losses after planned downtime

Calendar time (units x KPI window) less planned downtime (``PLANNED_DOWN_STATES``: idle, off shift) is
planned busy time; less the time in every other state but processing (failures, changeovers,
cleaning, waiting for skids or operators, starved, blocked) it is run time (APT); less the
performance loss (run time x (1 - P)) it is net run time; less the quality loss (x (1 - Q)) it is
fully productive time = OEE x planned busy time. Hours are per replication, valued at the means of
the state shares and of P and Q over replications (so the steps add up exactly). The line's
waterfall is that of the station its OEE is valued at (the constraint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twin.eventlog import PLANNED_DOWN_STATES, STATES

CAUSES = {
    "idle": "no work planned (idle)",
    "off_shift": "off shift",
    "down": "breakdowns",
    "setup": "changeovers",
    "cleaning": "cleaning",
    "waiting_cleaning": "waiting for a cleaning skid",
    "waiting_operator": "waiting for an operator",
    "starved": "starved (nothing to process)",
    "blocked": "blocked (no room downstream)",
}
"""How each non-producing state reads as a loss (the six big losses' vocabulary where it fits)."""

REMEDIES = {
    "down": "no failures",
    "setup": "no changeovers",
    "waiting_operator": "one more operator",
}
"""Which what-if removes a cause (``removal_overrides``); causes without one are shown without a what-if."""


@dataclass(frozen=True)
class Step:
    name: str
    hours: float  # a total (>= 0) or a loss (<= 0)
    kind: str  # "total" or "loss"
    state: str | None = None  # the state a loss comes from (None: performance, quality)


@dataclass(frozen=True)
class Waterfall:
    station: str
    units: int
    window_hours: float
    steps: tuple[Step, ...]

    def total(self, name: str) -> float:
        return next(s.hours for s in self.steps if s.name == name)

    @property
    def losses(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "loss"]


def waterfall(summary: dict[str, Any], station: str | None = None) -> Waterfall:
    """The waterfall of ``station`` (default: the station the line's OEE is valued at)."""
    station = station or (summary.get("constraint") or {}).get("station") or list(summary["stations"])[-1]
    s = summary["stations"][station]
    lo, hi = summary["window_hours"]
    calendar = float(s["units"]) * (hi - lo)
    shares = {k: float(v or 0.0) for k, v in s["states"].items()}
    steps = [Step("calendar time", calendar, "total")]
    for state in STATES:
        if state in PLANNED_DOWN_STATES:
            steps.append(Step(CAUSES[state], -shares.get(state, 0.0) * calendar, "loss", state))
    planned = calendar * (1 - sum(shares.get(x, 0.0) for x in PLANNED_DOWN_STATES))
    steps.append(Step("planned busy time", planned, "total"))
    for state in STATES:
        if state not in PLANNED_DOWN_STATES and state != "processing":
            steps.append(Step(CAUSES[state], -shares.get(state, 0.0) * calendar, "loss", state))
    run_time = shares.get("processing", 0.0) * calendar
    steps.append(Step("run time", run_time, "total"))
    performance = min(max(float(s["performance"]["mean"] or 0.0), 0.0), 1.0)
    quality = min(max(float(s["quality"]["mean"] or 0.0), 0.0), 1.0)
    steps.append(Step("reduced speed and small stops", -run_time * (1 - performance), "loss"))
    net = run_time * performance
    steps.append(Step("net run time", net, "total"))
    steps.append(Step("quality losses (scrap, rejects)", -net * (1 - quality), "loss"))
    steps.append(Step("fully productive time", net * quality, "total"))
    return Waterfall(station, int(s["units"]), hi - lo, tuple(steps))


def top_causes(fall: Waterfall, n: int = 3) -> list[Step]:
    """The ``n`` largest losses of planned busy time (planned downtime is a choice, not a loss), largest first."""
    losses = [s for s in fall.losses if s.state not in PLANNED_DOWN_STATES and s.hours < -1e-9]
    return sorted(losses, key=lambda s: s.hours)[:n]


def removal_overrides(spec: Any, station: str, state: str) -> list[str] | None:
    """``--set`` overrides of a what-if that removes ``state`` as a loss of ``station`` (None: no such what-if).

    Failures off, no changeovers, or one more operator in the station's pool (cleaning is a GMP rule: no what-if).
    """
    target = spec.station(station)
    if state == "down" and target.failures is not None:
        return [f"stations.{station}.failures=null"]
    if state == "setup" and target.setup is not None:
        return [f"stations.{station}.setup=null"]
    if state == "waiting_operator":
        for pool in spec.operators:
            if station in pool.qualified:
                return [f"operators.{pool.name}.headcount={pool.headcount + 1}"]
    return None
