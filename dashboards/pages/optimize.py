"""Optimize: search buffer places or units with the JAX evaluator (``optimizers``) as a background
job, watch the best-so-far, see the Pareto front, and open the best design as a what-if.

JAX is imported inside the job only. Every design shown is SimPy's confirmation with its CI.
"""

from __future__ import annotations

import time
from typing import Any

import plotly.graph_objects as go
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboards import layout
from dashboards.formatting import ci_text
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
                                options=[
                                    {"label": "max throughput", "value": "throughput"},
                                    {"label": "throughput vs cost (Pareto)", "value": "pareto"},
                                ],
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
            help="the evaluator simulates designs in batches; the best ones are confirmed by the SimPy engine",
        ),
        html.Div(
            [
                layout.card("Best so far", layout.graph("optimize-history", height=300)),
                layout.card("Pareto front (confirmed by SimPy)", layout.graph("optimize-pareto", height=300)),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        html.Div(id="optimize-result"),
        subtitle="What should we change? Search the line's designs, confirmed by the SimPy engine.",
    )


def history_figure(points: list[tuple[int, float]]) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] * 24 for p in points],
            mode="lines+markers",
            line={"color": "#2e7d32", "shape": "hv"},
        )
    )
    layout.figure_style(fig, height=300)
    fig.update_xaxes(title="designs evaluated")
    fig.update_yaxes(title="best throughput (batches/day, evaluator)")
    return fig


def pareto_figure(result: Any) -> go.Figure:
    fig = go.Figure()
    points = result.pareto or result.confirmed
    thr = [c.simpy["throughput_per_hour"] for c in points]
    fig.add_trace(
        go.Scatter(
            x=[c.cost for c in points],
            y=[t["mean"] * 24 for t in thr],
            mode="markers+lines" if result.pareto else "markers",
            error_y={
                "type": "data",
                "array": [(t["ci95"][1] - t["mean"]) * 24 for t in thr],
                "arrayminus": [(t["mean"] - t["ci95"][0]) * 24 for t in thr],
            },
            marker={"size": 10, "color": "#1f77b4"},
            text=[", ".join(f"{k}={v}" for k, v in c.overrides.items()) for c in points],
            hovertemplate="cost %{x:,.0f}<br>%{y:.2f} batches/day<br>%{text}<extra></extra>",
        )
    )
    layout.figure_style(fig, height=300, showlegend=False)
    fig.update_xaxes(title="cost")
    fig.update_yaxes(title="throughput (batches/day, SimPy)")
    return fig


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("optimize-result", "children"),
        Output("optimize-pareto", "figure"),
        Input("optimize-start", "n_clicks"),
        State(layout.RUN_PICKER, "value"),
        State("optimize-vary", "value"),
        State("optimize-objective", "value"),
        State("optimize-evals", "value"),
        State("optimize-horizon", "value"),
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
        set_progress: Any, clicks: int, run_id: str | None, vary: str, objective: str, evals: Any, horizon: str
    ) -> tuple:
        if not run_id:
            return layout.alert("Pick a run: its line is what the search changes.", kind="info"), no_update
        try:
            return run_search(ctx, run_id, vary, objective, evals, horizon, set_progress)
        except TwinError as err:
            return layout.alert(str(err).splitlines()[0], title="Cannot search."), no_update


def run_search(ctx: Any, run_id: str, vary: str, objective: str, evals: Any, horizon: str, set_progress: Any) -> tuple:
    from optimizers import optimize
    from twin.experiment import with_overrides

    view = ctx.cache.view(run_id)
    spec = with_overrides(view.spec, [f"horizon={horizon}"], source="optimize form")
    _label, paths, budget, costs = VARY[vary]
    objectives = ["throughput", "cost"] if objective == "pareto" else "throughput"
    if objective == "pareto" and not costs:
        costs = ["stations.*.buffer=10000"]
    history: list[tuple[int, float]] = []
    last = [0.0]

    def progress(p: Any) -> None:
        if p.best is not None:
            history.append((p.evaluations, p.best.throughput))
        now = time.monotonic()
        if now - last[0] > 0.5:
            last[0] = now
            set_progress(
                (
                    str(round(100 * p.evaluations / max(p.budget, 1))),
                    f"{p.evaluations} of {p.budget} designs ({p.method})",
                    history_figure(history),
                )
            )

    set_progress(("0", "compiling the evaluator…", history_figure([])))
    evaluations = int(evals) if isinstance(evals, (int, float)) and evals >= 8 else 64
    result = optimize(
        spec,
        vary=paths,
        budget=budget,
        objective=objectives,
        costs=costs,
        evaluations=evaluations,
        replications=3,
        confirm_replications=3,
        seed=int(view.info.get("seed") or 1),
        callback=progress,
    )
    set_progress(
        (
            "100",
            f"done: {result.evaluations} designs evaluated, best confirmed by SimPy",
            history_figure(history or [(result.evaluations, result.best.evaluator["throughput_per_hour"])]),
        )
    )
    from optimizers.store import store_best

    stored = store_best(result, ctx.store)
    best = result.best
    rows = [html.Tr([html.Td(k), html.Td(str(a)), html.Td(str(b))]) for k, a, b in best.diff]
    thr = ci_text(best.simpy["throughput_per_hour"], 24, 2)
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
            [html.B(f"{thr[0]} batches/day"), f" ({thr[1]}, SimPy, {best.simpy['replications']} replications)"],
            id="optimize-best",
        ),
        html.P(
            f"Confirmed run stored as {stored[:8]} (pick it in the run picker).",
            id="optimize-stored",
            **{"data-run": stored},
        ),
        html.Table(
            [html.Thead(html.Tr([html.Th("variable"), html.Th("spec"), html.Th("best")])), html.Tbody(rows)],
            className="kpi-table",
        ),
        dcc.Store(id={"type": "optimize-prefill", "key": "best"}, data=prefill),
        html.Div(
            [html.Button("Open as what-if", id={"type": "optimize-open", "key": "best"})],
            style={"marginTop": "10px"},
        ),
    )
    return body, pareto_figure(result)


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
