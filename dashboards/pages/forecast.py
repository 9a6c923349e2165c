"""Calibrate & forecast: fit the selected run's spec to observed data, and forecast from a line's state.

Calibration takes its data from the selected run or from a plant historian, and shows per value
the old and new value, the 95% interval, the observations and why a value was kept, then the KPI
impact (original vs calibrated, paired intervals); the calibrated spec downloads as YAML. A
forecast starts from the selected run's state at a chosen time (or from the historian's end) and
shows completed batches over the horizon with their 90% band, each batch's completion interval and,
for a run, what the run itself did next. "Download as USD" writes the forecast of "as is" and of
each what-if typed beside it as the variants of one USD scene (``twin forecast --usd -s``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dash_table, dcc, html, no_update

from dashboards import layout
from dashboards.figures import calendar_axis, date_values
from dashboards.formatting import number
from dashboards.pages import Page
from twin.clock import RunClock
from twin.runfolder import SPEC_FILE

TABLE = {
    "style_cell": {"fontSize": 12, "padding": "3px 8px", "fontFamily": layout.FONT, "whiteSpace": "normal"},
    "style_header": {"fontWeight": 600, "backgroundColor": "#f3f5f8"},
}

FORECAST_FIRST = "Press Forecast to predict completions and releases from the line's state."

def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    historian = query.get("historian") or ctx.historians.default
    return layout.page(
        "Calibrate & forecast",
        html.Div(
            [
                html.Label(
                    [
                        "Data",
                        dcc.RadioItems(
                            id="fc-source",
                            options=[
                                {"label": " the selected run", "value": "run"},
                                {"label": " a plant historian", "value": "historian"},
                            ],
                            value="run",
                            inline=True,
                        ),
                    ]
                ),
                html.Label(["Historian", dcc.Input(id="fc-historian", value=historian, className="path-input")]),
            ],
            className="controls",
        ),
        layout.card(
            "Calibration",
            html.Div(
                [
                    html.Button("Calibrate the run's spec", id="fc-calibrate", className="button"),
                    html.Span(" fits every value with enough data; a few seconds to a minute", className="muted"),
                ]
            ),
            layout.loading(html.Div(id="fc-calibration")),
            dcc.Download(id="fc-download"),
            help="maximum likelihood with censoring, AICc family choice, 95% intervals",
        ),
        layout.card(
            "Forecast",
            html.Div(
                [
                    html.Label(
                        [
                            "From (hours into the run)",
                            dcc.Input(id="fc-at", type="number", min=0, debounce=True),
                            html.Span(id="fc-at-date", className="muted"),
                        ]
                    ),
                    html.Label(["Horizon (h)", dcc.Input(id="fc-horizon", type="number", value=24, min=0)]),
                    html.Label(["Runs", dcc.Input(id="fc-runs", type="number", value=30, min=1, max=500, step=1)]),
                    html.Button("Forecast", id="fc-forecast", className="button"),
                ],
                className="controls",
            ),
            html.Div(id="fc-error"),
            layout.loading(
                html.Div(
                    [
                        layout.graph("fc-completions", height=320, placeholder=FORECAST_FIRST),
                        layout.graph("fc-batches", height=320, placeholder=FORECAST_FIRST),
                    ],
                    className="grid-2",
                )
            ),
            html.Div(id="fc-totals"),
            html.Div(
                [
                    html.Label(
                        [
                            "What-ifs from now (one per line: NAME: path=value, ...)",
                            dcc.Textarea(
                                id="fc-scenarios",
                                placeholder="second coater: stations.coating.units=2",
                                className="path-input",
                                style={"height": "3.5em"},
                            ),
                        ]
                    ),
                    html.Button("Download as USD", id="fc-usd", className="button"),
                    html.Span(" the forecast of 'as is' and each what-if as variants of one scene", className="muted"),
                ],
                className="controls",
            ),
            html.Div(id="fc-usd-error"),
            dcc.Download(id="fc-usd-download"),
            help="from the line's state: batches in process finish their remaining (conditional) time",
        ),
        dcc.Store(id="fc-calibrated"),
        subtitle="Tune the model to what the line did, and ask what it will do next.",
    )


def _data(ctx: Any, source: str, run_id: str | None, historian: str) -> tuple[Any, str]:
    """The event log to learn from, and its label."""
    if source == "historian":
        from twin.calibrate.sources import read_source

        path = ctx.historians.resolve(historian)  # only one the dashboard may open
        try:
            return read_source(str(path))
        except Exception as err:  # a TwinError or an unreadable file: said on the page, not raised
            raise LookupError(str(err).splitlines()[0]) from None
    if not run_id:
        raise LookupError("Pick a run first.")
    view = ctx.cache.view(run_id)
    return view.log, f"run {view.run_id}"


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items() if k != "dist") or "-"
    if isinstance(v, float):
        return number(v, 4)
    return "-" if v is None else str(v)


def calibration_tables(report: dict[str, Any]) -> html.Div:
    rows = []
    for p in report["parameters"]:
        mean = p.get("mean_hours") or {}
        interval = f"{number(mean.get('low'), 3)} – {number(mean.get('high'), 3)}" if mean.get("low") else "-"
        rows.append(
            {
                "value": p["label"],
                "old": _value(p["old"]),
                "new": _value(p["new"]) if p["status"] == "changed" else "-",
                "95% interval (mean, h)": interval,
                "n (censored)": f"{p['n']} ({p['censored']})",
                "status": p["status"] if p["status"] == "changed" else f"kept: {p['reason']}",
            }
        )
    params = dash_table.DataTable(
        rows,
        columns=[{"name": c, "id": c} for c in rows[0]] if rows else [],
        page_size=12,
        id="fc-parameters",
        style_data_conditional=[
            {"if": {"filter_query": '{status} = "changed"', "column_id": "status"}, "color": "#2e7d32"}
        ],
        **TABLE,
    )
    impact = []
    for k in report.get("kpis", []):
        o, c, d = k["original"], k["calibrated"], k["delta"]
        impact.append(
            {
                "KPI": k["metric"],
                "original": number(o.get("mean"), 4),
                "calibrated": number(c.get("mean"), 4),
                "change (95% CI)": f"{number(d.get('mean'), 3)} "
                f"[{number(d.get('low'), 3)}, {number(d.get('high'), 3)}]",
            }
        )
    kpis = (
        dash_table.DataTable(impact[:8], columns=[{"name": c, "id": c} for c in impact[0]], id="fc-impact", **TABLE)
        if impact
        else html.P("No KPI comparison.", className="muted")
    )
    head = html.P(
        f"{report['changed']} value(s) changed, {report['kept']} kept, from {report['source']} "
        f"({report['observations']:,} observations).",
        id="fc-calibration-summary",
    )
    return html.Div(
        [
            head,
            params,
            html.H3("KPI impact (common random numbers)"),
            kpis,
            html.Button("Download the calibrated spec", id="fc-save", className="button"),
        ]
    )


def completions_figure(result: Any, actual: pd.Series | None, clock: RunClock, at: float) -> go.Figure:
    """Batches out of the line since the snapshot (taken ``at`` hours into the run), over the horizon: median and
    90% band of the runs, on the run's calendar."""
    table, meta = result.log.table, result.log.meta
    start, end = meta.warmup, meta.horizon
    grid = np.linspace(start, end, 97)
    left = table[(table["event"] == "leave") & (table["station"] == meta.stations[-1]) & (table["time"] > start)]
    counts = np.zeros((meta.replications, len(grid)))
    for r, rows in left.groupby("replication"):
        counts[int(r)] = np.searchsorted(np.sort(rows["time"].to_numpy()), grid, side="right")
    p5, p50, p95 = np.percentile(counts, [5, 50, 95], axis=0)
    hours = date_values(clock, at + grid - start)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=hours, y=p95, line={"width": 0}, showlegend=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(x=hours, y=p5, fill="tonexty", fillcolor="rgba(46,158,66,0.2)", line={"width": 0}, name="90% band")
    )
    fig.add_trace(go.Scatter(x=hours, y=p50, line={"color": "#2e9e42"}, name="median"))
    if actual is not None:
        done = np.searchsorted(np.sort(actual.to_numpy()), grid, side="right")
        fig.add_trace(go.Scatter(x=hours, y=done, line={"color": "#243040", "dash": "dot"}, name="what the run did"))
    layout.figure_style(fig, height=320, title="Completed batches")
    calendar_axis(fig, clock)
    layout.count_axis(fig, float(p95.max()) if len(p95) else 1, title="batches out of the line")
    return fig


def batches_figure(result: Any, clock: RunClock, at: float) -> go.Figure:
    """Each batch in the line: median and 90% interval of when it leaves (on the run's calendar; the snapshot is
    ``at`` hours into the run); a time after the horizon is drawn at the horizon's edge and says so."""
    b = result.batches().dropna(subset=["leave_p50"]).head(25)
    edge = result.horizon
    p5, p50, p95 = (b[c].clip(upper=edge) for c in ("leave_p5", "leave_p50", "leave_p95"))
    text = [
        "after the horizon" if np.isinf(m) else clock.text(at + m, with_shift=True) for m in b["leave_p50"]
    ]
    fig = go.Figure(
        go.Scatter(
            x=date_values(clock, at + p50.to_numpy(dtype=float)),
            y=[f"batch {label or i}" for i, label in zip(b.index, b["label"], strict=True)],
            mode="markers",
            marker={"color": "#338cd9", "size": 9},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (p95 - p50).to_numpy(dtype=float) * 3_600_000,  # a date axis counts milliseconds
                "arrayminus": (p50 - p5).to_numpy(dtype=float) * 3_600_000,
            },
            customdata=np.stack([text, b["leave_chance"]], axis=-1) if len(b) else None,
            hovertemplate="%{y}: %{customdata[0]} (chance within the horizon %{customdata[1]:.0%})<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    layout.figure_style(fig, height=320, title="When each batch leaves the line")
    calendar_axis(fig, clock)
    return fig


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("fc-calibration", "children"),
        Output("fc-calibrated", "data"),
        Input("fc-calibrate", "n_clicks"),
        State("fc-source", "value"),
        State(layout.RUN_PICKER, "value"),
        State("fc-historian", "value"),
        prevent_initial_call=True,
    )
    def run_calibration(_n: int, source: str, run_id: str | None, historian: str) -> tuple[Any, Any]:
        from twin.calibrate import calibrate

        if not run_id:
            return layout.alert("Pick a run: its spec is the one calibrated.", kind="info"), None
        view = ctx.cache.view(run_id)
        try:
            log, label = _data(ctx, source, run_id, historian or "")
        except LookupError as err:
            return layout.alert(str(err), kind="warning"), None
        spec_file = view.folder / SPEC_FILE
        result = calibrate(
            view.spec, log, spec_text=spec_file.read_text(encoding="utf-8"), spec_label=str(spec_file),
            source_label=label, replications=3,
        )  # fmt: skip
        calibrated = {"name": f"{view.spec.name}-calibrated.yaml", "text": result.text}  # with provenance comments
        return calibration_tables(result.report.to_dict()), calibrated

    @app.callback(
        Output("fc-download", "data"),
        Input("fc-save", "n_clicks"),
        State("fc-calibrated", "data"),
        prevent_initial_call=True,
    )
    def download(_n: int, calibrated: dict[str, str] | None) -> Any:
        if not calibrated:
            return no_update
        return {"content": calibrated["text"], "filename": calibrated["name"]}

    @app.callback(Output("fc-at", "value"), Input(layout.RUN_PICKER, "value"), Input("fc-at", "id"))
    def default_time(run_id: str | None, _id: str) -> Any:
        if not run_id:
            return no_update
        view = ctx.cache.view(run_id)
        return round(view.end(0) / 2, 1)

    @app.callback(Output("fc-at-date", "children"), Input("fc-at", "value"), State(layout.RUN_PICKER, "value"))
    def at_date(at: Any, run_id: str | None) -> str:
        """The calendar time the snapshot is taken at, beside the hours typed."""
        if not run_id or not isinstance(at, int | float):
            return ""
        return " " + ctx.cache.view(run_id).clock.text(float(at), long=True, with_shift=True)

    @app.callback(
        Output("fc-completions", "figure"),
        Output("fc-batches", "figure"),
        Output("fc-totals", "children"),
        Output("fc-error", "children"),
        Input("fc-forecast", "n_clicks"),
        State("fc-source", "value"),
        State(layout.RUN_PICKER, "value"),
        State("fc-historian", "value"),
        State("fc-at", "value"),
        State("fc-horizon", "value"),
        State("fc-runs", "value"),
        prevent_initial_call=True,
    )
    def run_forecast(_n: int, source: str, run_id: str | None, historian: str, at: Any, horizon: Any, runs: Any):
        from twin.errors import TwinError
        from twin.forecast import forecast

        empty = layout.empty_figure(FORECAST_FIRST, 320)
        try:
            spec, log, label, snap, start = forecast_start(ctx, source, run_id, historian, at, horizon, runs)
            result = forecast(spec, snap, float(horizon), int(runs), seed=1)
        except Refused as refusal:
            return empty, empty, None, layout.alert(str(refusal), kind=refusal.kind)
        except TwinError as err:
            return empty, empty, None, layout.alert(str(err).splitlines()[0], kind="warning")
        actual = None
        if source == "run":
            t = log.table
            rows = t[(t["replication"] == 0) & (t["event"] == "leave") & (t["station"] == log.meta.stations[-1])]
            actual = rows.loc[(rows["time"] > start) & (rows["time"] <= start + horizon), "time"]
        i = result.intervals()
        clock = ctx.cache.view(run_id).clock
        totals = html.P(
            f"From {label} at {clock.text(start, long=True, with_shift=True)} ({start:g} h into it), {runs} runs: "
            f"{i['completed']['mean']:.1f} batches out of the line in "
            f"{horizon:g} h (90% interval {i['completed']['p5']:.0f} – {i['completed']['p95']:.0f}), "
            f"{i['released']['mean']:.1f} released by QC"
            + (f"; the run itself finished {len(actual)}." if actual is not None else "."),
            id="fc-totals-text",
        )
        return completions_figure(result, actual, clock, start), batches_figure(result, clock, start), totals, None


    @app.callback(
        Output("fc-usd-download", "data"),
        Output("fc-usd-error", "children"),
        Input("fc-usd", "n_clicks"),
        State("fc-source", "value"),
        State(layout.RUN_PICKER, "value"),
        State("fc-historian", "value"),
        State("fc-at", "value"),
        State("fc-horizon", "value"),
        State("fc-runs", "value"),
        State("fc-scenarios", "value"),
        prevent_initial_call=True,
    )
    def download_usd(_n: int, source: str, run_id: str | None, historian: str, at: Any, horizon: Any, runs: Any,
                     scenarios: str | None) -> tuple[Any, Any]:  # fmt: skip
        from importlib.metadata import entry_points

        from twin.errors import TwinError
        from twin.forecast import forecast

        exporters = {e.name: e for e in entry_points(group="twin.forecast_exporters")}
        try:
            if "usd" not in exporters:
                raise Refused("No USD exporter is installed (the USD connector provides it).")
            spec, _log, _label, snap, start = forecast_start(ctx, source, run_id, historian, at, horizon, runs)
            variants = [("as is", spec), *what_ifs(spec, scenarios or "")]
            results = [(name, line, forecast(line, snap, float(horizon), int(runs), seed=1)) for name, line in variants]
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / f"forecast-{spec.name}-{start:g}h.usdz"  # one file: scene and assets
                exporters["usd"].load().package(results, out)
                data = dcc.send_bytes(out.read_bytes(), out.name)
        except (Refused, TwinError) as err:
            return no_update, layout.alert(str(err).splitlines()[0], kind=getattr(err, "kind", "warning"))
        return data, None


class Refused(Exception):
    """A forecast request the page answers with a message (kind: an alert kind) instead of a forecast."""

    def __init__(self, message: str, kind: str = "warning"):
        super().__init__(message)
        self.kind = kind


def forecast_start(ctx: Any, source: str, run_id: str | None, historian: str, at: Any, horizon: Any, runs: Any):
    """(spec, log, label, snapshot, start hours) of a forecast request; ``Refused`` with the reason otherwise."""
    from twin.errors import TwinError
    from twin.snapshot import snapshot_from_log

    if not isinstance(horizon, int | float) or horizon <= 0:
        raise Refused("The horizon must be a positive number of hours.")
    if not isinstance(runs, int) or runs < 1:
        raise Refused("Runs must be a whole number of at least 1.")
    try:
        log, label = _data(ctx, source, run_id, historian or "")
    except LookupError as err:
        raise Refused(str(err)) from None
    spec = ctx.cache.view(run_id).spec if run_id else None
    if spec is None:
        raise Refused("Pick a run: its spec runs the forecast.", kind="info")
    start = log.meta.horizon if source == "historian" or at is None else float(at)
    if not 0 <= start <= log.meta.horizon:
        raise Refused(f"From must lie in 0 – {log.meta.horizon:g} h.")
    try:
        snap = snapshot_from_log(log, start, source=label)
    except TwinError as err:
        raise Refused(str(err).splitlines()[0]) from None
    return spec, log, label, snap, start


def what_ifs(spec: Any, text: str) -> list[tuple[str, Any]]:
    """What-if specs from lines of ``NAME: path=value, ...`` (as ``twin forecast -s``); InputError when malformed."""
    from twin.cli.scenarios import parse_scenario
    from twin.errors import InputError
    from twin.experiment import with_overrides

    out: list[tuple[str, Any]] = []
    for line in (part.strip() for part in text.splitlines()):
        if not line:
            continue
        name, assignments = parse_scenario(line)
        if name == "as is" or name in [n for n, _ in out]:
            raise InputError(f"what-if {name!r} is given twice")
        out.append((name, with_overrides(spec, assignments, source=f"what-if {name!r}")))
    return out


PAGE = Page(path="/forecast", title="Calibrate & forecast", layout=_layout, register=_register, order=80)
