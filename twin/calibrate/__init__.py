"""Calibrate a line spec from plant (or simulated) event logs.

    >>> from twin.calibrate import calibrate, read_source, Window
    >>> log, label = read_source("runs/base")
    >>> result = calibrate(spec, log, source_label=label, window=Window(0.0, 2000.0))
    >>> result.report.to_dict()

Modules, one job each: ``sources`` (run folder, Parquet or a ``twin.log_sources`` plug-in),
``observations`` (durations, censored ones included, and counts from the log), ``targets`` (the
spec's values and the observations of each), ``fit`` (maximum likelihood with censoring in JAX,
intervals, family choice, goodness of fit), ``proportions`` (yields, reject and OOS rates),
``estimate`` (new value or the reason to keep the old one), ``write`` (the calibrated file with
provenance comments), ``report`` (plain data for terminals, JSON and dashboards), ``calibration``
(all of it, and the KPI impact).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "calibrate": "twin.calibrate.calibration",
    "Calibration": "twin.calibrate.calibration",
    "Window": "twin.calibrate.observations",
    "read_source": "twin.calibrate.sources",
    "CalibrationReport": "twin.calibrate.report",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'twin.calibrate' has no attribute {name!r}")
