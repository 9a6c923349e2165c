"""Forecasts from a snapshot as one USD scene: each scenario a variant, its forecast run animated.

    twin forecast osd-tablet --state now.json --horizon 24h -s "second coater: stations.coating.units=2" --usd f.usdc

The ``twin.forecast_exporters`` plug-in ``usd`` (``twin forecast --usd``): the first forecast run of each
scenario is animated over the horizon (time codes are minutes of the run's clock, from the snapshot on),
and every batch in the line at the snapshot carries its forecast over all runs as attributes:
``twin:forecast:leaveP5/P50/P95`` and, for lines with QC, ``twin:forecast:releaseP5/P50/P95`` (hours on
the run's clock; -1 where they fall after the horizon), ``twin:forecast:leaveChance``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

MAX_SAMPLES = 2000  # time samples per attribute at most: the step grows with the horizon


class UsdForecastExporter:
    """``check(out)`` before the forecasts run, ``export(runs, out)`` after: runs are (name, spec, Forecast)."""

    @staticmethod
    def check(out: Path) -> None:
        from connectors.usd.export import check_out

        check_out(Path(out), "--usd")

    @staticmethod
    def export(runs: list[tuple[str, Any, Any]], out: Path) -> str:
        """Write the scene; a one-line summary of what was written."""
        from connectors.usd.export import SceneSource, export_scene

        first = runs[0][2]
        start, horizon = first.snapshot.time, first.horizon
        sources = [SceneSource(name, spec, result.log, {"scenario": name}) for name, spec, result in runs]
        step = max(1 / 60, horizon / MAX_SAMPLES)

        def decorate(layer: Any, line_paths: list[Any]) -> None:
            for (_, _, result), line_path in zip(runs, line_paths, strict=True):
                _ghosts(layer, line_path, result)

        report = export_scene(sources, Path(out), start_hours=start, end_hours=start + horizon, step_hours=step,
                              decorate=decorate)  # fmt: skip
        names = ", ".join(report.variants)
        return f"wrote {report.path} ({report.bytes / 1e6:.1f} MB): forecast of {horizon:g} h from {start:g} h; {names}"


def _ghosts(layer: Any, line_path: Any, result: Any) -> None:
    """Each live batch's forecast on its batch prim (where the animated run shows it)."""
    from pxr import Sdf

    from connectors.usd.authoring import attribute

    T = Sdf.ValueTypeNames
    start = result.snapshot.time
    for batch, row in result.batches().iterrows():
        prim = layer.GetPrimAtPath(line_path.AppendChild("Batches").AppendChild(f"batch_{int(batch)}"))
        if prim is None:
            continue
        for prefix, name in (("leave", "leave"), ("release", "release")):
            for q in ("p5", "p50", "p95"):
                value = float(row.get(f"{prefix}_{q}", math.nan))
                if math.isnan(value):
                    continue
                hours = -1.0 if math.isinf(value) else start + value
                attribute(prim, f"twin:forecast:{name}{q.upper()}", T.Double, hours, custom=True)
        chance = float(row.get("leave_chance", math.nan))
        if not math.isnan(chance):
            attribute(prim, "twin:forecast:leaveChance", T.Double, chance, custom=True)
