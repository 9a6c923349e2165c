"""The ``twin`` command line: what-if runs on line specs and built-in plant models.

    twin run osd-tablet --replications 10 --set stations.coating.units=2
    twin compare osd-tablet -s "second coater: stations.coating.units=2"
    twin validate my_line.yaml
    twin schema > line.schema.json

Other packages add commands through the ``twin.commands`` entry-point group: each entry is a
function ``register(app: typer.Typer) -> None``. Bad input exits with code 2 and one line per
problem; a traceback is never shown (set ``TWIN_DEBUG=1`` to see one for an internal error).
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated

import typer

from twin import __version__
from twin.cli.common import (
    HorizonOpt,
    JsonOpt,
    MaxEventsOpt,
    OutOpt,
    ReplicationsOpt,
    SeedOpt,
    SetOpt,
    SpecArg,
    WarmupOpt,
    emit_json,
    max_events_option,
    progress_bar,
    spec_hours,
    stderr,
)
from twin.cli.entry import interrupt_exit_code, interrupt_message
from twin.cli.lazy import LazyGroup, lazy_group, new_app
from twin.cli.scenarios import parse_scenario
from twin.errors import InputError, SpecError, TwinError
from twin.spec.overrides import OverrideWarning

# Heavy libraries (pandas, scipy, the engine) load inside the commands that use them, and the other
# command modules and plug-ins load when called (twin.cli.lazy): `twin --help`, `version` and
# `validate` start quickly (tests/test_cli_start.py).


def build_app() -> typer.Typer:
    """The CLI: the core commands here, the others (core modules and plug-ins) loaded when called."""
    app = new_app(
        name="twin",
        help="A digital twin of pharmaceutical production lines.",
        no_args_is_help=True,
        cls=LazyGroup,
    )
    app.command("run")(run_command)
    app.command("compare")(compare_command)
    app.command("validate")(validate_command)
    app.command("schema")(schema_command)
    app.command("models")(models_command)
    app.command("trace")(trace_command)
    app.command("version")(version_command)
    return app  # the other commands are added on use: twin.cli.lazy.CORE and the twin.commands entry points


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Warnings meant for users (an override that dropped fields, an old plug-in block) as one line on stderr."""
    from twin.spec.extensions import ExtensionDeprecation

    if issubclass(category, (OverrideWarning, ExtensionDeprecation)):
        stderr.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)
    else:
        _python_show_warning(message, category, *args, **kwargs)  # type: ignore[arg-type]


_python_show_warning = warnings.showwarning


def main() -> None:
    """Console-script entry point: user errors exit 2, internal errors exit 1, never a traceback."""
    warnings.showwarning = _show_warning
    try:
        lazy_group(build_app())(prog_name="twin")
    except SpecError as err:
        for problem in err.problems:
            stderr.print(str(problem), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except TwinError as err:
        stderr.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (twin.cli.entry installs both)
        stderr.print(interrupt_message(err), markup=False, highlight=False, soft_wrap=True)
        sys.exit(interrupt_exit_code(err))
    except SystemExit as done:  # typer turns an interrupt in a command into a silent exit 130
        interrupt = getattr(done.__context__, "__cause__", None)
        if not isinstance(interrupt, KeyboardInterrupt):
            raise
        stderr.print(interrupt_message(interrupt), markup=False, highlight=False, soft_wrap=True)
        sys.exit(interrupt_exit_code(interrupt))
    except Exception as err:  # a bug: say so in one line, show the traceback only on request
        if os.environ.get("TWIN_DEBUG"):
            traceback.print_exc()
        message = " ".join(f"{err.__class__.__name__}: {err}".split())[:300]
        stderr.print(f"internal error: {message} (set TWIN_DEBUG=1 for details)", markup=False, soft_wrap=True)
        sys.exit(1)


def run_command(
    spec: SpecArg,
    horizon: HorizonOpt = None,
    warmup: WarmupOpt = None,
    replications: ReplicationsOpt = 5,
    seed: SeedOpt = 1,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
    max_events: MaxEventsOpt = None,
) -> None:
    """Simulate a line and print its KPIs with 95% confidence intervals."""
    from twin.cli.render import console, line_table, oee_table, station_table
    from twin.experiment import run
    from twin.models import load_spec
    from twin.runfolder import check_new, write_run

    if out is not None:
        check_new(out)
    line = load_spec(spec, set_ or ())
    hours, warm = spec_hours(horizon, line, "--horizon"), spec_hours(warmup, line, "--warmup")
    budget = max_events_option(max_events)
    with progress_bar(f"simulating {line.name}") as update:
        result = run(line, replications, seed, hours, warm, update, overrides=tuple(set_ or ()), max_events=budget)
        if out is not None:
            write_run(result, out)
    if as_json:
        emit_json(result.kpis.summary)
        return
    out_console = console()
    out_console.print(line_table(result.kpis.summary))
    out_console.print(station_table(result.kpis.summary))
    out_console.print(oee_table(result.kpis.summary))
    if out is not None:
        out_console.print(f"run written to {out}")


def compare_command(
    spec: SpecArg,
    scenario: Annotated[
        list[str], typer.Option("--scenario", "-s", help='A scenario: "NAME: path=value, path=value". Repeatable.')
    ],
    horizon: HorizonOpt = None,
    warmup: WarmupOpt = None,
    replications: ReplicationsOpt = 5,
    seed: SeedOpt = 1,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write one run folder per scenario under this folder.")
    ] = None,
    max_events: MaxEventsOpt = None,
) -> None:
    """Compare scenarios against the baseline with common random numbers and paired CIs."""
    from twin.cli.render import compare_table, console, constraint_notes
    from twin.experiment import compare
    from twin.kpis.line import constraint_moved
    from twin.models import load_spec
    from twin.runfolder import atomic_folder, check_new, write_run

    if out is not None:
        check_new(out)
    line = load_spec(spec, set_ or ())
    scenarios = dict(parse_scenario(s) for s in scenario)
    if len(scenarios) != len(scenario):
        raise InputError("two scenarios have the same name")
    hours, warm = spec_hours(horizon, line, "--horizon"), spec_hours(warmup, line, "--warmup")
    budget = max_events_option(max_events)
    with progress_bar(f"comparing {len(scenarios)} scenario(s)") as update:
        result = compare(line, scenarios, replications, seed, hours, warm, update, max_events=budget)
        if out is not None:
            with atomic_folder(out) as folder:  # every scenario's run folder, or none
                for i, res in enumerate([result.baseline, *result.scenarios]):
                    write_run(res, folder / (f"{i:02d}-" + "".join(c if c.isalnum() else "-" for c in res.name)))
    if as_json:
        emit_json(
            {
                "baseline": result.baseline.kpis.summary,
                "scenarios": [
                    {
                        "name": r.name,
                        "overrides": list(r.overrides),
                        "kpis": r.kpis.summary,
                        "deltas": {k: v.as_dict() for k, v in result.deltas[r.name].items()},
                        "constraint_moved": constraint_moved(result.baseline.kpis.summary, r.kpis.summary, r.name),
                    }
                    for r in result.scenarios
                ],
            }
        )
        return
    rows = [(r.name, r.kpis.summary, result.deltas[r.name]) for r in result.scenarios]
    out_console = console()
    out_console.print(compare_table(result.baseline.kpis.summary, rows))
    for note in constraint_notes(result.baseline.kpis.summary, rows):
        out_console.print(f"note: {note}", markup=False, highlight=False)


def validate_command(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec file; print every problem (exit 2) or a one-line summary."""
    from twin.models import load_spec

    line = load_spec(spec, set_ or ())
    units = sum(s.units for s in line.stations)
    typer.echo(
        f"{spec}: OK: line {line.name!r}, {len(line.stations)} stations, {units} units, "
        f"{len(line.products)} products, spec hash {line.spec_hash[:12]}"
    )


def schema_command() -> None:
    """Print the JSON Schema of line specs (for editors that check YAML as you type)."""
    from twin.spec.extensions import with_extension_schemas
    from twin.spec.model import LineSpec

    schema = with_extension_schemas(LineSpec.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    emit_json(schema)


def models_command() -> None:
    """List the built-in plant models; a name works wherever a spec path does."""
    from rich.table import Table

    import plant_models
    from twin.cli.common import console
    from twin.models import load_spec

    table = Table(title="Built-in plant models")
    for column in ("name", "stations", "products", "description"):
        table.add_column(column)
    for name, path in plant_models.available().items():
        line = load_spec(path)
        table.add_row(name, ", ".join(s.name for s in line.stations), ", ".join(p.name for p in line.products),
                      (line.description or "").strip().splitlines()[0] if line.description else "")  # fmt: skip
    console().print(table)


def trace_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `twin run --out`.")],
    batch: Annotated[int, typer.Argument(help="Batch id (see the event log).")],
    replication: Annotated[int, typer.Option("--replication", help="Replication of the run.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Print a batch's full history up and down its genealogy tree (splits and merges)."""
    from twin.cli.render import console, trace_tree
    from twin.clock import run_folder_clock
    from twin.runfolder import read_log
    from twin.trace import trace

    result = trace(read_log(run_dir), batch, replication)
    clock = run_folder_clock(run_dir)
    if as_json:  # times stay hours from the start; ``start`` says when that is
        emit_json(
            {
                "batch": batch,
                "start": clock.start.isoformat(timespec="minutes"),
                "replication": replication,
                "ancestors": {str(k): v for k, v in result.ancestors.items()},
                "descendants": {str(k): v for k, v in result.descendants.items()},
                "history": {
                    str(b): result.history(b)[["time", "station", "unit", "event", "quantity"]]
                    .astype(object)
                    .where(lambda d: d.notna(), None)
                    .to_dict(orient="records")
                    for b in result.related
                },
            }
        )
        return
    console().print(trace_tree(result, clock))


def version_command() -> None:
    """Print the twin version."""
    typer.echo(__version__)
