"""Optimizers for twin lines: an exact vectorized JAX line evaluator and searches on top of it.

    >>> from optimizers import optimize
    >>> result = optimize(spec, vary=["stations.*.buffer=0..4"], budget={"buffers": 8}, objective="throughput")
    >>> result.best.overrides, result.best.confirmed["throughput_per_hour"]

JAX loads on first use, so importing this package stays quick. ``twin/`` never imports it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {
    "optimize": "optimizers.api",
    "OptimizeResult": "optimizers.api",
    "Evaluator": "optimizers.evaluator",
    "SUBSET": "optimizers.lines",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'optimizers' has no attribute {name!r}")
