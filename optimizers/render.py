"""Readable tables of an optimization result: the best design as changes, SimPy's figures beside the evaluator's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from optimizers.api import OptimizeResult
from optimizers.confirm import Confirmed
from optimizers.objectives import OBJECTIVES
from twin.cli.render import console

NAN = float("nan")  # a figure neither side has (no batch out in any replication: no lead time)


def _ci(stat: dict[str, Any], digits: int = 4) -> str:
    mean, (lo, hi) = stat["mean"], stat["ci95"]
    if mean is None:
        return "—"
    if lo is None or hi is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left", min_width=len(title) + 2)


def changes_table(best: Confirmed) -> Table:
    table = _table("Best design: changes against the spec")
    for column in ("variable", "spec", "best"):
        table.add_column(column, no_wrap=column != "best")
    for name, before, after in best.diff:
        table.add_row(name, _show(before), _show(after))
    if not best.diff:
        table.add_row("(none)", "the spec's own design is best", "")
    return table


def _show(value: Any) -> str:
    if value is None:
        return "unlimited"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def kpi_table(result: OptimizeResult) -> Table:
    best = result.best
    reps = best.simpy["replications"]
    table = _table(f"Confirmed by SimPy ({reps} independent replications, 95% CI) and the evaluator on the same draws")
    for column in ("KPI", "SimPy", "evaluator", "evaluator − SimPy"):
        table.add_column(column, justify="left" if column == "KPI" else "right", no_wrap=True)
    table.add_row(
        "Throughput (batches/h)", _ci(best.simpy["throughput_per_hour"]),
        f"{best.evaluator.get('throughput_per_hour', NAN):.4f}", _signed(best.error.get("throughput_per_hour", NAN), 4),
    )  # fmt: skip
    table.add_row(
        "Lead time (h)", _ci(best.simpy["lead_time_hours"], 2),
        f"{best.evaluator.get('lead_time_hours', NAN):.2f}", _signed(best.error.get("lead_time_hours", NAN), 2),
    )  # fmt: skip
    if best.makespan is not None:
        table.add_row("Makespan (h)", f"{best.makespan:.2f}", "", _signed(best.error.get("makespan_hours", 0.0), 2))
    oee = "oee" in best.evaluator  # the evaluator's figure on the same draws, as for throughput
    table.add_row(
        "Line OEE (%)", _ci({k: _pct(v) for k, v in best.simpy["oee"].items()}, 1),
        f"{_pct(best.evaluator['oee']):.1f}" if oee else "",
        _signed(_pct(best.error.get("oee", NAN)), 1) if oee else "",
    )  # fmt: skip
    shown = {"throughput", "lead_time", "makespan", "oee"}
    for name in result.problem.kpis:
        if name in shown or name not in best.kpis:
            continue
        objective = OBJECTIVES[name]
        evaluated = objective.column in best.evaluator  # a KPI the kernel computes: its figure and error beside SimPy's
        table.add_row(
            f"{objective.label} ({objective.unit})", f"{best.kpis[name]:.4g}",
            f"{best.evaluator[objective.column] * objective.scale:.4g}" if evaluated else "",
            _signed(best.error.get(objective.column, NAN) * objective.scale, 4) if evaluated else "",
        )  # fmt: skip
    if best.cost:
        table.add_row("Cost", f"{best.cost:,.2f}", "", "")
    return table


def _signed(value: float, digits: int) -> str:
    """A difference with the value's own decimals (``+0.0000``, never ``+8.9e-16`` or ``-0.0000``)."""
    return f"{round(value, digits) + 0.0:+,.{digits}f}"


def _pct(value: Any) -> Any:
    if isinstance(value, list):
        return [None if v is None else v * 100 for v in value]
    return None if value is None else value * 100


def pareto_table(result: OptimizeResult) -> Table:
    table = _table(f"Pareto front: cost vs throughput ({len(result.front)} designs on the evaluator's front; "
                   f"{len(result.pareto)} confirmed)")  # fmt: skip
    for column in ("cost", "SimPy throughput", "evaluator", "design"):
        table.add_column(column, justify="right" if column != "design" else "left")
    for c in result.pareto:
        design = ", ".join(f"{k.split('.')[-2]}.{k.split('.')[-1]}={_show(v)}" for k, v in c.values.items())
        figure = f"{c.evaluator.get('throughput_per_hour', NAN):.4f}"
        table.add_row(f"{c.cost:,.2f}", _ci(c.simpy["throughput_per_hour"]), figure, design)
    return table


def print_result(result: OptimizeResult, out: Path | None = None) -> None:
    """Print the result as tables on standard output."""
    con = console()
    p = result.problem
    exact = "exact" if not result.approximations else "SURROGATE (" + "; ".join(result.approximations) + ")"
    scorer = "SimPy engine" if result.settings.get("evaluator") == "engine" else "JAX kernel"
    bounds = f" subject to {', '.join(map(str, p.constraints))}" if p.constraints else ""
    con.print(
        f"{p.spec.name}: {' and '.join(p.objectives)}{bounds} over {len(p.dims) + int(p.order)} variable(s); "
        f"method {result.method}, {result.evaluations} designs evaluated x {result.settings['replications']} "
        f"replications by the {scorer} on {result.settings['device']}; evaluator {exact}",
        highlight=False,
    )
    if result.target_met is False:
        con.print(f"no confirmed design meets {', '.join(map(str, p.constraints))}; the best one reached is shown")
    con.print(changes_table(result.best))
    con.print(kpi_table(result))
    if result.pareto:
        con.print(pareto_table(result))
    if out is not None:
        con.print(f"best design written to {out / 'best.yaml'} (run it with `twin run {out / 'best.yaml'}`)")
