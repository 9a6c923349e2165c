"""``twin optimize``: search a line's designs with the JAX evaluator, confirm the best with SimPy.

    twin optimize SPEC --vary stations.*.buffer=0..10 --budget buffers=20 --objective throughput
    twin optimize SPEC --vary stations.*.units=1..3 --cost stations.*.units=250000 \\
                       --objective cost --target throughput=0.15
    twin optimize SPEC --vary stations.*.units=1..3 --cost stations.*.units=1 --objective throughput --objective cost
    twin optimize osd-tablet --vary stations.packaging.units=1..2 --vary operators.packaging-team.headcount=2..4 \
                       --objective oee --target scrapped_batches<=2

Registered through the ``twin.commands`` entry point; JAX is imported only when the command runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.cli.common import HorizonOpt, JsonOpt, SeedOpt, SetOpt, SpecArg, WarmupOpt, emit_json, hours_option, stderr
from twin.errors import InputError

VaryOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--vary",
        help="A variable: stations.NAME|*.buffer|units|speed=LOW..HIGH, release.plan=order, or a lever: "
        "operators.POOL.headcount, stations.NAME.cleaning.due.batches|hours|kg, release.plan.PRODUCT.batches, "
        "qc.analysts, release.wip_limit.batches, skids.NAME.capacity.",
    ),
]
BudgetOpt = Annotated[
    list[str] | None, typer.Option("--budget", help="A limit: buffers=N, units=N, operators=N or cost=C.")
]
ObjectiveOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--objective",
        help="throughput, oee, output_per_week (max); lead_time, release_lead_time, scrapped_batches, makespan, "
        "cost (min); a KPI and cost for a Pareto front.",
    ),
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option("--target", help="A constraint: throughput=X (at least), or KPI<=X / KPI>=X; repeatable."),
]
EvaluatorOpt = Annotated[
    str,
    typer.Option(help="auto (the JAX kernel where it is exact, else the SimPy engine), jax, or engine."),
]
CostOpt = Annotated[list[str] | None, typer.Option("--cost", help="Cost per place, unit or speed: PATH=AMOUNT.")]


def register(app: typer.Typer) -> None:
    """Add ``twin optimize`` to the CLI."""
    app.command("optimize")(optimize_command)


def optimize_command(
    spec: SpecArg,
    vary: VaryOpt = None,
    budget: BudgetOpt = None,
    objective: ObjectiveOpt = None,
    target: TargetOpt = None,
    cost: CostOpt = None,
    evals: Annotated[int | None, typer.Option("--evals", help="Designs to evaluate (default: spec or 2000).")] = None,
    replications: Annotated[int | None, typer.Option("--replications", "-r", help="Replications per design.")] = None,
    confirm: Annotated[int | None, typer.Option("--confirm", help="SimPy replications per confirmed design.")] = None,
    method: Annotated[str, typer.Option(help="auto, exhaustive, cmaes, gradient or random.")] = "auto",
    device: Annotated[str, typer.Option(help="cpu, gpu or auto (a GPU when JAX sees one).")] = "cpu",
    seed: SeedOpt = 1,
    evaluator: EvaluatorOpt = "auto",
    workers: Annotated[
        int | None, typer.Option(help="Processes for the engine evaluator (default: one per CPU).")
    ] = None,
    set_: SetOpt = None,
    horizon: HorizonOpt = None,
    warmup: WarmupOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write best.yaml, the result and its SimPy run here.")
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Also store the best design's SimPy run in this run store.")
    ] = None,
) -> None:
    """Find the best design of a line: buffers, units, speeds or campaign order; confirmed by SimPy."""
    from optimizers.api import optimize
    from optimizers.store import check_target, save_result
    from twin.models import load_spec

    line = _with_window(load_spec(spec, set_ or ()), horizon, warmup)
    if out is not None:
        check_target(out)
    limits = _budget(budget or [])
    from optimizers.objectives import parse_constraint

    bounds = [parse_constraint(t) for t in target or ()]
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: expected a whole number >= 1")
    objectives = None if not objective else (objective[0] if len(objective) == 1 else objective)
    with best_so_far_bar(not as_json) as report:
        result = optimize(
            line, vary or (), budget=limits, objective=objectives, costs=cost or (), constraints=bounds,
            evaluations=evals, replications=replications, confirm_replications=confirm, method=method,
            seed=seed, device=device, callback=report, evaluator=evaluator, workers=workers,
        )  # fmt: skip
    if out is not None:
        save_result(result, out)
    stored = None
    if store is not None:
        from optimizers.store import store_best
        from twin.store import RunStore

        stored = store_best(result, RunStore(store))
        stderr.print(f"best design stored as run {stored} in {store}", markup=False)
    if as_json:
        emit_json(result.to_json())
        return
    from optimizers.render import print_result

    print_result(result, out)


def _with_window(line: Any, horizon: str | None, warmup: str | None) -> Any:
    """The spec with ``--horizon``/``--warmup`` as its own: the search, the confirmation and best.yaml all use them."""
    from twin.experiment import with_overrides

    if horizon is None and warmup is None:
        return line
    hours = line.horizon_hours if horizon is None else hours_option(horizon, line.time_unit, "--horizon")
    warm = line.warmup_hours if warmup is None else hours_option(warmup, line.time_unit, "--warmup", allow_zero=True)
    if warm >= hours:
        raise InputError(f"--warmup ({warm:,.2f} h) must be shorter than the horizon ({hours:,.2f} h)")
    return with_overrides(line, [f"horizon={hours!r} h", f"warmup={warm!r} h"], source="--horizon/--warmup")


def _budget(items: list[str]) -> dict[str, float] | None:
    limits: dict[str, float] = {}
    for text in items:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or key not in ("buffers", "units", "operators", "cost"):
            raise InputError(f"--budget {text!r}: expected buffers=N, units=N, operators=N or cost=C")
        try:
            limits[key] = float(value)
        except ValueError:
            raise InputError(f"--budget {text!r}: {value.strip()!r} is not a number") from None
        if not limits[key] >= 0:
            raise InputError(f"--budget {text!r}: must be >= 0")
    return limits or None


@contextmanager
def best_so_far_bar(enabled: bool) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr (a terminal only) showing evaluations and the best figure so far."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    show = enabled and stderr.is_terminal
    with Progress(
        TextColumn("optimizing"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(), console=stderr, transient=True, disable=not show,
    ) as bar:  # fmt: skip
        task = bar.add_task("optimizing", total=1.0, best="")

        def report(progress: Any) -> None:
            best = progress.best
            text = ""
            if best is not None:
                text = f"best {best.throughput:.4f}/h" + (f", cost {best.cost:,.0f}" if best.cost else "")
            bar.update(task, completed=progress.evaluations / max(progress.budget, 1), best=text)

        yield report
