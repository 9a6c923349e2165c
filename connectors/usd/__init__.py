"""USD scenes of a line and its runs, for Omniverse and any USD viewer.

    >>> from connectors.usd import export_scene, load_source
    >>> export_scene([load_source("runs/baseline")], Path("line.usdc"))

The CLI command is ``twin export-usd`` (``connectors.usd.cli``). Modules: ``export`` (sources to a
file), ``timeline`` (event log sampled on a time grid), ``placement`` (where things stand),
``equipment`` and ``assets`` (what draws them), ``scene`` and ``authoring`` (the Sdf layer),
``schema`` (the ``twin:`` API schemas), ``validation`` (``pxr.UsdValidation``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Loaded on first use: a spec's ``extensions.layout`` block (``connectors.usd.layout``) imports this
# package, and validating a spec must not load the exporter (pandas, USD).
_API = {name: "connectors.usd.export" for name in ("ExportReport", "SceneSource", "export_scene", "load_source")}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'connectors.usd' has no attribute {name!r}")
