"""USD scenes of a line and its runs, for Omniverse and any USD viewer.

    >>> from connectors.usd import export_scene, load_source
    >>> export_scene([load_source("runs/baseline")], Path("line.usdc"))

The CLI command is ``twin export-usd`` (``connectors.usd.cli``). Modules: ``export`` (sources to a
file), ``timeline`` (event log sampled on a time grid), ``placement`` (where things stand),
``equipment`` and ``assets`` (what draws them), ``scene`` and ``authoring`` (the Sdf layer),
``schema`` (the ``twin:`` API schemas), ``validation`` (``pxr.UsdValidation``).
"""

from __future__ import annotations

from connectors.usd.export import ExportReport, SceneSource, export_scene, load_source

__all__ = ["ExportReport", "SceneSource", "export_scene", "load_source"]
