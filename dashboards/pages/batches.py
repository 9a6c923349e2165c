"""Batches: a batch's record (eBR summary: steps, waits and why, cleaning, hold times, QC release; CSV
download), its genealogy tree (splits and merges), the QC release queue, and the hold-time violations
of the run. Times are calendar times of the run's clock (``twin.clock``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboards import layout
from dashboards.figures import HOVER_TIME, calendar_axis, date_ms
from dashboards.formatting import hours_text
from dashboards.pages import Page
from twin.errors import TwinError
from twin.report.record import BatchRecord, batch_record, record_hours, record_table

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
                layout.card("Summary", layout.loading(html.Div(id="batches-summary"))),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        layout.card(
            "Batch record",
            html.Div(
                [
                    html.Button("Download record (CSV)", id="batches-download-button"),
                    dcc.Download(id="batches-download"),
                ],
                className="controls",
            ),
            layout.loading(html.Div(id="batches-history")),
            help="each step: unit, calendar times, duration, how long and why it waited, cleaning before it",
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


def _cached_record(view: Any, replication: int, batch: int) -> BatchRecord:
    """The record of a batch, computed once per run view."""
    return view.derived(
        ("record", replication, batch),
        lambda: batch_record(
            view.replication_log(replication), view.spec, batch, replication, view.intervals(replication)
        ),
    )


def record_summary(record: BatchRecord, clock: Any) -> html.Div:
    """The head of the record: product, status, genealogy, release, QC, hold-time checks."""
    qc = record.qc
    facts = [
        ("Batch", f"{record.batch} (replication {record.replication})"),
        ("Product", record.product or "–"),
        ("Status", record.status),
        ("Entered the line", clock.text(record.released, long=True)),
        ("Made from", ", ".join(f"batch {p}" for p in record.parents) or "–"),
        ("Went into", ", ".join(f"batch {c}" for c in record.children) or "–"),
        ("Quarantine", clock.text(qc.get("quarantine"), long=True)),
        ("QC tests", f"{clock.text(qc.get('qc_start'))} – {clock.text(qc.get('qc_end'))}"),
        ("Release date", clock.text(qc.get("approve"), long=True) if qc.get("approve") is not None else "not released"),
    ]
    if qc.get("reject") is not None:
        facts.append(("Rejected", clock.text(qc["reject"], long=True)))
    if record.investigations:
        facts.append(("Investigations", ", ".join(clock.text(t) for t in record.investigations)))
    for h in record.holds:
        verdict = "VIOLATED" if h.violated else ("ok" if h.held is not None else "not reached")
        held = f"{hours_text(h.held)} of {hours_text(h.limit)}: {verdict}"
        facts.append((f"Hold {h.from_station} → {h.to_station}", held))
    return html.Div(
        [html.Div([html.B(k + ": "), v], className="fact", id=f"batches-fact-{i}") for i, (k, v) in enumerate(facts)],
        id="batches-record-head",
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


def _calendar_columns(frame: pd.DataFrame, clock: Any, columns: list[str]) -> pd.DataFrame:
    """The same table with the hours of ``columns`` shown as calendar times (an en dash when missing)."""
    if frame.empty:
        return frame
    out = frame.copy()
    for col in columns:
        out[col] = clock.texts(out[col].to_numpy(dtype=float))
    return out


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


def first_batch(table: pd.DataFrame) -> tuple[int | None, str]:
    """The batch shown first in a replication (the first one a split or merge made, else the middle one),
    and the hint of the batches there are."""
    links = table[table["event"].isin(["split", "merge"])]
    known = np.unique(table["batch"].to_numpy())
    known = known[known >= 0]
    if not len(known):
        return None, "no batches"
    first = int(links["batch"].iloc[0]) if len(links) else int(known[len(known) // 2])
    return first, f"batches {known[0]}–{known[-1]}; {links['batch'].nunique()} made by splits or merges"


def _prefetch(view: Any) -> None:
    """The first replication's first batch record and QC queue, as the callbacks keep them."""
    first = view.replications[0]
    table = view.table(first)
    batch, _ = view.derived(("batch-hint", first), lambda: first_batch(table))
    if batch is not None:
        _cached_record(view, first, batch)
    view.derived(("qc", first), lambda: qc_queue(table))


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("batches-download", "data"),
        Input("batches-download-button", "n_clicks"),
        State(layout.RUN_PICKER, "value"),
        State("batches-replication", "value"),
        State("batches-batch", "value"),
        prevent_initial_call=True,
    )
    def download(_n: int, run_id: str | None, replication: int | None, batch: Any) -> Any:
        if not run_id or replication is None or batch in (None, ""):
            return no_update
        view = ctx.cache.view(run_id)
        record = _cached_record(view, int(replication), int(batch))
        shown = record_table(record, view.clock, hours_text)
        exact = record_hours(record)
        both = pd.concat([shown.drop(columns=["station"]), exact], axis=1)
        name = f"batch-record-{view.run_id[:8]}-r{replication}-b{batch}.csv"
        return dcc.send_data_frame(both.to_csv, name, index=False)

    @app.callback(
        Output("batches-replication", "options"),
        Output("batches-replication", "value"),
        Output("batches-tree", "figure"),
        Output("batches-history", "children"),
        Output("batches-summary", "children"),
        Output("batches-hint", "children"),
        Output("batches-batch", "value"),
        Output("batches-qc", "figure"),
        Output("batches-queue", "children"),
        Output("batches-holds", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("batches-replication", "value"),
        Input("batches-batch", "value"),
    )
    def show(run_id: str | None, replication: int | None, batch: Any) -> tuple:
        """One round trip for a run: its replications (the first chosen), a batch's record and the QC queue; a
        replication draws both for it, a batch its record alone."""
        if not run_id:
            pick = "Pick a run in the bar above."
            empty = layout.empty_figure(pick, 320), None, None, "", no_update
            return [], None, *empty, layout.empty_figure(pick, 260), None, None
        view = ctx.cache.view(run_id)
        triggers = {p.split(".")[0] for p in dash_ctx.triggered_prop_ids}
        head: tuple = (no_update, no_update)
        if not triggers or layout.RUN_PICKER in triggers or replication not in view.replications:
            head = layout.replication_options(view.replications)
            replication = head[1]
        if replication is None:
            return (*head, layout.empty_figure("no replications", 320), None, None, "", no_update, *(no_update,) * 3)
        qc = qc_parts(view, int(replication)) if triggers != {"batches-batch"} else (no_update,) * 3
        return (*head, *batch_parts(view, int(replication), batch), *qc)


def batch_parts(view: Any, replication: int, batch: Any) -> tuple:
    """A batch's genealogy figure, record table, summary, the replication's batches hint and the batch shown
    (the replication's first made by a split or merge when none is asked for)."""
    default, hint = view.derived(("batch-hint", replication), lambda: first_batch(view.table(replication)))
    if batch in (None, ""):
        batch = default
    if batch is None:
        return layout.empty_figure(hint, 320), None, None, hint, no_update
    try:
        record = _cached_record(view, int(replication), int(batch))
    except TwinError as err:
        message = str(err).splitlines()[0]
        return layout.empty_figure(message, 320), layout.alert(message, kind="warning"), None, hint, no_update
    rows = record_table(record, view.clock, hours_text)
    history = dash_table.DataTable(
        rows.to_dict("records"),
        [{"name": c, "id": c} for c in rows.columns],
        id="batches-history-table",
        style_cell_conditional=[
            {"if": {"column_id": "why it waited"}, "minWidth": "220px", "whiteSpace": "normal"},
            {"if": {"column_id": "cleaning before"}, "minWidth": "160px", "whiteSpace": "normal"},
        ],
        style_cell={**TABLE_STYLE["style_cell"], "textAlign": "left"},
        **{**{k: v for k, v in TABLE_STYLE.items() if k != "style_cell"}, "page_size": 20},
    )
    return tree_figure(record), history, record_summary(record, view.clock), hint, int(batch)


def qc_parts(view: Any, replication: int) -> tuple:
    """The QC queue over time (figure), the queue's table with its note, and the hold-time violations."""
    table = view.table(int(replication))
    queue = view.derived(("qc", replication), lambda: qc_queue(table))
    clock = view.clock
    if queue.empty:
        fig = layout.empty_figure("This line has no QC release: no batches go into quarantine.", 260)
    else:
        fig = go.Figure()
        times = np.concatenate([queue["quarantine"].dropna(), queue["approve"].dropna(), queue["reject"].dropna()])
        steps = np.concatenate(
            [
                np.ones(queue["quarantine"].notna().sum()),
                -np.ones(queue["approve"].notna().sum() + queue["reject"].notna().sum()),
            ]
        )
        order = np.argsort(times, kind="stable")
        counts = np.cumsum(steps[order])
        fig.add_trace(
            go.Scatter(
                x=date_ms(clock, times[order]),
                y=counts.astype(np.int32),
                mode="lines",
                line_shape="hv",
                name="in quarantine",
                line={"color": "#7a5aa6"},
                hovertemplate=HOVER_TIME + ": %{y} in quarantine<extra></extra>",
            )
        )
        layout.figure_style(fig, height=260, showlegend=False)
        calendar_axis(fig, clock, (0.0, view.end(int(replication))))
        layout.count_axis(fig, float(counts.max()) if len(counts) else 1, title="batches in quarantine")
    queue = _calendar_columns(queue, clock, ["quarantine", "qc_start", "qc_end", "approve", "reject"])
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
                "time": clock.texts(holds["time"]),
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


PAGE = Page(path="/batches", title="Batches", layout=_layout, register=_register, order=60, prefetch=_prefetch)
