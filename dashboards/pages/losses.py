"""Losses: the loss waterfall (ISO 22400-2, ``twin.report.waterfall``) of the line or any station, why
the bottleneck is the bottleneck (its top three causes and, on demand, the paired what-if that removes
each), where each station's time goes, OEE as availability × performance × quality, the bottleneck
(active-period method) and how often each station was it, and Paretos of downtime and changeovers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboards import layout
from dashboards.figures import room
from dashboards.pages import Page
from twin.clock import span_text
from twin.eventlog import STATES
from twin.palette import state_hex
from twin.report.waterfall import Waterfall, waterfall

LINE = "__line__"  # the station picker's value for the line's own waterfall
# the OEE and bottleneck charts' height, their graphs' too: a graph taller or shorter than its figure draws it twice
# (plotly's first resize fits the figure to the graph); the Paretos' graphs take their figures' own heights
CHART_HEIGHT = 340
FACTORS = (("availability", "#2e7d32"), ("performance", "#1f77b4"), ("quality", "#8e6bbf"), ("oee", "#243040"))


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Losses",
        html.Div(
            [
                layout.card(
                    "Loss waterfall",
                    html.Div(
                        [
                            html.Label(
                                [
                                    "Station",
                                    dcc.Dropdown(id="losses-station", clearable=False, className="wide-dropdown"),
                                ]
                            )
                        ],
                        className="controls",
                    ),
                    layout.loading(layout.graph("losses-waterfall", height=420)),
                    help="hours per replication: calendar → planned busy → run → net run → fully productive time",
                ),
                layout.card(
                    "Why is it the bottleneck",
                    html.Div(id="losses-why"),
                    html.Div(
                        [
                            html.Button("Run the what-ifs", id="losses-whatifs", className="button"),
                            html.Span(id="losses-whatifs-status", className="muted"),
                        ],
                        className="controls",
                    ),
                    layout.loading(html.Div(id="losses-whatifs-result")),
                    help="its top three causes of lost time; each what-if runs paired (same seed and horizon)",
                ),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        layout.card(
            "Share of time per state",
            layout.loading(layout.graph("losses-states")),
            help="per station: time in each state over its units and the KPI window",
        ),
        html.Div(
            [
                layout.card(
                    "OEE = availability × performance × quality",
                    layout.loading(layout.graph("losses-oee", height=CHART_HEIGHT)),
                    help="per station, 95% CI over replications",
                ),
                layout.card(
                    "Bottleneck (active-period method)",
                    layout.loading(layout.graph("losses-bottleneck", height=CHART_HEIGHT)),
                    html.Div(id="losses-bottleneck-note", className="muted"),
                ),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        html.Div(
            [
                layout.card(
                    "Downtime Pareto",
                    layout.loading(layout.graph("losses-downtime")),
                    help="hours down per replication, by unit",
                ),
                layout.card(
                    "Changeover Pareto",
                    layout.loading(layout.graph("losses-changeover")),
                    help="hours of changeover per replication, by station and product change",
                ),
            ],
            className="grid-2",
        ),
        subtitle="Where capacity is lost: failures, changeovers, cleaning, waiting for operators, starving, blocking.",
    )


def waterfall_figure(fall: Waterfall, line: bool) -> go.Figure:
    """The waterfall as bars: totals from zero, each loss a drop from the running total (hours per replication).

    Bars on a base, not plotly's waterfall trace: the dashboard's plotly.js bundle (cartesian) has none. Each bar's
    x is the step's own hours (a loss negative), a thin line joins each bar's end to the next bar.
    """
    steps = [st for st in fall.steps if st.kind == "total" or abs(st.hours) >= 0.05]
    base, ends, running = [], [], 0.0
    for st in steps:
        base.append(0.0 if st.kind == "total" else running)
        running = st.hours if st.kind == "total" else running + st.hours
        ends.append(running)
    fig = go.Figure(
        go.Bar(
            orientation="h",
            y=[st.name for st in steps],
            x=[st.hours for st in steps],
            base=base,
            marker_color=["#243040" if st.kind == "total" else "#c0504d" for st in steps],
            text=[span_text(abs(st.hours)) for st in steps],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:,.1f} h per replication<extra></extra>",
        )
    )
    connector = {"type": "line", "line": {"color": "#b8c2cc", "width": 1}, "xref": "x", "yref": "y"}
    shapes = [{**connector, "x0": end, "x1": end, "y0": i + 0.4, "y1": i + 0.6} for i, end in enumerate(ends[:-1])]
    whose = f"the line (valued at {fall.station}, the constraint)" if line else fall.station
    layout.figure_style(
        fig,
        height=420,
        showlegend=False,
        shapes=shapes,
        title={"text": f"Loss waterfall of {whose}", "x": 0, "font": {"size": 13}},
        margin=room([st.name for st in steps], top=40),
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title="hours per replication", rangemode="tozero")
    return fig


def why_bottleneck(summary: dict[str, Any]) -> html.Div:
    """The bottleneck's share, and its top three causes of lost time with the what-if that removes each."""
    from twin.report.waterfall import REMEDIES, top_causes

    b = summary["bottleneck"]
    station = b["station"]
    if station is None:
        return layout.alert("No bottleneck: nothing ran in the KPI window.", kind="info")
    fall = waterfall(summary, station)
    causes = top_causes(fall, 3)
    share = (b.get("share") or {}).get(station) or 0.0
    rows = [
        html.Tr([html.Td(c.name), html.Td(span_text(-c.hours)), html.Td(REMEDIES.get(c.state or "", "no what-if"))])
        for c in causes
    ]
    return html.Div(
        [
            html.P(
                f"{station} was the bottleneck {share:.0%} of the time (active-period method: its uninterrupted "
                f"active periods were the line's longest). Its planned busy time is "
                f"{span_text(fall.total('planned busy time'))} per replication, of which "
                f"{span_text(fall.total('fully productive time'))} fully productive.",
                id="losses-why-text",
            ),
            html.Table(
                [
                    html.Thead(html.Tr([html.Th("cause"), html.Th("lost per replication"), html.Th("what-if")])),
                    html.Tbody(rows),
                ],
                className="kpi-table",
                id="losses-why-table",
            ),
        ]
    )


def states_figure(summary: dict[str, Any]) -> go.Figure:
    stations = list(summary["stations"])
    fig = go.Figure()
    for state in STATES:
        shares = [(summary["stations"][s]["states"].get(state) or 0.0) * 100 for s in stations]
        if not any(shares):
            continue
        fig.add_trace(
            go.Bar(
                y=stations,
                x=shares,
                name=state.replace("_", " "),
                orientation="h",
                marker_color=state_hex(state),
                hovertemplate="%{y}: %{x:.1f}% " + state.replace("_", " ") + "<extra></extra>",
            )
        )
    layout.figure_style(
        fig,
        height=60 + 34 * len(stations),
        barmode="stack",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "traceorder": "normal"},
        margin=room(stations),
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    layout.percent_axis(fig, "xaxis", title="share of time")
    return fig


def oee_figure(summary: dict[str, Any]) -> go.Figure:
    stations = list(summary["stations"])
    fig = go.Figure()
    for factor, color in FACTORS:
        kpis = [summary["stations"][s][factor] for s in stations]
        means = [min((k["mean"] or 0) * 100, 100.0) for k in kpis]
        plus = [min((k["ci95"][1] or k["mean"] or 0) * 100, 100.0) - m for k, m in zip(kpis, means, strict=True)]
        minus = [m - max((k["ci95"][0] or k["mean"] or 0) * 100, 0.0) for k, m in zip(kpis, means, strict=True)]
        fig.add_trace(
            go.Bar(
                x=stations,
                y=means,
                name=factor,
                marker_color=color,
                error_y={"type": "data", "array": plus, "arrayminus": minus, "thickness": 1},
                hovertemplate="%{x} " + factor + ": %{y:.1f}%<extra></extra>",
            )
        )
    layout.figure_style(fig, height=CHART_HEIGHT, barmode="group")
    layout.percent_axis(fig, title=None)
    fig.update_xaxes(automargin=True, tickangle=0)
    return fig


def bottleneck_figure(summary: dict[str, Any]) -> go.Figure:
    stations = list(summary["stations"])
    sole = [(summary["stations"][s]["bottleneck"]["sole"] or 0) * 100 for s in stations]
    shifting = [(summary["stations"][s]["bottleneck"]["shifting"] or 0) * 100 for s in stations]
    main = [summary["stations"][s]["bottleneck"]["replications"] for s in stations]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=stations, y=sole, name="sole bottleneck", marker_color="#b3261e"))
    fig.add_trace(go.Bar(x=stations, y=shifting, name="shifting bottleneck", marker_color="#f19c99"))
    fig.add_trace(
        go.Scatter(
            x=stations,
            y=main,
            name="main bottleneck in N replications",
            yaxis="y2",
            mode="markers+text",
            text=main,
            textposition="top center",
            marker={"size": 10, "color": "#243040", "symbol": "diamond"},
        )
    )
    layout.figure_style(
        fig,
        height=CHART_HEIGHT,
        barmode="stack",
        yaxis2={"overlaying": "y", "side": "right", "title": "replications", "showgrid": False},
    )
    top = max([*main, 1])
    layout.count_axis(fig, top, "yaxis2", range=[0, top * 1.3])  # whole replications, never 3.46 steps
    layout.percent_axis(fig, title="share of time")
    fig.update_xaxes(automargin=True)
    return fig


def pareto_figure(labels: list[str], hours: list[float], color: str, empty: str) -> go.Figure:
    """Hours per cause as horizontal bars, largest on top, each labelled with its cumulative share (<= 100%)."""
    if not labels:
        return layout.empty_figure(empty, 330)
    total = float(np.sum(hours))
    cumulative = np.minimum(np.cumsum(hours) / total * 100, 100.0) if total else np.zeros(len(hours))
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=hours,
            orientation="h",
            marker_color=color,
            name="hours per replication",
            text=[f"{h:,.1f} h · {c:.0f}% cumulative" for h, c in zip(hours, cumulative, strict=True)],
            textposition="auto",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1f} h per replication<extra></extra>",
        )
    )
    layout.figure_style(fig, height=max(200, 70 + 24 * len(labels)), showlegend=False, margin=room(labels, top=10))
    fig.update_yaxes(autorange="reversed", automargin=True)  # the whole label, never clipped
    fig.update_xaxes(title="hours per replication", rangemode="tozero")
    return fig


def downtime(view: Any, top: int = 15) -> tuple[list[str], list[float]]:
    """Hours down per replication by unit, largest first."""
    iv = view.all_intervals()
    down = iv[iv["state"] == "down"]
    if down.empty:
        return [], []
    labels = view.unit_labels()
    first = np.concatenate([[0], np.cumsum(view.units)[:-1]])
    rows = first[down["station"].cat.codes.to_numpy()] + down["unit"].to_numpy()
    hours = pd.Series((down["end"] - down["start"]).to_numpy()).groupby(rows).sum() / len(view.replications)
    hours = hours.sort_values(ascending=False).head(top)
    return [labels[i] for i in hours.index], hours.round(3).tolist()


def changeovers(view: Any, top: int = 15) -> tuple[list[str], list[float]]:
    """Hours of changeover (state ``setup``) per replication by station and product change, largest first."""
    iv = view.all_intervals()
    setups = iv[iv["state"] == "setup"][["replication", "station", "unit", "start", "end"]].copy()
    if setups.empty:
        return [], []
    starts = view.events("start", ("replication", "station", "unit", "time", "product")).copy()
    keys = ["replication", "station", "unit"]
    for frame in (setups, starts):
        frame["station"] = frame["station"].astype(str)
        frame["unit"] = frame["unit"].astype(np.int64)
        frame["replication"] = frame["replication"].astype(np.int64)
    starts = starts.sort_values("time")
    setups = setups.sort_values("start")
    after = pd.merge_asof(
        setups, starts.rename(columns={"time": "start", "product": "to"}), on="start", by=keys, direction="forward"
    )
    before = pd.merge_asof(
        setups,
        starts.rename(columns={"time": "start", "product": "from"}),
        on="start",
        by=keys,
        direction="backward",
        allow_exact_matches=False,
    )
    setups["change"] = (before["from"].astype(str).replace("nan", "start") + "→" + after["to"].astype(str)).to_numpy()
    setups["hours"] = setups["end"] - setups["start"]
    hours = setups.groupby(["station", "change"])["hours"].sum() / len(view.replications)
    hours = hours.sort_values(ascending=False).head(top)
    return [f"{s}: {c}" for s, c in hours.index], hours.round(3).tolist()


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("losses-station", "options"),
        Output("losses-station", "value"),
        Output("losses-why", "children"),
        Output("losses-waterfall", "figure"),
        Input(layout.RUN_PICKER, "value"),
        Input("losses-station", "value"),
    )
    def show_waterfall(run_id: str | None, station: str | None) -> tuple:
        """One round trip for a run: its stations, why its bottleneck is one, and the line's waterfall; a station
        draws its waterfall alone."""
        if not run_id:
            return [], None, None, layout.empty_figure("Pick a run in the bar above.", 420)
        view = ctx.cache.view(run_id)
        head: tuple = (no_update,) * 3
        if not dash_ctx.triggered_prop_ids or dash_ctx.triggered_id == layout.RUN_PICKER or station is None:
            head, station = waterfall_head(view), LINE
        return (*head, waterfall_of(view, station))

    @app.callback(
        Output("losses-whatifs-result", "children"),
        Input("losses-whatifs", "n_clicks"),
        State(layout.RUN_PICKER, "value"),
        background=True,
        manager=ctx.jobs,
        running=[
            (Output("losses-whatifs", "disabled"), True, False),
            (Output("losses-whatifs-status", "children"), "running the what-ifs…", ""),
        ],
        prevent_initial_call=True,
    )
    def run_whatifs(_n: int, run_id: str | None) -> Any:
        from twin.report.document import ReportRun, what_if_rows

        if not run_id:
            return layout.alert("Pick a run first.", kind="info")
        run = ReportRun.load(run_id, ctx.store)
        station = run.summary["bottleneck"]["station"]
        rows = what_if_rows(run, waterfall(run.summary, station), True)
        head = ["cause", "lost per replication", "what-if", "throughput gained"]
        return html.Table(
            [
                html.Thead(html.Tr([html.Th(h) for h in head])),
                html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows]),
            ],
            className="kpi-table",
            id="losses-whatifs-table",
        )

    @app.callback(
        Output("losses-states", "figure"),
        Output("losses-oee", "figure"),
        Output("losses-bottleneck", "figure"),
        Output("losses-bottleneck-note", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("losses-states", "id"),
    )
    def draw(run_id: str | None, _: str) -> tuple:
        if not run_id:
            empty = layout.empty_figure("Pick a run in the bar above.", CHART_HEIGHT)
            return (empty,) * 3 + ("",)
        return summary_figures(ctx.cache.view(run_id))

    @app.callback(
        Output("losses-downtime", "figure"),
        Output("losses-changeover", "figure"),
        Input(layout.RUN_PICKER, "value"),
        Input("losses-downtime", "id"),
    )
    def draw_paretos(run_id: str | None, _: str) -> tuple:
        """Apart from the figures of the KPI summary, which need no event and come first."""
        if not run_id:
            return (layout.empty_figure("Pick a run in the bar above.", CHART_HEIGHT),) * 2
        return paretos(ctx.cache.view(run_id))


def waterfall_head(view: Any) -> tuple:
    """The station picker's options, its first value (the line) and why the bottleneck is one."""
    s = view.summary
    options = [{"label": "the line (its constraint)", "value": LINE}] + [
        {"label": name, "value": name} for name in s["stations"]
    ]
    return options, LINE, why_bottleneck(s)


def waterfall_of(view: Any, station: str) -> dict:
    """The waterfall of ``station`` (``LINE``: the line's) as a figure dict, made once per view."""

    def draw() -> dict:
        fall = waterfall(view.summary, None if station == LINE else station)
        return waterfall_figure(fall, station == LINE).to_dict()

    return view.derived(("waterfall", station), draw)


def summary_figures(view: Any) -> tuple:
    """Shares of time, OEE and bottleneck figures (as dicts) and the bottleneck note, from the KPI summary alone
    (made once per view)."""

    def draw() -> tuple:
        s = view.summary
        main = s["bottleneck"]["station"]
        count = s["bottleneck"]["replications"].get(main, 0) if main else 0
        note = f"The line's bottleneck: {main}, the main one in {count} of {s['replications']} replications."
        return states_figure(s).to_dict(), oee_figure(s).to_dict(), bottleneck_figure(s).to_dict(), note

    return view.derived("losses", draw)


def paretos(view: Any) -> tuple:
    """The downtime and changeover Paretos (as dicts), made once per view: they read every replication's state
    intervals and the start rows."""

    def draw() -> tuple:
        down = view.derived("downtime", lambda: downtime(view))
        change = view.derived("changeovers", lambda: changeovers(view))
        return (
            pareto_figure(*down, state_hex("down"), "no failures in this run").to_dict(),
            pareto_figure(*change, state_hex("setup"), "no changeovers in this run").to_dict(),
        )

    return view.derived("losses-paretos", draw)


def _prefetch(view: Any) -> None:
    """What the page draws: the line's waterfall, the summary's figures, then the Paretos."""
    waterfall_of(view, LINE)
    summary_figures(view)
    paretos(view)


PAGE = Page(path="/losses", title="Losses", layout=_layout, register=_register, order=30, prefetch=_prefetch)
