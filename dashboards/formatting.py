"""Numbers as process engineers read them: KPI values with their 95% confidence intervals.

>>> ci_text({"mean": 0.0903, "ci95": [0.0897, 0.0910]}, scale=24, digits=2)
('2.17', '95% CI 2.15 – 2.18')
>>> hours_text(228.5)
'9.5 d'
"""

from __future__ import annotations

import math
from typing import Any

from twin.clock import rate_unit as rate_unit  # re-exported: one copy in twin.clock
from twin.clock import span_text as hours_text  # noqa: F401  (re-exported)


def number(value: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals and thousands separators; an en dash when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def ci_text(kpi: dict[str, Any] | None, scale: float = 1.0, digits: int = 2) -> tuple[str, str]:
    """The mean and ``95% CI low – high`` of a ``{"mean", "ci95"}`` KPI, scaled."""
    kpi = kpi or {}
    mean = kpi.get("mean")
    low, high = (kpi.get("ci95") or [None, None])[:2]
    value = number(None if mean is None else mean * scale, digits)
    if low is None or high is None:
        return value, "one replication: no CI"
    return value, f"95% CI {number(low * scale, digits)} – {number(high * scale, digits)}"


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value * 100:.{digits}f}%"


def run_label(row: dict[str, Any]) -> str:
    """How the run picker names a run: line · scenario · replications · time · short id."""
    created = str(row.get("created") or "")[:16].replace("T", " ")
    reps = row.get("replications")
    parts = [str(row.get("line") or "?"), str(row.get("scenario") or "baseline")]
    if reps is not None and not (isinstance(reps, float) and math.isnan(reps)):
        parts.append(f"{int(reps)} rep")
    parts += [created, str(row.get("run_id", ""))[:8]]
    return " · ".join(p for p in parts if p)
