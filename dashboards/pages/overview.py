"""Overview: the KPI cards with their confidence intervals, and the line drawn as a flow at any moment.

The flow shows stations left to right, each unit a square coloured by its state at the slider's
time (``twin.palette``, the USD scenes' colours), the batches waiting in each buffer, and the QC
queue after the line.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboards import layout
from dashboards.formatting import ci_text, hours_text, percent, rate_unit
from dashboards.pages import Page
from dashboards.reports import register_report, report_buttons
from dashboards.series import counts_at, units_at
from twin.eventlog import STATES
from twin.kpis.line import constraint_text
from twin.palette import NO_STATE_COLOR, state_hex, to_hex

KPI_CARDS = (  # id, label, KPI, scale, digits, unit (throughput: the line's own, see twin.clock.rate_unit)
    ("kpi-throughput", "Throughput", "throughput_per_hour", 24.0, 2, "batches/day"),
    ("kpi-lead-time", "Lead time", "lead_time_hours", 1.0, 1, "h"),
    ("kpi-wip", "WIP", "wip", 1.0, 2, "batches"),
    ("kpi-oee", "Line OEE", "oee", 100.0, 1, "%"),
)


def kpi_cards(summary: dict[str, Any]) -> list[html.Div]:
    cards = []
    for card_id, label, key, scale, digits, unit in KPI_CARDS:
        if key == "throughput_per_hour":
            unit, scale = rate_unit((summary.get(key) or {}).get("mean"))
        value, detail = ci_text(summary.get(key), scale, digits)
        if key == "oee" and constraint_text(summary):
            detail = f"{detail}; {constraint_text(summary)}"
        cards.append(layout.kpi_card(card_id, label, value, detail, unit))
    return cards


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Overview",
        html.Div(id="overview-kpis", className="kpi-row"),
        html.Div(id="overview-facts", className="facts"),
        report_buttons("overview"),
        layout.card(
            "The line at a moment",
            html.Div(
                [
                    html.Label(
                        [
                            "Replication",
                            dcc.Dropdown(id="overview-replication", clearable=False, className="small-dropdown"),
                        ]
                    ),
                    html.Div(id="overview-time-label", className="time-label"),
                ],
                className="controls",
            ),
            dcc.Slider(
                id="overview-time",
                min=0,
                max=1,
                value=0,
                updatemode="mouseup",
                className="time-slider",
                tooltip={"placement": "bottom", "always_visible": False},
            ),
            layout.loading(layout.graph("overview-flow", height=280)),
            layout.state_legend(list(STATES)),
            help="drag the slider to see each unit's state and the buffers at any time of the run",
        ),
        subtitle="Key figures of the selected run, with 95% confidence intervals over its replications.",
    )


def flow_figure(view: Any, replication: int, t: float) -> go.Figure:
    stations, units = view.stations, view.units
    table = view.table(replication)
    now = units_at(table, view.intervals(replication), stations, units, t)
    queue = counts_at(table, stations, t)
    caps = {s.name: s.buffer for s in view.spec.stations}
    fig = go.Figure()
    shapes, hover_x, hover_y, hover_text, colors = [], [], [], [], []
    row, pitch = 0, 3.2
    top = max(units)
    for j, (name, count) in enumerate(zip(stations, units, strict=True)):
        x = j * pitch
        shapes.append(
            {
                "type": "rect",
                "x0": x - 0.95,
                "x1": x + 0.95,
                "y0": -0.6,
                "y1": top - 0.4,
                "line": {"color": "#b8c2cc", "width": 1},
                "fillcolor": "#f7f9fb",
                "layer": "below",
            }
        )
        for u in range(count):
            unit_now = now.get(row, {})
            state = unit_now.get("state")
            color = state_hex(state) if state else to_hex(NO_STATE_COLOR)
            y = top - 1 - u if count > 1 else (top - 1) / 2
            shapes.append(
                {
                    "type": "rect",
                    "x0": x - 0.55,
                    "x1": x + 0.55,
                    "y0": y - 0.38,
                    "y1": y + 0.38,
                    "line": {"color": "#33414e", "width": 1},
                    "fillcolor": color,
                }
            )
            hover_x.append(x)
            hover_y.append(y)
            label = f"{name} #{u + 1}" if count > 1 else name
            in_state = t - unit_now["since"] if unit_now.get("since") is not None else None
            batch = unit_now.get("batch")
            words = [f"batch {batch}" if batch is not None else "no batch"]
            if batch is not None and unit_now.get("product"):
                words.append(str(unit_now["product"]))
            words.append(f"{(state or 'no state').replace('_', ' ')} {hours_text(in_state)}")
            fig.add_annotation(
                x=x, y=y, text="<br>".join(words), showarrow=False, font={"size": 8, "color": "#111"}
            )
            hover_text.append(f"{label}: " + ", ".join(words) + f" (since {view.clock.text(unit_now.get('since'))})")
            colors.append(color)
            row += 1
        fig.add_annotation(
            x=x, y=top - 0.2, text=f"<b>{name}</b>", showarrow=False, yanchor="bottom", font={"size": 11}
        )
        if j > 0 or view.spec.release.mode == "interarrival":
            cap = caps.get(name)
            waiting = queue.get(name, 0)
            held = waiting if cap is None else min(waiting, cap)  # in the buffer's places
            extra = waiting - held  # handed over, not started: at the unit, not in a buffer of 0 places
            places = "unlimited" if cap is None else f"{cap} place" + ("" if cap == 1 else "s")
            text = f"▶ {held}<br><sup>{places}</sup>" + (f"<br><sup>+{extra} at the unit</sup>" if extra else "")
            fig.add_annotation(
                x=x - pitch / 2,
                y=(top - 1) / 2,
                text=text,
                showarrow=False,
                hovertext=f"{held} batch(es) in the buffer of {name}"
                + (f", {extra} handed over and waiting at its unit to start" if extra else ""),
                font={"size": 11, "color": "#33414e"},
                bgcolor="#ffffff",
            )
    if view.spec.qc is not None:
        x = len(stations) * pitch
        shapes.append(
            {
                "type": "rect",
                "x0": x - 0.8,
                "x1": x + 0.8,
                "y0": (top - 1) / 2 - 0.45,
                "y1": (top - 1) / 2 + 0.45,
                "line": {"color": "#7a5aa6"},
                "fillcolor": "#efe9f6",
            }
        )
        fig.add_annotation(
            x=x, y=(top - 1) / 2, text=f"QC<br>{queue['QC']} in quarantine", showarrow=False, font={"size": 10}
        )
    fig.add_trace(
        go.Scatter(
            x=hover_x,
            y=hover_y,
            mode="markers",
            marker={"size": 22, "color": colors, "opacity": 0},
            hovertext=hover_text,
            hoverinfo="text",
            showlegend=False,
        )
    )
    last = (len(stations) - (0 if view.spec.qc is not None else 1)) * pitch
    layout.figure_style(fig, height=280, shapes=shapes, showlegend=False, margin={"l": 5, "r": 5, "t": 10, "b": 5})
    fig.update_xaxes(visible=False, range=[-1.2, last + 1.2], fixedrange=True)
    fig.update_yaxes(visible=False, range=[-0.8, top + 0.4], fixedrange=True, scaleanchor=None)
    return fig


def _register(app: Any, ctx: Any) -> None:
    register_report(app, ctx, "overview", State(layout.RUN_PICKER, "value"))

    @app.callback(
        Output("overview-kpis", "children"),
        Output("overview-facts", "children"),
        Output("overview-replication", "options"),
        Output("overview-replication", "value"),
        Output("overview-time", "max"),
        Output("overview-time", "value"),
        Output("overview-time", "marks"),
        Output("overview-flow", "figure"),
        Output("overview-time-label", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("overview-replication", "value"),
        Input("overview-time", "value"),
    )
    def show(run_id: str | None, replication: int | None, t: float | None) -> tuple:
        """One round trip for a run: its KPIs, facts, replications and time range, and the flow at the end of its
        warm-up; a replication or a time draws the flow alone."""
        if not run_id:
            pick = "Pick a run in the bar above."
            return [layout.alert(pick, kind="info")], [], [], None, 1, 0, {}, layout.empty_figure(pick, 280), ""
        view = ctx.cache.view(run_id)
        triggers = {p.split(".")[0] for p in dash_ctx.triggered_prop_ids}
        head: tuple = (no_update,) * 7
        if not triggers or layout.RUN_PICKER in triggers or replication not in view.replications:
            head = run_head(view)  # a run shown anew: its first replication, at the end of the warm-up
            replication, t = head[3], head[5]
        t = float(t or 0.0)
        label = f"{view.clock.text(t, long=True, with_shift=True)} ({hours_text(t)} into the run)"
        return (*head, flow_figure(view, int(replication), t), label)


def run_head(view: Any) -> tuple:
    """KPI cards, facts, replication options and the first, the slider's end, start (end of warm-up) and marks."""
    reps = view.replications
    end = view.end(reps[0])
    weeks = range(0, int(end // 168) + 1, max(1, int(end // 168) // 12 or 1))
    marks = {round(w * 168, 3): view.clock.at(w * 168).strftime("%d %b") for w in weeks}
    warm = float(view.info.get("warmup") or 0.0)
    return (
        kpi_cards(view.summary),
        _facts(view),
        *layout.replication_options(reps),
        end,
        min(max(warm, 0.0), end),
        marks,
    )


def _facts(view: Any) -> list[html.Span]:
    s, info = view.summary, view.info
    bottleneck = (s.get("bottleneck") or {}).get("station") or "–"
    release = s.get("release") or {}
    quality = s.get("quality") or {}
    facts = [
        ("Scenario", str(info.get("scenario", "baseline"))),
        ("Replications", str(s.get("replications"))),
        ("Window", f"{view.clock.text(s['window_hours'][0])} – {view.clock.text(s['window_hours'][1])}"),
        ("Bottleneck", bottleneck),
        ("Release lead time", ci_text(release.get("lead_time_hours"), 1 / 24, 1)[0] + " d"),
        ("Rejected batches", ci_text(quality.get("rejected_batches"), 1, 1)[0]),
        (
            "Bottleneck utilization",
            percent(((s.get("stations") or {}).get(bottleneck) or {}).get("utilization", {}).get("mean")),
        ),
    ]
    if info.get("overrides"):
        facts.append(("Overrides", ", ".join(info["overrides"])))
    return [html.Span([html.B(k + ": "), v], className="fact") for k, v in facts]


def _prefetch(view: Any) -> None:
    """The first replication's rows and state intervals (the flow at any time is drawn from them)."""
    first = view.replications[0]
    view.table(first)
    view.intervals(first)


PAGE = Page(path="/", title="Overview", layout=_layout, register=_register, order=10, prefetch=_prefetch)
