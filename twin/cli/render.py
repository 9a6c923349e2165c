"""Rich tables for KPI summaries and comparisons."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from twin.cli.common import console  # noqa: F401 (here too: the name commands and plug-ins import)
from twin.eventlog import STATES
from twin.kpis.line import LINE_KPIS, constraint_moved, constraint_of, constraint_text, shown, stat
from twin.stats import Interval

LINE_ROWS = tuple((k.label, k.column, k.unit, k.digits) for k in LINE_KPIS)
"""(label, per-replication column, unit, digits) of every line KPI."""


def _table(title: str) -> Table:
    return Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)


def _number_column(table: Table, header: str) -> None:
    table.add_column(header, justify="right", no_wrap=True, overflow="fold", min_width=len(header))


def _value(x: float | None, digits: int, percent: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x * 100:.{digits}f}" if percent else f"{x:,.{digits}f}"


def _with_ci(stat: dict[str, Any], digits: int, percent: bool = False) -> str:
    mean, (lo, hi) = stat["mean"], stat["ci95"]
    if lo is None or hi is None or mean is None:
        return _value(mean, digits, percent)
    if not math.isclose(hi - mean, mean - lo, rel_tol=1e-6, abs_tol=1e-12):  # a share's interval cut at 0 or 1
        return f"{_value(mean, digits, percent)} [{_value(lo, digits, percent)}, {_value(hi, digits, percent)}]"
    return f"{_value(mean, digits, percent)} ± {_value((hi - lo) / 2, digits, percent)}"


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _in_line_unit(kpi: Any, value: Mapping[str, Any], scale: float) -> Mapping[str, Any]:
    """A throughput figure in the line's own unit (``twin.clock.rate_unit``); other KPIs unchanged."""
    if kpi.column != "throughput_per_hour" or scale == 1.0:
        return value
    return {"mean": _scaled(value.get("mean"), scale), "ci95": [_scaled(v, scale) for v in value["ci95"]]}


def line_table(summary: dict[str, Any]) -> Table:
    """Line KPIs with 95% confidence half-widths; quality and release KPIs where the line has them."""
    table = _table(f"{summary['line']}: line KPIs ({summary['replications']} replications, 95% CI)")
    table.add_column("KPI", no_wrap=True)
    _number_column(table, "value")
    table.add_column("unit")
    for kpi in LINE_KPIS:
        if not kpi.row or not shown(kpi, [summary]):
            continue
        unit = ", ".join(filter(None, (kpi.unit, constraint_text(summary)))) if kpi.column == "oee" else kpi.unit
        value = stat(summary, kpi)
        if kpi.column == "throughput_per_hour":  # the line's own unit, as the dashboard and the report show it
            from twin.clock import rate_unit

            unit, scale = rate_unit(value.get("mean"))
            value = _in_line_unit(kpi, value, scale)
        table.add_row(kpi.label, _with_ci(value, kpi.digits, kpi.percent), unit)
        if kpi.column == "lead_time_hours":
            lead = summary["lead_time_hours"]
            p50, p90 = _value(lead["p50"]["mean"], 2), _value(lead["p90"]["mean"], 2)
            table.add_row("Lead time p50 / p90", f"{p50} / {p90}", "h")
    table.add_row("Bottleneck", str(summary["bottleneck"]["station"]), "active-period method")
    return table


def station_table(summary: dict[str, Any]) -> Table:
    """Per-station share of time in each state (means over replications, percent)."""
    states = [s for s in STATES if any((st["states"].get(s) or 0) > 0 for st in summary["stations"].values())]
    table = _table("Station states (% of time, means over replications)")
    table.add_column("station", no_wrap=True)
    _number_column(table, "units")
    for state in states:
        _number_column(table, state)
    for name, st in summary["stations"].items():
        table.add_row(name, str(st["units"]), *(_value(st["states"][s], 1, True) for s in states))
    return table


def oee_table(summary: dict[str, Any]) -> Table:
    """Per-station OEE factors (ISO 22400-2) and bottleneck shares (active-period method), percent."""
    table = _table("Station OEE (ISO 22400-2) and bottleneck time (%, means)")
    table.add_column("station", no_wrap=True)
    for label in ("avail.", "perf.", "quality", "OEE", "bottleneck", "shifting"):
        _number_column(table, label)
    for name, st in summary["stations"].items():
        sole, shifting = st["bottleneck"]["sole"] or 0.0, st["bottleneck"]["shifting"] or 0.0
        table.add_row(
            name,
            *(_value(st[k]["mean"], 1, True) for k in ("availability", "performance", "quality", "oee")),
            _value(sole + shifting, 1, True),
            _value(shifting, 1, True),
        )
    return table


def compare_table(baseline: dict[str, Any], scenarios: list[tuple[str, dict[str, Any], dict[str, Interval]]]) -> Table:
    """Baseline KPIs and, per scenario, its KPIs with the paired delta and its 95% CI."""
    table = _table(f"{baseline['line']}: what-if ({baseline['replications']} replications, common random numbers)")
    table.add_column("KPI", no_wrap=True)
    table.add_column("baseline", justify="right")
    for name, _, _ in scenarios:
        table.add_column(name, justify="right")
        table.add_column("Δ (95% CI)", justify="right")
    summaries = [baseline, *(s for _, s, _ in scenarios)]
    from twin.clock import rate_unit

    for kpi in LINE_KPIS:
        if not kpi.row or not shown(kpi, summaries):
            continue
        unit, scale = kpi.unit, 1.0
        if kpi.column == "throughput_per_hour":  # the baseline's own unit, as `twin run` and the dashboard show it
            unit, scale = rate_unit(stat(baseline, kpi).get("mean"))
        cells = [_with_ci(_in_line_unit(kpi, stat(baseline, kpi), scale), kpi.digits, kpi.percent)]
        for _, summary, deltas in scenarios:
            cells.append(_with_ci(_in_line_unit(kpi, stat(summary, kpi), scale), kpi.digits, kpi.percent))
            delta = deltas.get(kpi.column)
            if delta is not None and scale != 1.0:
                delta = Interval(delta.mean * scale, delta.low * scale, delta.high * scale, delta.n)
            cells.append(_delta(delta, kpi.digits, kpi.percent))
        table.add_row(escape(f"{kpi.label} [{unit}]"), *cells)
    for label, of in (("OEE valued at", constraint_of), ("Bottleneck", lambda s: s["bottleneck"]["station"])):
        cells = [str(of(baseline) or "—")]
        for _, summary, _ in scenarios:
            cells += [str(of(summary) or "—"), ""]
        table.add_row(label, *cells)
    return table


def constraint_notes(baseline: dict[str, Any], scenarios: list[tuple[str, dict[str, Any], Any]]) -> list[str]:
    """One sentence per scenario whose line OEE is valued at another station than the baseline's."""
    notes = (constraint_moved(baseline, summary, name) for name, summary, _ in scenarios)
    return [note for note in notes if note]


def _delta(delta: Interval | None, digits: int, percent: bool) -> str:
    if delta is None:
        return "—"
    sign = "+" if delta.mean >= 0 else ""
    mean = f"{sign}{_value(delta.mean, digits, percent)}"
    if delta.n < 2:
        return mean
    return f"{mean} [{_value(delta.low, digits, percent)}, {_value(delta.high, digits, percent)}]"


def trace_tree(result: Any, clock: Any) -> Tree:
    """A batch's genealogy as a tree: ancestors above, descendants below, each with its history.

    Times are calendar times of the run's ``twin.clock.RunClock``.
    """
    from rich.tree import Tree

    shown = ("release", "start", "finish", "split", "merge", "reject", "hold_violation", "approve", "quarantine")

    def node(batch: int) -> str:
        rows = result.history(batch)
        steps: list[str] = []
        for t, s, e, parent in zip(rows["time"], rows["station"], rows["event"], rows["parent"], strict=True):
            if e not in shown:
                continue
            step = f"{clock.text(t)} {e}" + (f" @{s}" if isinstance(s, str) else "")
            if e in ("split", "merge"):
                if steps and steps[-1].startswith(step + " (from"):  # a merge has one row per parent
                    steps[-1] = steps[-1][:-1] + f", {parent})"
                    continue
                step += f" (from {parent})"
            steps.append(step)
        product = rows["product"].dropna().iloc[0] if rows["product"].notna().any() else "?"
        return f"batch {batch} ({product}): " + ", ".join(steps)

    tree = Tree(f"[bold]batch {result.batch}[/], replication {result.replication} · {clock.describe()}")
    up = tree.add("ancestors")

    def add_up(parent_tree: Tree, batch: int) -> None:
        for parent in result.ancestors.get(batch, []):
            add_up(parent_tree.add(node(parent)), parent)

    add_up(up, result.batch)
    tree.add(node(result.batch))
    down = tree.add("descendants")

    def add_down(parent_tree: Tree, batch: int) -> None:
        for child in result.descendants.get(batch, []):
            add_down(parent_tree.add(node(child)), child)

    add_down(down, result.batch)
    return tree
