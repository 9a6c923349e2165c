"""Batches: a batch's genealogy tree (splits and merges) and history, the QC release queue, and the
hold-time violations of the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, dash_table, dcc, html

from dashboards import layout
from dashboards.formatting import hours_text
from dashboards.pages import Page
from twin.trace import trace

TABLE_STYLE = {
    "style_cell": {"fontSize": 12, "padding": "3px 8px", "fontFamily": layout.FONT},
    "style_header": {"fontWeight": 600, "backgroundColor": "#f3f5f8"},
    "page_size": 10,
}


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Batches",
        html.Div(
            [
                html.Label(
                    ["Replication", dcc.Dropdown(id="batches-replication", clearable=False, className="small-dropdown")]
                ),
                html.Label(
                    [
                        "Batch",
                        dcc.Input(
                            id="batches-batch", type="number", min=0, step=1, debounce=True, value=query.get("batch")
                        ),
                    ]
                ),
                html.Span(id="batches-hint", className="muted"),
            ],
            className="controls",
        ),
        html.Div(
            [
                layout.card(
                    "Genealogy",
                    layout.loading(layout.graph("batches-tree", height=320)),
                    help="parents above, children below; splits and merges",
                ),
                layout.card("History", layout.loading(html.Div(id="batches-history"))),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        layout.card(
            "QC release queue",
            layout.loading(layout.graph("batches-qc", height=260)),
            html.Div(id="batches-queue"),
            help="batches in quarantine over time, and each batch's release",
        ),
        layout.card("Hold-time violations", layout.loading(html.Div(id="batches-holds"))),
        subtitle="Trace a batch up and down its tree, and follow batches through quarantine and QC release.",
    )


def tree_figure(t: Any) -> go.Figure:
    """Batches by generation (ancestors above, descendants below), lines from parent to child."""
    depth = {t.batch: 0}
    todo = [t.batch]
    while todo:
        b = todo.pop()
        for p in t.ancestors.get(b, []):
            if p not in depth:
                depth[p] = depth[b] - 1
                todo.append(p)
    todo = [t.batch]
    while todo:
        b = todo.pop()
        for c in t.descendants.get(b, []):
            if c not in depth:
                depth[c] = depth[b] + 1
                todo.append(c)
    levels: dict[int, list[int]] = {}
    for b, d in sorted(depth.items()):
        levels.setdefault(d, []).append(b)
    pos = {b: (i - (len(bs) - 1) / 2, -d) for d, bs in levels.items() for i, b in enumerate(bs)}
    ex, ey = [], []
    for child, parents in t.ancestors.items():
        for p in parents:
            ex += [pos[p][0], pos[child][0], None]
            ey += [pos[p][1], pos[child][1], None]
    for parent, children in t.descendants.items():
        for c in children:
            ex += [pos[parent][0], pos[c][0], None]
            ey += [pos[parent][1], pos[c][1], None]
    fig = go.Figure(go.Scatter(x=ex, y=ey, mode="lines", line={"color": "#9aa7b4"}, hoverinfo="skip"))
    nodes = list(pos)
    fig.add_trace(
        go.Scatter(
            x=[pos[b][0] for b in nodes],
            y=[pos[b][1] for b in nodes],
            mode="markers+text",
            text=[f"batch {b}" for b in nodes],
            textposition="middle right",
            marker={"size": 18, "color": ["#2e7d32" if b == t.batch else "#516274" for b in nodes]},
            hoverinfo="text",
        )
    )
    layout.figure_style(fig, height=320, showlegend=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def qc_queue(table: pd.DataFrame) -> pd.DataFrame:
    """Per batch through QC: quarantine, QC start and end, approval or rejection, release lead time."""
    qc = table[table["station"].isna() & table["event"].isin(["quarantine", "qc_start", "qc_end", "approve", "reject"])]
    if qc.empty:
        return pd.DataFrame()
    wide = qc.pivot_table(index="batch", columns=qc["event"].astype(str), values="time", aggfunc="first")
    for col in ("quarantine", "qc_start", "qc_end", "approve", "reject"):
        if col not in wide:
            wide[col] = np.nan
    wide["status"] = np.where(
        wide["approve"].notna(),
        "approved",
        np.where(wide["reject"].notna(), "rejected", np.where(wide["qc_start"].notna(), "testing", "waiting")),
    )
    wide["days in QC"] = ((wide["approve"].fillna(wide["reject"]) - wide["quarantine"]) / 24).round(2)
    products = table[table["event"] == "quarantine"].set_index("batch")["product"].astype(str)
    wide["product"] = products.reindex(wide.index).to_numpy()
    return wide.reset_index()[
        ["batch", "product", "quarantine", "qc_start", "qc_end", "approve", "reject", "status", "days in QC"]
    ].round(2)


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("batches-replication", "options"),
        Output("batches-replication", "value"),
        Input(layout.RUN_PICKER, "value"),
        Input("batches-hint", "id"),
    )
    def replications(run_id: str | None, _: str) -> tuple:
        return layout.replication_options(ctx.cache.view(run_id).replications if run_id else [])

    @app.callback(
        Output("batches-tree", "figure"),
        Output("batches-history", "children"),
        Output("batches-hint", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("batches-replication", "value"),
        Input("batches-batch", "value"),
    )
    def show_batch(run_id: str | None, replication: int | None, batch: Any) -> tuple:
        if not run_id or replication is None:
            return layout.empty_figure("Pick a run in the bar above.", 320), None, ""
        view = ctx.cache.view(run_id)
        table = view.table(int(replication))
        links = table[table["event"].isin(["split", "merge"])]
        known = sorted(int(b) for b in table["batch"].unique() if b >= 0)
        if batch in (None, ""):
            batch = int(links["batch"].iloc[0]) if len(links) else known[len(known) // 2]
        hint = (
            f"batches {known[0]}–{known[-1]}; {links['batch'].nunique()} made by splits or merges"
            if known
            else "no batches"
        )
        t = trace(view.log.replication(int(replication)), int(batch), int(replication))
        rows = t.rows[["time", "batch", "station", "unit", "event", "state", "quantity"]].copy()
        rows["time"] = rows["time"].round(3)
        for col in ("station", "event", "state"):
            rows[col] = rows[col].astype(object).where(rows[col].notna(), "")
        history = dash_table.DataTable(
            rows.to_dict("records"),
            [{"name": c, "id": c} for c in rows.columns],
            id="batches-history-table",
            sort_action="native",
            **TABLE_STYLE,
        )
        return tree_figure(t), history, hint

    @app.callback(
        Output("batches-qc", "figure"),
        Output("batches-queue", "children"),
        Output("batches-holds", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("batches-replication", "value"),
    )
    def show_qc(run_id: str | None, replication: int | None) -> tuple:
        if not run_id or replication is None:
            return layout.empty_figure("Pick a run in the bar above.", 260), None, None
        view = ctx.cache.view(run_id)
        table = view.table(int(replication))
        queue = view.derived(("qc", replication), lambda: qc_queue(table))
        fig = go.Figure()
        if not queue.empty:
            times = np.concatenate([queue["quarantine"].dropna(), queue["approve"].dropna(), queue["reject"].dropna()])
            steps = np.concatenate(
                [
                    np.ones(queue["quarantine"].notna().sum()),
                    -np.ones(queue["approve"].notna().sum() + queue["reject"].notna().sum()),
                ]
            )
            order = np.argsort(times, kind="stable")
            fig.add_trace(
                go.Scatter(
                    x=times[order],
                    y=np.cumsum(steps[order]),
                    mode="lines",
                    line_shape="hv",
                    name="in quarantine",
                    line={"color": "#7a5aa6"},
                )
            )
        layout.figure_style(fig, height=260, showlegend=False)
        fig.update_xaxes(title="hours since the start of the run")
        fig.update_yaxes(title="batches in quarantine")
        waiting = queue[queue["status"].isin(["waiting", "testing"])] if not queue.empty else queue
        queue_table = (
            dash_table.DataTable(
                queue.to_dict("records"),
                [{"name": c, "id": c} for c in queue.columns],
                id="batches-qc-table",
                sort_action="native",
                filter_action="native",
                **TABLE_STYLE,
            )
            if not queue.empty
            else layout.alert("This line has no QC release.", kind="info")
        )
        note = html.P(
            f"{len(waiting)} batch(es) still in QC at the end of the replication; "
            f"{(queue['status'] == 'rejected').sum() if not queue.empty else 0} rejected.",
            className="muted",
        )
        holds = table[table["event"] == "hold_violation"]
        if holds.empty:
            hold_view = layout.alert("No hold-time violations in this replication.", kind="success")
        else:
            h = pd.DataFrame(
                {
                    "time": holds["time"].round(2),
                    "batch": holds["batch"],
                    "product": holds["product"].astype(str),
                    "at station": holds["station"].astype(str),
                    "waited": [hours_text(q) for q in holds["quantity"]],
                }
            )
            rules = {(r.from_, r.to): r for r in (view.spec.hold_times or [])}
            hold_view = html.Div(
                [
                    html.P(
                        f"{len(h)} violation(s) in this replication; {len(rules)} hold-time rule(s) in the spec.",
                        className="muted",
                    ),
                    dash_table.DataTable(
                        h.to_dict("records"),
                        [{"name": c, "id": c} for c in h.columns],
                        id="batches-holds-table",
                        sort_action="native",
                        **TABLE_STYLE,
                    ),
                ]
            )
        return fig, html.Div([note, queue_table]), hold_view


PAGE = Page(path="/batches", title="Batches", layout=_layout, register=_register, order=60)
