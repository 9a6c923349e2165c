"""Forecasts of the shadow twin, and how they turned out: what the plant did against what was predicted.

    >>> predicted = make_forecast(spec, plant_log, at=120.0, horizon=24.0)   # from the plant's state at 120 h
    >>> score = score_forecast(predicted, plant_log)     # once the plant clock is past 144 h
    >>> accuracy([score, ...])                           # the summary users read

A forecast starts from the plant's snapshot (``twin.snapshot``) and predicts how many batches leave
the line within the horizon and when each batch now in the line leaves it (median and 90%
prediction interval). Batches are named by the plant's own ids, so that the score finds them again
in the plant's log however the log is decoded later. The score is the error of the predicted
completion times (actual minus median, hours) and the coverage of the prediction intervals: of the
batch intervals, and of the interval on the number of batches completed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.eventlog import EventLog
from twin.forecast import forecast
from twin.snapshot import snapshot_from_log
from twin.spec.model import LineSpec

LIKELY = 0.5  # batches predicted to leave with at least this chance are scored one by one


def make_forecast(
    spec: LineSpec, plant_log: EventLog, at: float, horizon: float, replications: int = 30, seed: int = 1
) -> dict[str, Any]:
    """Forecast ``horizon`` hours from the plant's state at ``at`` (hours of the feed); JSON-able."""
    snap = snapshot_from_log(plant_log, at, source="plant")
    result = forecast(spec, snap, horizon, replications, seed)
    completed = result.totals["completed"]
    batches = {}
    for batch, row in result.batches.iterrows():
        label = snap.labels.get(int(batch))
        if label is None or not row["leave_chance"] > 0:
            continue
        batches[label] = {
            "p5": float(row["leave_p5"]),
            "p50": float(row["leave_p50"]),
            "p95": float(row["leave_p95"]),
            "chance": float(row["leave_chance"]),
        }
    return {
        "at": at,
        "horizon": horizon,
        "replications": replications,
        "completed": {
            "mean": float(completed.mean()),
            "p5": float(completed.quantile(0.05)),
            "p50": float(completed.quantile(0.5)),
            "p95": float(completed.quantile(0.95)),
        },
        "batches": batches,
    }


def _leaves(plant_log: EventLog) -> dict[str, float]:
    """The plant's batch id -> when it left the line."""
    table, meta = plant_log.table, plant_log.meta
    plant = meta.extra.get("plant_batches") or []
    left = table[(table["event"] == "leave") & (table["station"] == meta.stations[-1])]
    return {str(plant[b]): float(t) for b, t in zip(left["batch"], left["time"], strict=True) if 0 <= b < len(plant)}


def score_forecast(predicted: dict[str, Any], plant_log: EventLog) -> dict[str, Any]:
    """How the forecast turned out; the plant log must reach the end of its horizon."""
    start, end = predicted["at"], predicted["at"] + predicted["horizon"]
    if plant_log.meta.horizon < end:
        raise ValueError(f"the plant log ends at {plant_log.meta.horizon:g} h, before the forecast's end {end:g} h")
    leaves = _leaves(plant_log)
    done = sum(1 for t in leaves.values() if start < t <= end)
    interval = predicted["completed"]
    errors, covered = [], []
    for label, p in predicted["batches"].items():
        if p["chance"] < LIKELY:
            continue
        actual = leaves.get(label)
        if actual is None or actual > end:  # predicted to leave, did not: outside its interval
            covered.append(False)
            continue
        errors.append(actual - p["p50"])
        covered.append(p["p5"] - 1e-9 <= actual <= p["p95"] + 1e-9)
    return {
        "completed": done,
        "completed_covered": bool(interval["p5"] <= done <= interval["p95"]),
        "completed_error": done - interval["p50"],
        "batches_scored": len(covered),
        "batches_covered": int(sum(covered)),
        "mean_abs_error_h": float(np.mean(np.abs(errors))) if errors else None,
        "errors_h": [float(e) for e in errors],
    }


def accuracy(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Across scored forecasts: how many, batch-interval coverage, count-interval coverage, mean |error|."""
    scores = [s for s in scores if s]
    errors = [e for s in scores for e in s["errors_h"]]
    scored = sum(s["batches_scored"] for s in scores)
    return {
        "forecasts": len(scores),
        "batches_scored": scored,
        "batch_coverage": sum(s["batches_covered"] for s in scores) / scored if scored else None,
        "completed_coverage": float(np.mean([s["completed_covered"] for s in scores])) if scores else None,
        "mean_abs_error_h": float(np.mean(np.abs(errors))) if errors else None,
        "bias_h": float(np.mean(errors)) if errors else None,
    }
