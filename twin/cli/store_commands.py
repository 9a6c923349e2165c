"""CLI commands of the run store and of sweeps: ``twin runs ...`` and ``twin sweep``.

    twin sweep osd-tablet --grid stations.compression.units=1,2 --grid stations.coating.buffer=0..4 -r 10
    twin sweep my_line.yaml --scenarios what-ifs.csv --scheduler tcp://10.0.0.5:8786 --rank oee
    twin runs list --where "sweep_id = '3f2a9c1e' AND oee > 0.4"
    twin runs show 3f2a9c
    twin runs diff 3f2a9c 77b0e1
    twin runs export 3f2a9c --to out/press2 --format csv
    twin runs rm 3f2a9c 77b0e1

The store is ``--store DIR``, else ``$TWIN_STORE``, else ``./twin-runs``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from twin.cli.common import (
    HorizonOpt,
    JsonOpt,
    ReplicationsOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    WarmupOpt,
    emit_json,
    progress_bar,
    spec_hours,
    stderr,
)
from twin.cli.entry import interrupt_exit_code
from twin.cli.render import console, line_table, oee_table, station_table
from twin.cli.store_render import (
    SHORT_ID,
    changes_table,
    csv_frame,
    delta_table,
    info_table,
    plain,
    ranked_table,
    records,
    runs_table,
)
from twin.errors import InputError, Terminated
from twin.models import load_spec
from twin.store.store import RunStore, default_store_path, existing_store

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Run store folder (default: $TWIN_STORE, else ./twin-runs).")
]
WhereOpt = Annotated[str | None, typer.Option("--where", help="SQL condition on the catalog's columns.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV on stdout instead of a table.")]
RunArg = Annotated[str, typer.Argument(help="A run id, or a unique prefix of one (at least 4 characters).")]


def register(app: typer.Typer) -> None:
    """Add ``twin runs ...`` and ``twin sweep`` to the CLI."""
    runs = typer.Typer(
        name="runs",
        help="The run store: list, show, compare, export and remove stored runs.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    runs.command("list")(list_command)
    runs.command("show")(show_command)
    runs.command("diff")(diff_command)
    runs.command("rm")(rm_command)
    runs.command("export")(export_command)
    runs.command("query")(query_command)
    app.add_typer(runs)
    app.command("sweep")(sweep_command)


def _open(store: Path | None, create: bool = False) -> RunStore:
    return RunStore(store, create=create)


def _print_frame(frame, as_json: bool, as_csv: bool, table) -> None:  # type: ignore[no-untyped-def]
    if as_json and as_csv:
        raise InputError("--json and --csv: choose one")
    if as_json:
        emit_json(records(frame))
    elif as_csv:
        csv_frame(frame).to_csv(sys.stdout, index=False)
    else:
        console().print(table())


def list_command(
    where: WhereOpt = None,
    order_by: Annotated[str, typer.Option("--order-by", help="SQL ORDER BY of the catalog.")] = "created, run_id",
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many runs.")] = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    store: StoreOpt = None,
) -> None:
    """List stored runs (all the catalog's columns with --json or --csv)."""
    run_store = _open(store)
    frame = run_store.list(where, order_by, limit)
    title = f"{len(frame)} run{'s' if len(frame) != 1 else ''} in {run_store.root}"
    title += f" where {where}" if where else ""
    _print_frame(frame, as_json, as_csv, lambda: runs_table(frame, title))


def query_command(
    sql: Annotated[str, typer.Argument(help="SQL on the table `runs` (the catalog), e.g. 'SELECT ... FROM runs'.")],
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    store: StoreOpt = None,
) -> None:
    """Run SQL (DuckDB) on the catalog of stored runs."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    frame = _open(store).query(sql)

    def table() -> Table:
        out = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in frame.columns:
            out.add_column(escape(str(column)), overflow="fold")
        for row in records(frame):
            out.add_row(*(escape("—" if v is None else str(v)) for v in row.values()))
        return out

    _print_frame(frame, as_json, as_csv, table)


def show_command(run: RunArg, as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """Show a stored run: what it ran and its KPI tables."""
    run_store = _open(store)
    info, summary = run_store.info(run), run_store.summary(run)
    if as_json:
        emit_json({"run": info, "kpis": summary})
        return
    out = console()
    out.print(info_table(info, str(run_store.path(run))))
    out.print(line_table(summary))
    out.print(station_table(summary))
    out.print(oee_table(summary))


def diff_command(run_a: RunArg, run_b: RunArg, as_json: JsonOpt = False, store: StoreOpt = None) -> None:
    """Compare two stored runs: what differs in spec and settings, and the KPI deltas (b - a)."""
    import yaml

    from twin.kpis.line import constraint_moved, constraint_of
    from twin.runfolder import SPEC_FILE
    from twin.store.diff import kpi_deltas, spec_changes

    run_store = _open(store)
    ids = (run_store.resolve(run_a), run_store.resolve(run_b))
    infos = [run_store.info(i) for i in ids]
    summaries = [run_store.summary(i) for i in ids]
    specs = [yaml.safe_load((run_store.path(i) / SPEC_FILE).read_text(encoding="utf-8")) for i in ids]
    settings = [{k: info.get(k) for k in ("seed", "replications", "horizon", "warmup")} for info in infos]
    changes = [(f"({k})", settings[0][k], settings[1][k]) for k in settings[0] if settings[0][k] != settings[1][k]]
    changes += spec_changes(specs[0], specs[1])
    tables = [run_store.per_replication(i) for i in ids]
    paired = infos[0].get("seed") == infos[1].get("seed")
    deltas = kpi_deltas(tables[0], tables[1], paired)
    means = tuple({m: float(t[m].mean()) for m in deltas} for t in tables)
    how = "paired over common replications: same seed" if paired else "Welch: different seeds"
    labels = ("A", "B")
    if as_json:
        emit_json({
            "a": {"run_id": ids[0], "scenario": infos[0]["scenario"]},
            "b": {"run_id": ids[1], "scenario": infos[1]["scenario"]},
            "changes": [{"path": p, "a": plain(va), "b": plain(vb)} for p, va, vb in changes],
            "paired": paired,
            "constraint": {"a": constraint_of(summaries[0]), "b": constraint_of(summaries[1]),
                           "moved": constraint_moved(summaries[0], summaries[1], "B")},
            "kpis": {m: {"a": plain(means[0][m]), "b": plain(means[1][m]), "delta": d.as_dict()}
                     for m, d in deltas.items()},
        })  # fmt: skip
        return
    out = console()
    for label, info in zip(labels, infos, strict=True):
        sweep = f", sweep {info['sweep_id'][:8]}" if info.get("sweep_id") else ""
        what = f"{info['line']} {info['scenario']!r}{sweep}, seed {info['seed']}, {info['replications']} replications"
        out.print(f"{label}: run {info['run_id'][:12]}, {what}", markup=False, highlight=False)
    if changes:
        out.print(changes_table(changes, *labels))
    else:
        out.print("Same spec and settings.")
    out.print(delta_table((summaries[0], summaries[1]), (means[0], means[1]), deltas, labels, how))
    moved = constraint_moved(summaries[0], summaries[1], "B")
    if moved:
        out.print(f"note: {moved}", markup=False, highlight=False)


def rm_command(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids or unique prefixes.")] = None,
    where: WhereOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm removing every run that --where selects.")] = False,
    store: StoreOpt = None,
) -> None:
    """Remove stored runs, by id or by an SQL condition (--where with --yes)."""
    run_store = _open(store)
    ids = [run_store.resolve(r) for r in runs or ()]  # every id checked before anything is removed
    if where:
        selected = run_store.list(where)["run_id"].tolist()
        if selected and not yes:
            raise InputError(f"--where {where!r} selects {len(selected)} run(s); add --yes to remove them")
        ids += selected
    if not runs and not where:
        raise InputError("name the runs to remove (ids or prefixes), or select them with --where ... --yes")
    removed = run_store.delete(dict.fromkeys(ids))
    typer.echo(f"removed {len(removed)} run{'s' if len(removed) != 1 else ''} from {run_store.root}")


def export_command(
    runs: Annotated[list[str], typer.Argument(help="Run ids or unique prefixes.")],
    to: Annotated[Path, typer.Option("--to", help="Folder to write (must not exist).")],
    fmt: Annotated[str, typer.Option("--format", help="parquet (a run folder) or csv.")] = "parquet",
    store: StoreOpt = None,
) -> None:
    """Copy runs out of the store: one run to the folder --to, several to --to/RUN_ID each."""
    from twin.store.export import FORMATS, export_run

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    run_store = _open(store)
    ids = list(dict.fromkeys(run_store.resolve(r) for r in runs))
    if to.exists():
        raise InputError(f"{to}: already exists; choose another --to or remove it")
    if len(ids) == 1:
        export_run(run_store, ids[0], to, fmt)
    else:
        for run_id in ids:
            export_run(run_store, run_id, to / run_id, fmt)
    typer.echo(f"exported {len(ids)} run{'s' if len(ids) != 1 else ''} to {to} ({fmt})")


def sweep_command(
    spec: SpecArg,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", "-g", help="An axis: PATH=V1,V2,... or PATH=A..B[..STEP]. Repeatable (full factorial)."),
    ] = None,
    scenarios: Annotated[
        Path | None, typer.Option("--scenarios", help="CSV: one scenario a row, columns are dotted paths (+ `name`).")
    ] = None,
    replications: ReplicationsOpt = 5,
    seed: SeedOpt = 1,
    horizon: HorizonOpt = None,
    warmup: WarmupOpt = None,
    set_: SetOpt = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Address of a running Dask scheduler, e.g. tcp://host:8786.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Local Dask worker processes (0: in this process; default: in this process, then one worker "
            "per core once the measured pace says a cluster pays, see TWIN_DASK_PAYS_S).",
        ),
    ] = None,
    rank: Annotated[
        str, typer.Option("--rank", help="KPI that orders the summary, best first (e.g. oee, lead_time_hours).")
    ] = "throughput_per_hour",
    top: Annotated[int | None, typer.Option("--top", help="Show only the best N points.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every point and say what would run.")] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Run many what-ifs of a line (a grid or a CSV of scenarios) in process or on Dask and store every point."""
    from twin.sweep import SweepRunner, combine, csv_points, grid_points, plan_sweep, rank_order, sweep_table
    from twin.sweep.backends import PointFailed, dask_pays_s

    store_path = store or default_store_path()
    run_store = existing_store(store_path)  # a store this twin cannot read is refused before anything else
    base = load_spec(spec, set_ or ())
    hours, warm = spec_hours(horizon, base, "--horizon"), spec_hours(warmup, base, "--warmup")
    rank_order(rank, [s.name for s in base.stations])
    if scheduler and workers is not None:
        raise InputError("--scheduler and --workers: choose one (the cluster at --scheduler has its own workers)")
    if top is not None and top < 1:
        raise InputError(f"--top {top}: must be 1 or more")
    if scheduler is None and workers is None:
        dask_pays_s()  # a bad TWIN_DASK_PAYS_S is refused before anything is written
    points = combine(csv_points(scenarios) if scenarios else [], grid_points(grid or []))
    sweep = plan_sweep(base, points, replications, seed, hours, warm, source=spec, base_overrides=tuple(set_ or ()))
    if run_store is None and not dry_run:  # created only once every point is known to be valid
        run_store = RunStore(store_path, create=True)
    runner = SweepRunner(sweep, run_store, scheduler, workers)
    todo = runner.plan()
    say = lambda text: stderr.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    say(
        f"sweep {sweep.sweep_id}: {len(sweep.points)} point{'s' if len(sweep.points) != 1 else ''} × "
        f"{replications} replications of {base.name}; {runner.reused} already stored, {len(todo)} to run"
    )
    if dry_run:
        for p in sweep.points:
            typer.echo(f"{p.name}\t{' '.join(p.point.overrides) or '(the spec as is)'}\t{p.spec.spec_hash[:SHORT_ID]}")
        return
    if not os.environ.get("TWIN_DEBUG"):  # Dask's log lines (with tracebacks) only on request
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
    try:
        with progress_bar(f"sweep {sweep.sweep_id[:8]}: {len(todo)} points") as update:
            runner.run(update, on_backend=lambda backend: say(f"running {backend}"))
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM
        run_store.clear_work(mine=True)  # a save cut short leaves no debris either
        done = len(run_store.find_points(p.key for p in sweep.unique_points()))  # a save may end as the signal lands
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        say(f"{what}: {done} of {len(sweep.unique_points())} points stored in {run_store.root}; "
            "run the same command again to run the rest")  # fmt: skip
        raise typer.Exit(interrupt_exit_code(err)) from None
    except PointFailed as err:
        done = runner.reused + runner.ran
        say(f"error: {err}; {done} of {len(sweep.unique_points())} points stored in {run_store.root}; "
            "the same command runs the rest")  # fmt: skip
        raise typer.Exit(1) from None
    if runner.ran:
        say(f"stored {runner.ran} run{'s' if runner.ran != 1 else ''} in {run_store.root} in {runner.seconds:.1f} s")
    table = sweep_table(sweep, run_store, rank)
    if top is not None:
        table = table.head(top)
    if as_json:
        emit_json(_sweep_json(sweep, table, rank, runner, run_store))
        return
    title = (f"sweep {sweep.sweep_id}: {base.name}, ranked by {rank} "
             f"({replications} replications, seed {seed}; ± is the 95% CI)")  # fmt: skip
    console().print(ranked_table(table, title, rank))


def _sweep_json(sweep, table, rank, runner, run_store) -> dict:  # type: ignore[no-untyped-def]
    from twin.store.catalog import KPI_COLUMNS

    names = {p.name: p for p in sweep.points}
    points = []
    for row in records(table):
        planned = names[row["scenario"]]
        points.append({
            "rank": row["rank"],
            "name": row["scenario"],
            "assignments": dict(planned.point.assignments),
            "overrides": list(planned.overrides),
            "run_id": row["run_id"],
            "spec_hash": row["spec_hash"],
            "kpis": {k: {"mean": row[k], "ci95": [row[f"{k}_low"], row[f"{k}_high"]]} for k in KPI_COLUMNS},
            "bottleneck": row["bottleneck"],
            "station_oee": row["station_oee"],
        })  # fmt: skip
    return {
        "sweep_id": sweep.sweep_id,
        "store": str(run_store.root),
        "line": sweep.base.name,
        "replications": sweep.replications,
        "seed": sweep.seed,
        "ran": runner.ran,
        "reused": runner.reused,
        "backend": runner.backend,
        "rank": rank,
        "points": points,
    }
