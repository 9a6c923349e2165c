"""Compare: runs from the store side by side, KPIs with 95% CIs and deltas against the first run
(paired over common replications when the seeds match, Welch otherwise), and their timelines.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dash import Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboards import layout
from dashboards.figures import gantt_figure
from dashboards.formatting import ci_text, rate_unit, run_label
from dashboards.pages import Page
from dashboards.reports import register_report, report_buttons
from dashboards.series import gantt_segments
from twin.kpis.line import LINE_KPI, LINE_KPIS, LineKpi, constraint_moved, constraint_of, shown, stat
from twin.store.diff import kpi_deltas, spec_changes


def _metric(kpi: LineKpi, per_hour: float | None = None) -> tuple[str, str, float, int, bool]:
    """How the page shows a line KPI: key, label, scale, digits, higher is better (batches in the line's own
    unit, ``rate_unit`` of the first run's throughput)."""
    if kpi.unit == "batches/h":
        unit, scale = rate_unit(per_hour)
        return kpi.column, f"{kpi.label} ({unit})", scale, 2, kpi.higher_is_better
    return kpi.column, f"{kpi.label} ({kpi.unit})", 100.0 if kpi.percent else 1.0, kpi.digits, kpi.higher_is_better




def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Compare",
        layout.card(
            "Runs",
            dcc.Dropdown(
                id="compare-runs", multi=True, placeholder="pick two or more runs…", className="wide-dropdown"
            ),
            report_buttons("compare"),
            help="the first run is the reference for the deltas (and the report's run)",
        ),
        dcc.Store(id="compare-with", data=query.get("with")),
        layout.graphs_soon(),  # the timelines come with the body
        layout.loading(html.Div(id="compare-body")),
        subtitle="KPIs side by side with their 95% confidence intervals and the deltas against the first run.",
    )


def _kpi(view: Any, key: str) -> dict | None:
    return dict(stat(view.summary, LINE_KPI[key]))


def comparison_table(views: list[Any]) -> html.Table:
    ref = views[0]
    paired = [v.info.get("seed") == ref.info.get("seed") for v in views]
    deltas = [kpi_deltas(ref.per_replication, v.per_replication, paired=p) for v, p in zip(views, paired, strict=True)]
    head = [html.Th("KPI")]
    for i, v in enumerate(views):
        head.append(html.Th([v.info.get("scenario", "run"), html.Span(v.run_id[:8], className="ci")]))
        if i:
            head.append(html.Th(["Δ vs first", html.Span("paired" if paired[i] else "Welch", className="ci")]))
    body = []
    summaries = [v.summary for v in views]
    moved = [bool(i) and constraint_moved(ref.summary, v.summary, "") is not None for i, v in enumerate(views)]
    per_hour = _kpi(ref, "throughput_per_hour")["mean"]
    metrics = [_metric(k, per_hour) for k in LINE_KPIS if k.column != "lead_time_p50_hours"]
    for key, label, scale, digits, higher in metrics:
        if not shown(LINE_KPI[key], summaries):
            continue
        cells = [html.Td(label)]
        for i, v in enumerate(views):
            value, ci = ci_text(_kpi(v, key), scale, digits)
            cells.append(html.Td([value, html.Span(ci.replace("95% CI ", ""), className="ci")]))
            if i:
                d = deltas[i].get(key)
                if d is None:
                    cells.append(html.Td("–"))
                    continue
                text, ci = ci_text({"mean": d.mean, "ci95": [d.low, d.high]}, scale, digits)
                significant = d.n >= 2 and (d.low > 0 or d.high < 0)
                cls = "same" if not significant else ("better" if (d.mean > 0) == higher else "worse")
                if key == "oee" and moved[i]:
                    cls = "same"  # shares of different stations' time: neither better nor worse
                sign = "+" if d.mean > 0 else ""
                cells.append(
                    html.Td([sign + text, html.Span(ci.replace("95% CI ", ""), className="ci")], className=cls)
                )
        body.append(html.Tr(cells, id=f"compare-row-{key}"))
        if key == "oee":
            cells = [html.Td("Line OEE valued at")]
            for i, v in enumerate(views):
                cells.append(html.Td(constraint_of(v.summary) or "–", className="moved" if moved[i] else None))
                if i:
                    cells.append(html.Td("moved" if moved[i] else "", className="moved" if moved[i] else None))
            body.append(html.Tr(cells, id="compare-row-constraint"))
    return html.Table([html.Thead(html.Tr(head)), html.Tbody(body)], className="kpi-table", id="compare-table")


def full_timeline(view: Any) -> dict:
    """The Gantt of a run's first replication (a figure dict), made once per view (and by the warm-up)."""

    def draw() -> dict:
        rep = view.replications[0]
        end = view.end(rep)
        segments = gantt_segments(view.intervals(rep), 0.0, end, 800)
        title = f"{view.info.get('scenario')} · {view.run_id[:8]} · replication {rep}"
        return gantt_figure(segments, view.unit_labels(), (0, end), view.clock, title).to_dict()

    return view.derived("compare-gantt", draw)


def _register(app: Any, ctx: Any) -> None:
    register_report(app, ctx, "compare", State("compare-runs", "value"))

    @app.callback(
        Output("compare-runs", "options"),
        Output("compare-runs", "value"),
        Output("compare-body", "children"),
        Input(layout.RUN_PICKER, "value"),
        Input("compare-runs", "value"),
        State("compare-with", "data"),
    )
    def show(run_id: str | None, run_ids: list[str] | None, with_: str | None) -> tuple:
        """One round trip for the selected run: the runs to compare (``choices``) and their comparison; picking
        runs compares them alone."""
        head: tuple = (no_update, no_update)
        if not dash_ctx.triggered_prop_ids or dash_ctx.triggered_id == layout.RUN_PICKER:
            head = choices(ctx, run_id, with_)
            run_ids = head[1]
        return (*head, comparison(ctx, run_ids))


def choices(ctx: Any, run_id: str | None, with_: str | None) -> tuple[list[dict], list[str]]:
    """The store's runs as options, and those compared: the selected run first, then ``?with=ID,ID`` from the
    address, else the newest other run."""
    rows = ctx.cache.catalog().to_dict("records")
    options = [{"label": run_label(r), "value": r["run_id"]} for r in rows]
    ids = [r["run_id"] for r in rows]
    value = [run_id] if run_id in ids else []
    for ref in (with_ or "").split(","):
        value += [i for i in ids if ref and i.startswith(ref) and i not in value][:1]
    value += [i for i in ids if i not in value][: 2 - len(value)]
    return options, value


def comparison(ctx: Any, run_ids: list[str] | None) -> Any:
    """The KPI table, what differs and the timelines of ``run_ids`` (the first is the reference)."""
    if not run_ids or len(run_ids) < 2:
        return layout.alert("Pick at least two runs to compare.", kind="info")
    views = [ctx.cache.view(r) for r in run_ids[:4]]
    lines = {v.spec.name for v in views}
    changes = []
    for v in views[1:]:
        diff = spec_changes(views[0].spec_data, v.spec_data)
        text = ", ".join(f"{p}: {a} → {b}" for p, a, b in diff[:8]) or "same spec"
        changes.append(html.Li([html.B(f"{v.info.get('scenario')} ({v.run_id[:8]}): "), text]))
    with ThreadPoolExecutor(max_workers=len(views)) as pool:  # the runs load side by side (Parquet frees the GIL)
        figures = list(pool.map(full_timeline, views))
    timelines = [
        layout.graph(f"compare-gantt-{v.run_id[:8]}", figure=figure)
        for v, figure in zip(views, figures, strict=True)
    ]
    warn = (
        [layout.alert("These runs are of different lines; deltas compare their KPIs only.", kind="warning")]
        if len(lines) > 1
        else []
    )
    for v in views[1:]:
        note = constraint_moved(views[0].summary, v.summary, f"{v.info.get('scenario')} ({v.run_id[:8]})")
        if note:
            warn.append(layout.alert(note, kind="info", id=f"compare-constraint-{v.run_id[:8]}"))
    return html.Div(
        [
            *warn,
            layout.card("KPIs", comparison_table(views), help="mean and 95% CI; green: significantly better"),
            layout.card("What differs", html.Ul(changes)),
            layout.card("Timelines", *timelines, help="replication 0 of each run"),
        ]
    )


PAGE = Page(path="/compare", title="Compare", layout=_layout, register=_register, order=50, prefetch=full_timeline)
