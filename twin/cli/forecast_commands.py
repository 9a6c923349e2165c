"""`twin snapshot` and `twin forecast`: a line's state now, and what comes next.

    twin snapshot runs/base --at 700h --out state.json
    twin snapshot plant-history.db --out state.json          # where the historian ends (OPC-UA plug-in)
    twin snapshot --from-live opc.tcp://127.0.0.1:4840 --map tags.yaml --spec osd-tablet --out state.json
    twin forecast osd-tablet --state state.json --horizon 24h -r 50
    twin forecast osd-tablet --state state.json --horizon 24h -s "coater2: stations.coating.units=2" --usd f.usdc

Live snapshots come from a plug-in of the ``twin.snapshot_sources`` entry-point group (the OPC-UA
connector registers ``live``): a function ``(spec, endpoint, tag_map) -> Snapshot``. ``--usd`` hands the
forecasts to the ``usd`` plug-in of the ``twin.forecast_exporters`` group (the USD connector): an object
with ``check(out)`` and ``export([(name, spec, Forecast), ...], out) -> str``.
"""

from __future__ import annotations

import math
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
    source: Annotated[
        str | None, typer.Argument(help="A run folder, an events.parquet, or a plant historian (with its plug-in).")
    ] = None,
    at: Annotated[str | None, typer.Option(help="Time to take, e.g. '700 h' or '4 w' (default: the end).")] = None,
    replication: Annotated[int, typer.Option(help="Replication of the run.")] = 0,
    from_live: Annotated[str | None, typer.Option("--from-live", help="OPC-UA endpoint of a live plant.")] = None,
    tag_map: Annotated[Path | None, typer.Option("--map", help="Tag map of the live plant.")] = None,
    spec: Annotated[str | None, typer.Option(help="The line's spec (for --from-live).")] = None,
    security: Annotated[str, typer.Option(help="--from-live: none, sign or sign-encrypt.")] = "sign-encrypt",
    user: Annotated[str | None, typer.Option(help="--from-live: user name (password from --password-env).")] = None,
    password_env: Annotated[str, typer.Option(help="Environment variable with the password.")] = "TWIN_OPCUA_PASSWORD",
    out: Annotated[Path, typer.Option("--out", help="Where to write the snapshot (JSON).")] = Path("snapshot.json"),
) -> None:
    """Take a line's state (units, batches in process and their elapsed time, buffers, quarantine)."""
    from twin.calibrate.sources import read_source
    from twin.models import load_spec
    from twin.snapshot import snapshot_from_log

    if from_live is not None:
        if tag_map is None or spec is None:
            raise InputError("--from-live needs --map TAGS.yaml and --spec SPEC")
        if source is not None or at is not None:
            raise InputError("--from-live takes the plant's state now: give no SOURCE and no --at")
        sources = {e.name: e for e in entry_points(group="twin.snapshot_sources")}
        if "live" not in sources:
            raise InputError("no live snapshot source is installed (the OPC-UA connector provides it)")
        connection = {"security": security, "user": user, "password_env": password_env}
        snapshot = sources["live"].load()(load_spec(spec), from_live, tag_map, **connection)
    else:
        if source is None:
            raise InputError(
                "give a run folder (or event log, or historian), or --from-live URL --map TAGS.yaml --spec SPEC"
            )
        log, label = read_source(source)
        time = log.meta.horizon if at is None else hours_option(at, "h", "--at", allow_zero=True)
        if not 0 <= time <= log.meta.horizon:
            raise InputError(f"--at {at}: outside the log ({label} covers 0 to {log.meta.horizon:g} h)")
        if not 0 <= replication < log.meta.replications:
            raise InputError(f"--replication {replication}: {label} has {log.meta.replications} replication(s)")
        snapshot = snapshot_from_log(log, time, replication, source=label)
    snapshot.save(out)
    busy = sum(1 for u in snapshot.units if u.batch >= 0)
    waiting = sum(len(b) for b in snapshot.buffers.values())
    unknown = sum(1 for b in snapshot.batches.values() if b.released is None)
    before = sum(1 for u in snapshot.units if u.started_before_data)
    note = (
        f"; from before the data begin: {unknown} release time(s) unknown, {before} batch(es) started earlier"
        if unknown or before
        else ""
    )
    typer.echo(
        f"{out}: {snapshot.line} at {snapshot.time:g} h: {busy} units holding a batch, {waiting} batches waiting, "
        f"{len(snapshot.quarantine)} in quarantine{note}"
    )


def forecast_command(
    spec: Annotated[str, typer.Argument(help="The line's spec file or built-in model.")],
    state: Annotated[Path, typer.Option("--state", help="A snapshot (from `twin snapshot`).")],
    horizon: Annotated[str, typer.Option(help="How far ahead, e.g. '24 h' or '1 w'.")],
    replications: Annotated[int, typer.Option("--replications", "-r", help="Forecast runs.")] = 50,
    seed: SeedOpt = 1,
    as_json: JsonOpt = False,
    usd: Annotated[
        Path | None, typer.Option("--usd", help="Also write the forecast as a USD scene (.usdc/.usda; USD plug-in).")
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help='With --usd: a what-if from now, "NAME: path=value, ...", a variant '
                     "beside 'as is'. Repeatable."),
    ] = None,
) -> None:
    """Predict batch completions, releases and KPIs from a snapshot, with prediction intervals."""
    from twin.forecast import TIME_BASE, forecast
    from twin.models import load_spec
    from twin.snapshot import Snapshot

    line = load_spec(spec)
    snapshot = Snapshot.load(state)
    snapshot.check_line(line, str(state))
    hours = hours_option(horizon, line.time_unit, "--horizon")
    exporter, what_ifs = _usd_exporter(usd, scenario or [], spec, snapshot, state)
    with progress_bar("forecasting") as update:
        result = forecast(line, snapshot, hours, replications, seed, update)
    if exporter is not None:
        runs = [("as is", line, result)]
        for name, what_if in what_ifs:
            with progress_bar(f"forecasting {name}") as update:
                runs.append((name, what_if, forecast(what_if, snapshot, hours, replications, seed, update)))
        typer.echo(exporter.export(runs, usd), err=as_json)
    intervals = result.intervals()
    if as_json:
        emit_json(
            {
                "line": line.name,
                "from": snapshot.time,
                "horizon_hours": hours,
                "replications": replications,
                "time_base": f"{TIME_BASE} (at {snapshot.time:g} h on the run's clock); null: after the horizon",
                "totals": intervals,
                "batches": result.batch_records(),
                "kpis": result.kpis.summary,
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"{line.name}: forecast for {hours:g} h from {snapshot.time:g} h ({replications} runs)")
    for column in ("", "mean", "median", "90% prediction interval"):
        table.add_column(column, justify="right" if column else "left")
    for name, label in (("completed", "batches out of the line"), ("released", "batches released by QC")):
        if name == "released" and line.qc is None:
            continue
        i = intervals[name]
        table.add_row(label, f"{i['mean']:.1f}", f"{i['p50']:.0f}", f"{i['p5']:.0f} – {i['p95']:.0f}")
    console().print(table)
    batches = result.batches()
    title = (
        f"Every batch in the line now: when it leaves the line{' and QC releases it' if line.qc else ''}, "
        f"{TIME_BASE}; percentiles over all runs, 'after' where they fall after the {hours:g} h horizon"
    )
    listing = Table(title=title)
    columns = ["batch", "where", "leaves: p5", "median", "p95", "chance"]
    columns += ["released: median", "chance"] if line.qc is not None else []
    for column in columns:
        listing.add_column(column, justify="left" if column in ("batch", "where") else "right")
    for batch, row in batches.iterrows():
        cells = [str(row["label"] or batch), str(row["where"])]
        cells += [_when(row["leave_p5"], hours), _when(row["leave_p50"], hours), _when(row["leave_p95"], hours)]
        cells.append(_chance(row["leave_chance"]))
        if line.qc is not None:
            cells += [_when(row["release_p50"], hours), _chance(row["release_chance"])]
        listing.add_row(*cells)
    console().print(listing)


def _usd_exporter(usd: Path | None, scenarios: list[str], spec: str, snapshot: object, state: Path) -> tuple:
    """The ``twin.forecast_exporters`` plug-in ``usd`` (checked against ``usd``) and the what-if specs, or None."""
    if usd is None:
        if scenarios:
            raise InputError("-s: scenarios from now go to the USD scene; add --usd OUT.usdc")
        return None, []
    from twin.cli.scenarios import parse_scenario
    from twin.models import load_spec

    exporters = {e.name: e for e in entry_points(group="twin.forecast_exporters")}
    if "usd" not in exporters:
        raise InputError("--usd: no USD exporter is installed (the USD connector provides it)")
    exporter = exporters["usd"].load()
    exporter.check(usd)
    what_ifs = []
    for text in scenarios:
        name, assignments = parse_scenario(text)
        if name == "as is" or name in [n for n, _ in what_ifs]:
            raise InputError(f"-s {text!r}: scenario {name!r} is given twice")
        what_if = load_spec(spec, assignments)
        snapshot.check_line(what_if, f"{state} (scenario {name!r})")  # type: ignore[attr-defined]
        what_ifs.append((name, what_if))
    return exporter, what_ifs


def _when(hours: float, horizon: float) -> str:
    """A forecast time for tables: hours from the snapshot, "after" past the horizon, "—" where it does not apply."""
    if math.isnan(hours):
        return "—"
    return "after" if math.isinf(hours) else f"{hours:.1f}"


def _chance(share: float) -> str:
    return "—" if math.isnan(share) else f"{share:.0%}"
