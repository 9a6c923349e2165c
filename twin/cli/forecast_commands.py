"""`twin snapshot` and `twin forecast`: a line's state now, and what comes next.

    twin snapshot runs/base --at 700h --out state.json
    twin snapshot --from-live opc.tcp://127.0.0.1:4840 --map tags.yaml --spec osd-tablet --out state.json
    twin forecast osd-tablet --state state.json --horizon 24h -r 50

Live snapshots come from a plug-in of the ``twin.snapshot_sources`` entry-point group (the OPC-UA
connector registers ``live``): a function ``(spec, endpoint, tag_map) -> Snapshot``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from twin.cli.common import JsonOpt, SeedOpt, console, emit_json, hours_option, progress_bar
from twin.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("snapshot")(snapshot_command)
    app.command("forecast")(forecast_command)


def snapshot_command(
    run_dir: Annotated[Path | None, typer.Argument(help="A run folder to take the state of.")] = None,
    at: Annotated[str | None, typer.Option(help="Time of the run to take, e.g. '700 h' or '4 w'.")] = None,
    replication: Annotated[int, typer.Option(help="Replication of the run.")] = 0,
    from_live: Annotated[str | None, typer.Option("--from-live", help="OPC-UA endpoint of a live plant.")] = None,
    tag_map: Annotated[Path | None, typer.Option("--map", help="Tag map of the live plant.")] = None,
    spec: Annotated[str | None, typer.Option(help="The line's spec (for --from-live).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the snapshot (JSON).")] = Path("snapshot.json"),
) -> None:
    """Take a line's state (units, batches in process and their elapsed time, buffers, quarantine)."""
    from twin.models import load_spec
    from twin.runfolder import read_log
    from twin.snapshot import snapshot_from_log

    if from_live is not None:
        if tag_map is None or spec is None:
            raise InputError("--from-live needs --map TAGS.yaml and --spec SPEC")
        sources = {e.name: e for e in entry_points(group="twin.snapshot_sources")}
        if "live" not in sources:
            raise InputError("no live snapshot source is installed (the OPC-UA connector provides it)")
        snapshot = sources["live"].load()(load_spec(spec), from_live, tag_map)
    else:
        if run_dir is None or at is None:
            raise InputError("give a run folder and --at T, or --from-live URL --map TAGS.yaml --spec SPEC")
        log = read_log(run_dir)
        time = hours_option(at, "h", "--at", allow_zero=True)
        snapshot = snapshot_from_log(log, time, replication, source=f"run {run_dir}")
    snapshot.save(out)
    busy = sum(1 for u in snapshot.units if u.batch >= 0)
    waiting = sum(len(b) for b in snapshot.buffers.values())
    typer.echo(
        f"{out}: {snapshot.line} at {snapshot.time:g} h: {busy} units holding a batch, {waiting} batches waiting, "
        f"{len(snapshot.quarantine)} in quarantine"
    )


def forecast_command(
    spec: Annotated[str, typer.Argument(help="The line's spec file or built-in model.")],
    state: Annotated[Path, typer.Option("--state", help="A snapshot (from `twin snapshot`).")],
    horizon: Annotated[str, typer.Option(help="How far ahead, e.g. '24 h' or '1 w'.")],
    replications: Annotated[int, typer.Option("--replications", "-r", help="Forecast runs.")] = 50,
    seed: SeedOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Predict batch completions, releases and KPIs from a snapshot, with prediction intervals."""
    from twin.forecast import forecast
    from twin.models import load_spec
    from twin.snapshot import Snapshot

    line = load_spec(spec)
    snapshot = Snapshot.load(state)
    snapshot.check_line(line, str(state))
    hours = hours_option(horizon, line.time_unit, "--horizon")
    with progress_bar("forecasting") as update:
        result = forecast(line, snapshot, hours, replications, seed, update)
    intervals = result.intervals()
    if as_json:
        batches = result.batches.reset_index().astype(object)
        emit_json(
            {
                "line": line.name,
                "from": snapshot.time,
                "horizon_hours": hours,
                "replications": replications,
                "totals": intervals,
                "batches": batches.where(batches.notna(), None).to_dict(orient="records"),
                "kpis": result.kpis.summary,
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"{line.name}: forecast for {hours:g} h from {snapshot.time:g} h ({replications} runs)")
    for column in ("", "mean", "90% prediction interval"):
        table.add_column(column, justify="right" if column else "left")
    for name, label in (("completed", "batches out of the line"), ("released", "batches released by QC")):
        i = intervals[name]
        table.add_row(label, f"{i['mean']:.1f}", f"{i['p5']:.0f} – {i['p95']:.0f}")
    console().print(table)
    batches = Table(title="Batches in the line now: when they leave it (h from now)")
    for column in ("batch", "p5", "median", "p95", "chance within the horizon"):
        batches.add_column(column, justify="right")
    live = [b.batch for b in snapshot.units if b.batch >= 0] + [b for w in snapshot.buffers.values() for b in w]
    for batch in sorted(set(live)):
        if batch in result.batches.index and result.batches.loc[batch, "leave_chance"] > 0:
            row = result.batches.loc[batch]
            batches.add_row(
                str(batch),
                f"{row['leave_p5'] - snapshot.time:.1f}",
                f"{row['leave_p50'] - snapshot.time:.1f}",
                f"{row['leave_p95'] - snapshot.time:.1f}",
                f"{row['leave_chance']:.0%}",
            )
    console().print(batches)
