"""twin: a digital twin of pharmaceutical production lines.

    >>> import twin
    >>> spec = twin.load_spec("osd-tablet")            # a file path or a built-in model
    >>> result = twin.run(spec, replications=5, seed=1)
    >>> result.kpis.summary["oee"]

The public names below load on first use, so that ``import twin`` (and the CLI's start) stays quick.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "EventLog": "twin.eventlog",
    "state_intervals": "twin.eventlog",
    "InputError": "twin.errors",
    "Problem": "twin.errors",
    "SpecError": "twin.errors",
    "TwinError": "twin.errors",
    "LineSpec": "twin.spec.model",
    "compare": "twin.experiment",
    "run": "twin.experiment",
    "with_overrides": "twin.experiment",
    "compute_kpis": "twin.kpis.report",
    "KpiSummary": "twin.kpis.summary",
    "load_spec": "twin.models",
    "simulate": "twin.engine.simulate",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")
