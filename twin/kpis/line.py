"""The line KPIs as people read them: one table that the CLI, the run store and the what-if deltas share.

    >>> [k.label for k in LINE_KPIS if k.row]
    ['Throughput', 'Output', 'Lead time', 'WIP', 'Line OEE', 'QC time', ...]
    >>> stat(summary, LINE_KPI["qc_time_hours"])      # {"mean": ..., "ci95": [lo, hi]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LineKpi:
    """One line KPI: its per-replication column, where its interval lies in the summary, how it reads."""

    column: str
    path: tuple[str, ...]
    label: str
    unit: str
    digits: int
    higher_is_better: bool = False
    row: bool = True  # a row of its own in the `run` and `compare` tables
    stored: bool = False  # a column of the run store's catalog (mean and 95% CI)
    optional: bool = False  # shown in tables only where some run has a value other than 0

    @property
    def percent(self) -> bool:
        return self.unit == "%"


LINE_KPIS: tuple[LineKpi, ...] = (
    LineKpi("throughput_per_hour", ("throughput_per_hour",), "Throughput", "batches/h", 4, True, stored=True),
    LineKpi("units_per_hour", ("units_per_hour",), "Output", "units/h", 0, True, stored=True),
    LineKpi("lead_time_hours", ("lead_time_hours",), "Lead time", "h", 2, False, stored=True),
    LineKpi("lead_time_p50_hours", ("lead_time_hours", "p50"), "Lead time p50", "h", 2, False, row=False, stored=True),
    LineKpi("lead_time_p90_hours", ("lead_time_hours", "p90"), "Lead time p90", "h", 2, False, row=False, stored=True),
    LineKpi("wip", ("wip",), "WIP", "batches", 2, False, stored=True),
    LineKpi("oee", ("oee",), "Line OEE", "%", 1, True, stored=True),
    LineKpi("qc_time_hours", ("release", "qc_time_hours"), "QC time", "h", 1, optional=True),
    LineKpi("release_lead_time_hours", ("release", "lead_time_hours"), "Release lead time", "h", 1, optional=True),
    LineKpi("rejected_batches", ("quality", "rejected_batches"), "Rejected batches", "batches", 1, optional=True),
    LineKpi("hold_violations", ("quality", "hold_violations"), "Hold violations", "events", 1, optional=True),
)
LINE_KPI = {k.column: k for k in LINE_KPIS}


def stat(summary: Mapping[str, Any], kpi: LineKpi) -> Mapping[str, Any]:
    """The KPI's ``{"mean", "ci95"}`` in a summary (``compute_kpis(log).summary``); empty when absent."""
    node: Any = summary
    for key in kpi.path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) and "mean" in node else {"mean": None, "ci95": [None, None]}


def shown(kpi: LineKpi, summaries: list[Mapping[str, Any]]) -> bool:
    """Whether a table of these summaries shows the KPI: always, or (optional ones) where some value is not 0."""
    return not kpi.optional or any(stat(s, kpi)["mean"] not in (None, 0, 0.0) for s in summaries)


def constraint_of(summary: Mapping[str, Any]) -> str | None:
    """The station a summary's line OEE is valued at (None: no output to value)."""
    return (summary.get("constraint") or {}).get("station")


def constraint_text(summary: Mapping[str, Any]) -> str:
    """What line OEE is valued at, for a table's unit column: "valued at coating, the constraint"
    ("" for a summary stored by a twin that did not record it)."""
    if "constraint" not in summary:
        return ""
    station = constraint_of(summary)
    if station is None:
        return "no output to value"
    counts = (summary.get("constraint") or {}).get("replications") or {}
    total, mine = sum(counts.values()), counts.get(station, 0)
    split = f" in {mine} of {total} replications" if 0 < mine < total else ""
    return f"valued at {station}, the constraint{split}"


def constraint_moved(baseline: Mapping[str, Any], scenario: Mapping[str, Any], name: str) -> str | None:
    """A sentence when a what-if values line OEE at another station than the baseline does, else None."""
    a, b = constraint_of(baseline), constraint_of(scenario)
    if a is None or b is None or a == b:
        return None
    return (
        f"{name}: line OEE is valued at {b}, the baseline's at {a}: the constraint moved, so the two OEE "
        f"figures are shares of different stations' time (compare throughput and output instead)"
    )


FACTOR_LABELS = {"oee": "OEE", "utilization": "utilization", "availability": "availability",
                 "performance": "performance", "quality": "quality"}  # fmt: skip
"""How a station's factor reads in a table row: ``f"{station} {FACTOR_LABELS[factor]}"`` (a share, in %)."""


def station_factor_label(key: str) -> str:
    """``"coating.oee"`` -> ``"coating OEE"``."""
    station, _, factor = key.rpartition(".")
    return f"{station} {FACTOR_LABELS.get(factor, factor.replace('_', ' '))}"
