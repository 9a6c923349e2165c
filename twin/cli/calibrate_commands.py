"""`twin calibrate`: fit a spec's durations, yields and rejects to an event log, and show what it changes.

twin calibrate line.yaml --from runs/plant --out calibrated.yaml
twin calibrate osd-tablet --from events.parquet --stations coating,packaging --from-time 2w --json
twin calibrate line.yaml --from historian.db        # read by a `twin.log_sources` plug-in
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from twin.cli.common import JsonOpt, SeedOpt, SpecArg, console, emit_json, hours_option, progress_bar


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def calibrate_command(
    spec: SpecArg,
    source: Annotated[
        str, typer.Option("--from", help="A run folder, an events.parquet, or a source a log-source plug-in reads.")
    ],
    stations: Annotated[str | None, typer.Option(help="Calibrate only these stations (comma-separated).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the calibrated spec (YAML) here.")] = None,
    min_observations: Annotated[
        int, typer.Option(help="Fewest uncensored observations (batches for shares) to change a value.")
    ] = 10,
    from_time: Annotated[str | None, typer.Option("--from-time", help="Use data from this time on ('2 w').")] = None,
    to_time: Annotated[str | None, typer.Option("--to-time", help="Use data up to this time, e.g. '26 w'.")] = None,
    families: Annotated[
        str | None, typer.Option(help="Candidate families (comma-separated; default all five).")
    ] = None,
    keep_families: Annotated[
        bool, typer.Option("--keep-families", help="Refit each value in the family the spec has.")
    ] = False,
    replications: Annotated[
        int, typer.Option("--replications", "-r", help="Replications of the KPI comparison (0: none).")
    ] = 5,
    seed: SeedOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Estimate processing, failure, repair, changeover, cleaning and QC times, yields and rejects from an event log."""
    from twin.calibrate.calibration import calibrate, with_report_out
    from twin.calibrate.fit import FAMILIES
    from twin.calibrate.observations import Window
    from twin.calibrate.sources import read_source
    from twin.calibrate.write import write_atomically
    from twin.models import resolve
    from twin.spec.loader import load_spec

    path = resolve(spec)
    line = load_spec(path)
    start = hours_option(from_time, line.time_unit, "--from-time", allow_zero=True) if from_time else 0.0
    end = hours_option(to_time, line.time_unit, "--to-time") if to_time else None
    log, label = read_source(source)
    with progress_bar("calibrating") as update:
        result = calibrate(
            line,
            log,
            spec_text=path.read_text(encoding="utf-8"),
            spec_label=str(path),
            source_label=label,
            stations=_names(stations),
            window=Window(start, end),
            min_observations=min_observations,
            families=tuple(_names(families) or FAMILIES),
            keep_families=keep_families,
            replications=replications,
            seed=seed,
            progress=update,
        )
    if out is not None and result.text is not None:
        write_atomically(out, result.text)
        result = with_report_out(result, str(out))
    report = result.report
    if as_json:
        emit_json(report.to_dict())
        return
    page = console()
    page.print(_parameter_table(report))
    if report.kpis:
        page.print(_kpi_table(report))
    for line in _reasons(report):
        page.print(f"kept: {line}", markup=False, highlight=False)
    for note in report.notes:
        page.print(f"note: {note}", markup=False, highlight=False)
    if out is not None:
        page.print(f"calibrated spec written to {out} ({len(report.changed)} values changed)", markup=False)


def _short(value: Any) -> str:
    if value is None:
        return "(default)"
    if isinstance(value, dict):
        if "dist" in value:
            rest = ", ".join(str(v) for k, v in value.items() if k != "dist")
            return f"{value['dist']} {rest}"
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _ci(result: Any) -> str:
    from twin.durations import format_hours

    if result.mean_hours is not None and result.mean_hours.low is not None and result.family != "constant":
        m = result.mean_hours
        return f"mean {format_hours(m.value)} [{format_hours(m.low)}, {format_hours(m.high)}]"
    for name, e in result.estimates.items():
        if e.low is not None and e.low != e.high:
            return f"{name} {e.value:.4g} [{e.low:.4g}, {e.high:.4g}]"
    return "—"


def _new(result: Any) -> str:
    if result.status != "changed":
        return "—"
    if result.kind == "rate":
        return ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in result.assignments.items())
    return _short(result.new)


def _parameter_table(report: Any) -> Any:
    from rich import box
    from rich.table import Table

    window = report.window
    table = Table(
        title=f"{report.line}: calibration from {report.source} "
        f"(data {window['from_hours']:g}-{window['to_hours']:g} h, 95% intervals)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    from twin.calibrate.report import SHORT_REASONS

    for column in ("parameter", "old", "new", "95% CI", "n (censored)", "family", "KS (ref)", "status"):
        table.add_column(column, overflow="fold")
    for r in report.parameters:
        ks = "—" if r.ks is None or r.ks_reference is None else f"{r.ks:.3f} ({r.ks_reference:.3f})"
        status = "changed" if r.status == "changed" else SHORT_REASONS.get(r.code, "kept")
        table.add_row(r.label, _short(r.old), _new(r), _ci(r), f"{r.n} ({r.censored})", r.family or "—", ks, status)
    return table


def _reasons(report: Any) -> list[str]:
    """Why values were kept, where a short status does not say it all."""
    return [f"{r.label}: {r.reason}" for r in report.parameters if r.code in ("too_few", "failed", "unusable")]


def _kpi_table(report: Any) -> Any:
    from rich import box
    from rich.table import Table

    settings = report.kpi_settings
    table = Table(
        title=f"KPI impact: original vs calibrated ({settings.get('replications')} replications, "
        "common random numbers, paired 95% CI)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("KPI", "original", "calibrated", "change"):
        table.add_column(column, justify="left" if column == "KPI" else "right")

    def number(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"

    def fmt(stat: dict[str, Any]) -> str:
        low, high = stat["ci95"]
        mean = stat["mean"]
        if mean is None:
            return "—"
        return number(mean) if low is None else f"{number(mean)} [{number(low)}, {number(high)}]"

    for row in report.kpis:
        table.add_row(row.metric, fmt(row.original), fmt(row.calibrated), fmt(row.delta))
    return table
