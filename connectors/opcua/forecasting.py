"""Forecasts of the shadow twin, and how they turned out: what the plant did against what was predicted.

    >>> predicted = make_forecast(spec, plant_log, at=120.0, horizon=24.0)   # from the plant's state at 120 h
    >>> score = score_forecast(predicted, plant_log)     # once the plant clock is past 144 h
    >>> accuracy([score, ...])                           # the summary users read

A forecast starts from the plant's snapshot (``twin.snapshot``) and predicts how many batches leave
the line within the horizon and when each batch now in the line leaves it (median and 90%
prediction interval, hours from the snapshot, "after the horizon" where they fall there). Batches are
named by the plant's own ids, so that the score finds them again in the plant's log however the log
is decoded later. The score is the error of the predicted completion times (actual minus median,
hours) and the coverage of the prediction intervals: of every batch's interval, and of the interval
on the number of batches completed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.eventlog import EventLog
from twin.forecast import TIME_BASE, forecast
from twin.snapshot import snapshot_from_log
from twin.spec.model import LineSpec


def make_forecast(
    spec: LineSpec, plant_log: EventLog, at: float, horizon: float, replications: int = 30, seed: int = 1
) -> dict[str, Any]:
    """Forecast ``horizon`` hours from the plant's state at ``at`` (hours of the feed); JSON-able.

    Batch times are in ``TIME_BASE`` (``None``: after the horizon), for every batch in the line."""
    snap = snapshot_from_log(plant_log, at, source="plant")
    result = forecast(spec, snap, horizon, replications, seed)
    batches, released = {}, {}
    for record in result.batch_records():
        if record["label"] is not None and record["leaves_line"] is not None:
            batches[str(record["label"])] = record["leaves_line"]
        if record["label"] is not None and record["released"] is not None:
            released[str(record["label"])] = record["released"]  # QC release (the live USD scene shows it)
    return {
        "at": at,
        "horizon": horizon,
        "replications": replications,
        "time_base": TIME_BASE,
        "completed": result.intervals()["completed"],
        "batches": batches,
        "released": released,
    }


def _leaves(plant_log: EventLog) -> dict[str, float]:
    """The plant's batch id -> when it left the line."""
    table, meta = plant_log.table, plant_log.meta
    plant = meta.extra.get("plant_batches") or []
    left = table[(table["event"] == "leave") & (table["station"] == meta.stations[-1])]
    return {str(plant[b]): float(t) for b, t in zip(left["batch"], left["time"], strict=True) if 0 <= b < len(plant)}


def _hours(value: float | None, offset: float) -> float:
    return math.inf if value is None else value - offset


def score_forecast(predicted: dict[str, Any], plant_log: EventLog) -> dict[str, Any]:
    """How the forecast turned out; the plant log must reach the end of its horizon.

    Every batch predicted is scored: covered when it left the line within its interval, or after the
    horizon where the interval reaches past it. Errors (actual minus median) are of the batches whose
    median and actual time both lie within the horizon."""
    start, end = predicted["at"], predicted["at"] + predicted["horizon"]
    if plant_log.meta.horizon < end:
        raise ValueError(f"the plant log ends at {plant_log.meta.horizon:g} h, before the forecast's end {end:g} h")
    offset = 0.0 if predicted.get("time_base") == TIME_BASE else start  # older forecasts: hours on the plant's clock
    leaves = _leaves(plant_log)
    done = sum(1 for t in leaves.values() if start < t <= end)
    interval = predicted["completed"]
    errors, covered = [], []
    for label, p in predicted["batches"].items():
        actual = leaves.get(label)
        after = actual is None or actual > end
        when = math.inf if after else actual - start
        low, mid, high = (_hours(p[k], offset) for k in ("p5", "p50", "p95"))
        covered.append(low - 1e-9 <= when <= high + 1e-9)
        if not after and math.isfinite(mid):
            errors.append(when - mid)
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
