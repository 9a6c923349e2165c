"""``twin export-usd``: a line or its runs as a USD scene (a plug-in command of the ``twin`` CLI).

twin export-usd osd-tablet --out layout.usda                    # the static layout of a spec
twin export-usd runs/baseline --out baseline.usdc               # a run, animated
twin export-usd runs/baseline runs/coater2 --out compare.usdc   # scenarios in a variant set
twin export-usd runs/baseline --from 1w --to 2w --step "5 min" --speed "1 d"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.common import optional_hours
from twin.durations import format_hours


def _hours(value: str | None, option: str) -> float | None:
    return optional_hours(value, option, allow_zero=True)


def export_usd_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="A run folder (from `twin run --out`), several run folders of one line (one scenario each), "
            "or a spec file or built-in model name (static layout).",
            show_default=False,
            metavar="RUN_DIR|SPEC...",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Scene file: .usdc (binary) or .usda (text). Default: LINE.usdc.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start of the exported window, e.g. '1 w' (bare numbers: hours).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="End of the exported window (default: the run's end).")] = None,
    step: Annotated[str, typer.Option(help="Sampling step of the animation.")] = "1 min",
    speed: Annotated[str, typer.Option(help="Simulated time shown per second of playback.")] = "1 h",
    replication: Annotated[int, typer.Option("--replication", "-r", help="Which replication of the run.")] = 0,
    check: Annotated[bool, typer.Option("--check", help="Run USD's validators on the written scene.")] = False,
) -> None:
    """Export a line's layout, or its runs animated, as a USD scene for Omniverse and USD viewers."""
    from connectors.usd.export import export_scene, load_source

    loaded = [load_source(s) for s in sources]
    target = out if out is not None else Path(f"{loaded[0].spec.name}.usdc")
    report = export_scene(
        loaded, target, start_hours=_hours(from_, "--from"), end_hours=_hours(to, "--to"),
        step_hours=_hours(step, "--step") or 0.0, replication=replication, speed_hours=_hours(speed, "--speed") or 0.0,
    )  # fmt: skip
    size = report.bytes / 1e6
    what = f"{report.units} units"
    if report.start_code is not None:
        span = format_hours((report.end_code - report.start_code) / 60.0)
        what += f", {report.batches} batches, {span} of the run ({report.samples:,} time samples, step {step})"
    if len(report.variants) > 1:
        what += f", scenarios: {', '.join(report.variants)}"
    typer.echo(f"wrote {report.path} ({size:.1f} MB): {what}")
    if check:
        from connectors.usd.validation import validate_scene

        problems = validate_scene(report.path)
        for problem in problems:
            typer.echo(problem, err=True)
        if problems:
            raise typer.Exit(1)
        typer.echo("UsdValidation: no errors")


def register(app: typer.Typer) -> None:
    """Add ``export-usd`` to the ``twin`` CLI."""
    app.command("export-usd")(export_usd_command)
