"""Optimize: search buffer places, units, or the levers of the batch rules (operator headcount,
cleaning intervals, campaign lengths, QC analysts, WIP limit, skids) for an objective (throughput,
OEE, output per week, release lead time, scrapped batches) under an optional constraint, as a
background job; watch the best-so-far, see the Pareto front, and open the best design as a what-if.

Designs are scored by the JAX kernel where it is exact for the line, else by the SimPy engine
(``optimizers``); JAX is imported inside the job only. Every design shown is SimPy's confirmation.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import plotly.graph_objects as go
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboards import layout
from dashboards.formatting import ci_text, rate_unit
from dashboards.pages import Page
from twin.errors import TwinError

VARY = {
    "buffers": ("buffer places (0..6 each, 16 in all)", ["stations.*.buffer=0..6"], {"buffers": 16}, []),
    "units": (
        "units per station (1..2, each 250,000 capital)",
        ["stations.*.units=1..2"],
        None,
        ["stations.*.units=250000"],
    ),
}
OBJECTIVE_CHOICES = {  # form value -> (label, objective names for optimizers.optimize)
    "throughput": ("max throughput", "throughput"),
    "oee": ("max line OEE", "oee"),
    "output_per_week": ("max output per week", "output_per_week"),
    "release_lead_time": ("min release lead time (to QC approval)", "release_lead_time"),
    "scrapped_batches": ("min scrapped batches", "scrapped_batches"),
    "pareto": ("throughput vs cost (Pareto)", ["throughput", "cost"]),
}

SPACE_HAS_BASELINE = "The search space includes the spec's own design."
SEARCH_FIRST = "Press Start search: the best design so far is drawn here as the search runs."

def vary_choices(spec: Any) -> dict[str, tuple[str, list[str], dict[str, float] | None, list[str]]]:
    """The decision variables the form offers for ``spec``: buffers, units, and the levers it has."""
    from optimizers.problem import suggested_levers

    levers = {k: (label, paths, None, []) for k, (label, paths) in suggested_levers(spec).items()}
    return {**VARY, **levers}


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Optimize",
        layout.card(
            "Search",
            html.Div(
                [
                    html.Label(
                        [
                            "Decision variables",
                            dcc.RadioItems(
                                id="optimize-vary",
                                value="buffers",
                                options=[{"label": v[0], "value": k} for k, v in VARY.items()],
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Objective",
                            dcc.RadioItems(
                                id="optimize-objective",
                                value="throughput",
                                options=[{"label": v[0], "value": k} for k, v in OBJECTIVE_CHOICES.items()],
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Constraint (optional)",
                            dcc.Input(
                                id="optimize-constraint", type="text", value="", debounce=True,
                                placeholder="e.g. scrapped_batches<=2",
                            ),
                        ]
                    ),
                    html.Label(
                        [
                            "Designs to evaluate",
                            dcc.Input(id="optimize-evals", type="number", value=64, min=8, max=5000, step=1),
                        ]
                    ),
                    html.Label(["Horizon of each design", dcc.Input(id="optimize-horizon", value="8 w", type="text")]),
                ],
                className="controls",
            ),
            html.Div(
                [
                    html.Button("Start search", id="optimize-start", n_clicks=0),
                    html.Span(id="optimize-status", className="muted"),
                ],
                className="controls",
            ),
            html.Progress(id="optimize-progress", value="0", max="100", className="progress"),
            help="designs are scored in batches (by the JAX kernel where it is exact for the line, else by the "
            "SimPy engine); the best ones are confirmed by the SimPy engine on independent replications",
        ),
        html.Div(
            [
                layout.card("Best so far", layout.graph("optimize-history", height=300, placeholder=SEARCH_FIRST)),
                layout.card(
                    "Pareto front (confirmed by SimPy)",
                    layout.graph("optimize-pareto", height=300, placeholder=SEARCH_FIRST),
                    id="optimize-pareto-card",
                ),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        html.Div(id="optimize-result"),
        subtitle="What should we change? Search the line's designs, confirmed by the SimPy engine.",
    )


def history_figure(points: list[tuple[int, float]], objective: str = "throughput") -> go.Figure:
    per_day = objective == "throughput"
    unit, scale = rate_unit(max((p[1] for p in points), default=None)) if per_day else ("", 1.0)
    fig = go.Figure(
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] * scale for p in points],
            mode="lines+markers",
            line={"color": "#2e7d32", "shape": "hv"},
        )
    )
    layout.figure_style(fig, height=300)
    fig.update_xaxes(title="designs evaluated")
    if per_day:
        fig.update_yaxes(title=f"best throughput ({unit}, evaluator)")
    else:
        from optimizers.objectives import OBJECTIVES

        kpi = OBJECTIVES[objective]
        fig.update_yaxes(title=f"best {kpi.label.lower()} ({kpi.unit}, evaluator)")
    return fig


def pareto_figure(result: Any) -> go.Figure:
    fig = go.Figure()
    points = result.pareto or result.confirmed
    thr = [c.simpy["throughput_per_hour"] for c in points]
    unit, scale = rate_unit(max((t["mean"] for t in thr), default=None))
    fig.add_trace(
        go.Scatter(
            x=[c.cost for c in points],
            y=[t["mean"] * scale for t in thr],
            mode="markers+lines" if result.pareto else "markers",
            error_y={
                "type": "data",
                "array": [(t["ci95"][1] - t["mean"]) * scale for t in thr],
                "arrayminus": [(t["mean"] - t["ci95"][0]) * scale for t in thr],
            },
            marker={"size": 10, "color": "#1f77b4"},
            text=[", ".join(f"{k}={v}" for k, v in c.overrides.items()) for c in points],
            hovertemplate=f"cost %{{x:,.0f}}<br>%{{y:.2f}} {unit}<br>%{{text}}<extra></extra>",
        )
    )
    layout.figure_style(fig, height=300, showlegend=False)
    fig.update_xaxes(title="cost")
    fig.update_yaxes(title=f"throughput ({unit}, SimPy)")
    return fig


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("optimize-vary", "options"),
        Input(layout.RUN_PICKER, "value"),
        Input("optimize-vary", "id"),
    )
    def offer_levers(run_id: str | None, _id: str) -> list[dict[str, str]]:
        choices = VARY
        if run_id:
            with contextlib.suppress(TwinError):
                choices = vary_choices(ctx.cache.view(run_id).spec)
        return [{"label": v[0], "value": k} for k, v in choices.items()]

    @app.callback(
        Output("optimize-result", "children"),
        Output("optimize-pareto", "figure"),
        Output("optimize-pareto-card", "style"),
        Input("optimize-start", "n_clicks"),
        State(layout.RUN_PICKER, "value"),
        State("optimize-vary", "value"),
        State("optimize-objective", "value"),
        State("optimize-evals", "value"),
        State("optimize-horizon", "value"),
        State("optimize-constraint", "value"),
        background=True,
        manager=ctx.jobs,
        progress=[
            Output("optimize-progress", "value"),
            Output("optimize-status", "children"),
            Output("optimize-history", "figure"),
        ],
        running=[(Output("optimize-start", "disabled"), True, False)],
        prevent_initial_call=True,
    )
    def search(
        set_progress: Any, clicks: int, run_id: str | None, vary: str, objective: str, evals: Any, horizon: str,
        constraint: str | None,
    ) -> tuple:  # fmt: skip
        if not run_id:
            return layout.alert("Pick a run: its line is what the search changes.", kind="info"), no_update, no_update
        try:
            return run_search(ctx, run_id, vary, objective, evals, horizon, set_progress, constraint)
        except TwinError as err:
            return layout.alert(str(err).splitlines()[0], title="Cannot search."), no_update, no_update


def run_search(
    ctx: Any, run_id: str, vary: str, objective: str, evals: Any, horizon: str, set_progress: Any,
    constraint: str | None = None,
) -> tuple:  # fmt: skip
    from optimizers import optimize
    from twin.experiment import with_overrides

    view = ctx.cache.view(run_id)
    spec = with_overrides(view.spec, [f"horizon={horizon}"], source="optimize form")
    choices = vary_choices(view.spec)
    if vary not in choices:
        raise TwinError(f"this line has no {vary!r} to vary")
    _label, paths, budget, costs = choices[vary]
    objectives = OBJECTIVE_CHOICES[objective][1]
    kpi = "throughput" if objective == "pareto" else objective
    if objective == "pareto" and not costs:
        costs = [f"{p.split('=')[0]}=10000" for p in paths]
    constraints = [constraint.strip()] if constraint and constraint.strip() else []
    history: list[tuple[int, float]] = []
    last = [0.0]

    def progress(p: Any) -> None:
        if p.best is not None:
            history.append((p.evaluations, p.best.figure(kpi)))
        now = time.monotonic()
        if now - last[0] > 0.5:
            last[0] = now
            set_progress(
                (
                    str(round(100 * p.evaluations / max(p.budget, 1))),
                    f"{p.evaluations} of {p.budget} designs ({p.method})",
                    history_figure(history, kpi),
                )
            )

    set_progress(("0", "preparing the evaluator…", history_figure([], kpi)))
    evaluations = int(evals) if isinstance(evals, (int, float)) and evals >= 8 else 64
    result = optimize(
        spec,
        vary=paths,
        budget=budget,
        objective=objectives,
        costs=costs,
        constraints=constraints,
        evaluations=evaluations,
        replications=3,
        confirm_replications=3,
        seed=int(view.info.get("seed") or 1),
        callback=progress,
        workers=1,  # a background job's process: no pool of its own
    )
    set_progress(
        (
            "100",
            f"done: {result.evaluations} designs evaluated, best confirmed by SimPy",
            history_figure(history or [(result.evaluations, result.best.kpis.get(kpi, float("nan")))], kpi),
        )
    )
    from optimizers.store import store_best

    stored = store_best(result, ctx.store)
    baseline = beside_baseline(result, kpi)
    best = result.best
    rows = [html.Tr([html.Td(k), html.Td(str(a)), html.Td(str(b))]) for k, a, b in best.diff]
    thr_unit, thr_scale = rate_unit(best.simpy["throughput_per_hour"]["mean"])
    thr = ci_text(best.simpy["throughput_per_hour"], thr_scale, 2)
    figure_line = None
    if kpi != "throughput" and kpi in best.kpis:
        from optimizers.objectives import OBJECTIVES

        goal = OBJECTIVES[kpi]
        figure_line = html.P(f"{goal.label}: {best.kpis[kpi]:.4g} {goal.unit} (SimPy)", id="optimize-objective-figure")
    bounds = None
    if result.problem.constraints:
        met = "met" if result.target_met else "NOT met by any confirmed design"
        bounds = html.P(f"Constraint {', '.join(map(str, result.problem.constraints))}: {met}.",
                        id="optimize-constraint-status")  # fmt: skip
    surrogate = (
        layout.alert(
            "The evaluator is a surrogate for this line ("
            + "; ".join(result.approximations)
            + "); the figures below are SimPy's.",
            kind="warning",
        )
        if result.approximations
        else None
    )
    prefill = {
        "line": view.spec.name,
        "source": "the optimizer's best design",
        "scenario": f"optimized {vary}",
        "values": {path: str(value) for path, value in best.overrides.items()},
    }
    body = layout.card(
        "Best design",
        surrogate,
        html.P(
            [html.B(f"{thr[0]} {thr_unit}"), f" ({thr[1]}, SimPy, {best.simpy['replications']} replications)"],
            id="optimize-best",
        ),
        figure_line,
        bounds,
        html.P(
            f"Confirmed run stored as {stored[:8]} (pick it in the run picker).",
            id="optimize-stored",
            **{"data-run": stored},
        ),
        html.Table(
            [html.Thead(html.Tr([html.Th("variable"), html.Th("spec"), html.Th("best")])), html.Tbody(rows)],
            className="kpi-table",
        ),
        baseline,
        dcc.Store(id={"type": "optimize-prefill", "key": "best"}, data=prefill),
        html.Div(
            [html.Button("Open as what-if", id={"type": "optimize-open", "key": "best"})],
            style={"marginTop": "10px"},
        ),
    )
    if not result.pareto:  # one objective: no front to draw
        return body, no_update, {"display": "none"}
    return body, pareto_figure(result), {}


def baseline_space_note(problem: Any) -> str | None:
    """Why the spec's own design is not among the designs searched (None when it is)."""
    design = problem.baseline()
    outside = [
        f"{d.label} = {v:g} lies outside {d.low:g}..{d.high:g}"
        for d, v in zip(problem.dims, design, strict=False)
        if isinstance(v, (int, float)) and not d.low - 1e-9 <= v <= d.high + 1e-9
    ]
    if outside:
        return "The spec's own design is not in the search space: " + "; ".join(outside) + "."
    if not problem.feasible(design):
        return "The spec's own design is over the search's budget (" + ", ".join(
            f"{k} {v:g} > {problem.budget[k]:g}" for k, v in problem.totals(design).items()
            if k in problem.budget and v > problem.budget[k] + 1e-9
        ) + ")."  # fmt: skip
    return None


def beside_baseline(result: Any, kpi: str) -> html.Div:
    """The spec's own design confirmed on the same horizon and draws as the best, and the paired difference."""
    from optimizers.api import confirm
    from twin.stats import paired_difference

    problem = result.problem
    design = problem.baseline()
    own = next((c for c in result.confirmed if c.design == design), None)
    if own is None:  # SimPy on the confirmation's seed and replications: common random numbers with the best
        reps = int(result.best.simpy.get("replications") or 3)
        seed = int(result.settings.get("confirm_seed", int(result.settings.get("seed", 1)) + 1))
        own = confirm(problem, [design], reps, seed, engine=True)[0]
    unit, per = rate_unit(own.simpy["throughput_per_hour"]["mean"])
    metrics = [
        ("throughput_per_hour", "Throughput", per, 2, unit),
        ("lead_time_hours", "Lead time", 1.0, 1, "h"),
    ]
    if kpi not in ("throughput", "throughput_per_hour") and kpi in result.best.kpis:
        from optimizers.objectives import OBJECTIVES

        goal = OBJECTIVES[kpi]
        metrics.append((kpi, goal.label, 1.0, 3, goal.unit))
    rows = []
    for key, label, scale, digits, unit in metrics:
        a = own.result.kpis.per_replication.get(key)
        b = result.best.result.kpis.per_replication.get(key)
        if a is None or b is None:
            continue
        mine, best = ci_text(_mean_ci(a), scale, digits), ci_text(_mean_ci(b), scale, digits)
        delta = paired_difference(a.sort_index().to_numpy(), b.sort_index().to_numpy())
        diff = ci_text({"mean": delta.mean, "ci95": [delta.low, delta.high]}, scale, digits)
        cells = [f"{label} ({unit})", f"{mine[0]} ({mine[1]})", f"{best[0]} ({best[1]})"]
        cells.append(f"{diff[0]} ({diff[1]}, paired)")
        rows.append(html.Tr([html.Td(c) for c in cells], id=f"optimize-baseline-{key}"))
    note = baseline_space_note(problem)
    return html.Div(
        [
            html.H3("Beside the spec's own design", className="subhead"),
            html.P(
                f"Both confirmed by SimPy on the same horizon and the same {int(result.best.simpy['replications'])} "
                "replications (common random numbers), so the difference is paired.",
                className="muted",
            ),
            html.Table(
                [
                    html.Thead(html.Tr([html.Th(h) for h in ("KPI", "spec's design", "best", "best − spec")])),
                    html.Tbody(rows),
                ],
                className="kpi-table",
                id="optimize-baseline-table",
            ),
            layout.alert(note, kind="warning", id="optimize-space-note")
            if note
            else html.P(SPACE_HAS_BASELINE, className="muted", id="optimize-space-note"),
        ],
        id="optimize-baseline",
    )


def _mean_ci(values: Any) -> dict[str, Any]:
    from twin.stats import interval

    ci = interval(values.to_numpy(dtype=float))
    return {"mean": ci.mean, "ci95": [ci.low, ci.high] if ci.n > 1 else [None, None]}


def _register_open(app: Any, ctx: Any) -> None:
    @app.callback(
        Output(layout.WHATIF_PREFILL, "data"),
        Output(layout.URL, "pathname"),
        Input({"type": "optimize-open", "key": ALL}, "n_clicks"),
        State({"type": "optimize-prefill", "key": ALL}, "data"),
        prevent_initial_call=True,
    )
    def open_as_whatif(clicks: list, prefill: list) -> Any:
        if not any(clicks) or not prefill:
            return no_update, no_update
        return prefill[0], "/what-if"


def _register_all(app: Any, ctx: Any) -> None:
    _register(app, ctx)
    _register_open(app, ctx)


PAGE = Page(path="/optimize", title="Optimize", layout=_layout, register=_register_all, order=70)
