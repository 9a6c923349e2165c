"""The calibration report: plain data that a terminal, a JSON consumer or a dashboard renders.

    >>> report.to_dict()["parameters"][0]
    {"path": "stations.press.failures.mtbf", "status": "changed", "old": {...}, "new": {...},
     "estimates": {"mean": {"value": 81.3, "low": 66.2, "high": 99.9}}, "n": 19, "censored": 1, ...}

Durations in ``estimates`` and ``mean_hours`` are hours; ``old`` and ``new`` are the values as the
spec writes them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from twin.calibrate.fit import Estimate

CHANGED, KEPT = "changed", "kept"
SHORT_REASONS = {
    "same": "kept: estimate = current value",
    "consistent": "kept: the data agree",
    "too_few": "kept: too few data",
    "no_data": "kept: no data",
    "failed": "kept: fit failed",
    "unusable": "kept: see reason",
}


@dataclass(frozen=True)
class ParameterResult:
    """What calibration found for one value of the spec."""

    path: str  # dotted YAML path, e.g. "stations.press.failures.mtbf"
    label: str
    kind: str  # processing, rate, time_to_failure, repair, changeover, clean, major_clean, line_clearance, ...
    station: str | None
    status: str  # "changed" or "kept"
    reason: str  # why it was kept, or how the new value was chosen
    old: Any
    new: Any
    code: str = ""  # changed, same (estimate = current), consistent (data agree), too_few, no_data, failed, unusable
    n: int = 0  # observations (batches for yields and rates of rejects)
    censored: int = 0
    method: str = ""
    family: str | None = None
    estimates: dict[str, Estimate] = field(default_factory=dict)  # as the spec parameterizes it
    mean_hours: Estimate | None = None  # the fitted distribution's mean
    old_mean_hours: float | None = None
    old_inside: bool | None = None  # the old mean (or share) lies inside the new 95% interval
    aicc: dict[str, float] = field(default_factory=dict)  # every family tried
    ks: float | None = None
    ks_reference: float | None = None
    assignments: dict[str, Any] = field(default_factory=dict)  # YAML path -> value written
    comment: str = ""  # the provenance written beside the value

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["estimates"] = {k: v.as_dict() for k, v in self.estimates.items()}
        data["mean_hours"] = self.mean_hours.as_dict() if self.mean_hours is not None else None
        return _json_safe(data)


@dataclass(frozen=True)
class KpiChange:
    """One KPI of the original and the calibrated spec, and their paired difference."""

    metric: str
    original: dict[str, Any]
    calibrated: dict[str, Any]
    delta: dict[str, Any]


@dataclass(frozen=True)
class CalibrationReport:
    line: str
    spec: str  # the spec file calibrated
    source: str  # where the event log came from
    window: dict[str, float | None]
    replications_in_data: int
    observations: int
    min_observations: int
    created: str
    parameters: list[ParameterResult]
    kpis: list[KpiChange] = field(default_factory=list)
    kpi_settings: dict[str, Any] = field(default_factory=dict)  # replications, seed, horizon, warm-up
    out: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[ParameterResult]:
        return [p for p in self.parameters if p.status == CHANGED]

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "line": self.line,
                "spec": self.spec,
                "source": self.source,
                "window": self.window,
                "replications_in_data": self.replications_in_data,
                "observations": self.observations,
                "min_observations": self.min_observations,
                "created": self.created,
                "changed": len(self.changed),
                "kept": len(self.parameters) - len(self.changed),
                "parameters": [p.to_dict() for p in self.parameters],
                "kpis": [asdict(k) for k in self.kpis],
                "kpi_settings": self.kpi_settings,
                "out": self.out,
                "notes": self.notes,
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value
