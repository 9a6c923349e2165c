"""Live: the plant through `twin sync`'s historian, refreshed every few seconds.

Connection state, each unit's state now (the plant's own code mapped by the tag map), the plant's KPIs
next to the shadow twin's with their drift, KPIs over plant time, and how good the shadow twin's
forecasts have been. The page reads the historian (SQLite in WAL mode) while the sync writes it;
the historian comes from ``twin dashboard --historian plant.db`` or the page's own field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml
from dash import Input, Output, State, dash_table, dcc, html

from dashboards import layout
from dashboards.figures import calendar_axis, date_values
from dashboards.formatting import number, percent
from dashboards.pages import Page
from twin.clock import RunClock
from twin.palette import state_hex

REFRESH_MS = 3000
MAX_POINTS = 400  # KPI history points read and sent to the browser (spread over the whole feed)
LAST_FORECASTS = 50  # forecasts listed (the accuracy summary covers them all: the sync keeps it in the view)
KPIS = (
    ("throughput_per_hour", "Throughput (batches/h)", False),
    ("units_per_hour", "Units per hour", False),
    ("oee", "OEE", True),
    ("wip", "WIP (batches)", False),
    ("lead_time_hours", "Lead time (h)", False),
)

CHOSEN = "chosen window"  # the column of the window the user picks ("KPIs since")
WINDOWS = {"shift": "this shift", "day": "last 24 h", "since": "since"}  # the sync's windows, as the table heads them
SINCE_EXAMPLE = "YYYY-MM-DD HH:MM"  # the form a plant date and time is typed in (UTC)
PICK_HISTORIAN = "Pick a plant historian above (one written by `twin sync`) to see the plant live."

def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    default = query.get("historian") or ctx.historians.default
    return layout.page(
        "Live",
        html.Div(
            [
                html.Label(
                    ["Historian", dcc.Input(id="live-historian", value=default, debounce=True, className="path-input")]
                ),
                html.Label(
                    [
                        "KPIs since",
                        dcc.Input(
                            id="live-since",
                            value=query.get("since", ""),
                            placeholder=SINCE_EXAMPLE,
                            debounce=True,
                            className="path-input",
                        ),
                    ],
                    title="a plant date and time (UTC): the KPIs from the first whole plant hour at or after it",
                ),
                html.Span(f"refreshed every {REFRESH_MS // 1000} s", className="muted"),
            ],
            className="controls",
        ),
        dcc.Interval(id="live-tick", interval=REFRESH_MS),
        html.Div(id="live-status"),
        html.Div(
            [
                layout.card(
                    "Units now",
                    layout.graph("live-units", height=300, placeholder=PICK_HISTORIAN),
                    help="the plant's states, live",
                ),
                layout.card("Plant vs twin", html.Div(id="live-kpis"), help="the shadow twin runs the same line"),
            ],
            className="grid-2",
        ),
        html.Div(style={"height": "14px"}),
        layout.card("KPIs over plant time", layout.graph("live-history", height=300, placeholder=PICK_HISTORIAN)),
        layout.card("Shadow forecasts: how good they were", html.Div(id="live-forecasts")),
        subtitle="The plant's live states and KPIs next to the twin's, from the historian `twin sync` writes.",
    )


def _read(ctx: Any, text: str, since: str | None = None) -> dict[str, Any]:
    """Everything the page shows, read in one short session of the historian (one the dashboard may open);
    ``since``: the free-form window's start as typed (``since_window``)."""
    from connectors.opcua.historian import Historian
    from connectors.opcua.logsource import is_historian
    from connectors.opcua.tagmap import parse_tag_map

    path = ctx.historians.resolve(text)
    if not path.is_file() or not is_historian(path):
        raise LookupError(f"{path} is not a historian written by `twin sync`.")
    h = Historian(path, readonly=True)
    try:  # each read is bounded: the latest view, one value per tag, MAX_POINTS rows, the last forecasts
        meta, latest, view = h.meta(), h.latest(), h.view()
        kpis, forecasts = history(h), h.forecasts(last=LAST_FORECASTS)
        gaps = len(h.gaps())
        chosen = since_window(h, meta, view, since) if since and since.strip() else None
    finally:
        h.close()
    tags = parse_tag_map(yaml.safe_load(meta["tag_map"]), path) if meta.get("tag_map") else None
    return {
        "meta": meta,
        "latest": latest,
        "view": view,
        "kpis": kpis,
        "forecasts": forecasts,
        "gaps": gaps,
        "tags": tags,
        "chosen": chosen,
    }


def since_window(h: Any, meta: dict[str, Any], view: dict[str, Any] | None, text: str) -> dict[str, Any]:
    """The KPIs since a plant date and time typed by the user (UTC, the plant's calendar: ``twin.clock``), from the
    sync's running totals at the first whole plant hour at or after it and those of now (two look-ups, no rescan:
    ``twin.kpis.accumulate.window_from_totals``), the plant's and, in shadow mode, the twin's.
    ``{"since": hours, "asked": hours, "figures": {...}, "twin": {...} or None}`` or ``{"error": message}``."""
    from twin.kpis.accumulate import window_from_totals

    origin, plant_us = meta.get("origin_us"), meta.get("plant_us")
    now = (view or {}).get("totals")
    if not origin or not plant_us or not now:
        return {"error": "The sync has kept no running totals yet (a sync of this version keeps them every hour)."}
    clock = _plant_clock(float(origin))
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return {"error": f"KPIs since {text.strip()!r}: not a date and time; write it as {SINCE_EXAMPLE} (UTC)."}
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    asked = clock.hours(moment)
    if asked > float(now["hours"]):
        return {"error": f"KPIs since {clock.text(asked, long=True)}: that is after the plant's clock "
                         f"({clock.text(now['hours'], long=True)} UTC)."}  # fmt: skip
    mark = h.kpi_mark(asked)
    first = h.kpi_mark(-1e18)
    if first is None or asked < first[0] - 1e-6:
        start = clock.text(first[0], long=True) if first else clock.text(0.0, long=True)
        return {"error": f"KPIs since {clock.text(asked, long=True)}: that is before the historian's start "
                         f"(its first KPIs: {start} UTC, after the warm-up)."}  # fmt: skip
    if mark is None or mark[0] >= float(now["hours"]):
        return {"error": f"KPIs since {clock.text(asked, long=True)}: the first whole plant hour after it has not "
                         "ended yet; pick an earlier time."}  # fmt: skip
    twin_now, twin_mark = (view or {}).get("twin_totals"), h.kpi_mark(mark[0], who="twin")
    twin = None
    if twin_now and twin_mark is not None and abs(twin_mark[0] - mark[0]) < 1e-6:  # the twin's totals of that hour
        twin = window_from_totals(twin_mark[1], twin_now)
    return {"since": mark[0], "asked": asked, "figures": window_from_totals(mark[1], now), "twin": twin}


def unit_states(data: dict[str, Any]) -> pd.DataFrame:
    """station, unit, state, since (plant time) of every unit, from its tags' latest values (``roles.unit_state``)."""
    from connectors.opcua.roles import unit_roles, unit_state

    tags, latest = data["tags"], data["latest"]
    if tags is None:
        return pd.DataFrame(columns=["station", "unit", "state", "since"])
    by_tag = latest.set_index("tag") if len(latest) else pd.DataFrame(columns=["value", "source_time"])
    rows = []
    for station, u, unit in tags.units():
        roles = unit_roles(unit)
        values = {role: by_tag.loc[tag, "value"] for role, tag in roles.items() if tag in by_tag.index}
        since = by_tag.loc[unit.state, "source_time"] if unit.state in by_tag.index else None
        state = unit_state(tags, unit, values) or "unknown"
        rows.append({"station": station, "unit": u + 1, "state": state, "since": since})
    return pd.DataFrame(rows)


def units_figure(units: pd.DataFrame) -> go.Figure:
    """A tile per unit, stations along x, coloured by state."""
    fig = go.Figure()
    stations = list(dict.fromkeys(units["station"]))
    for state, rows in units.groupby("state", sort=False):
        fig.add_trace(
            go.Scatter(
                x=rows["station"],
                y=rows["unit"],
                mode="markers+text",
                marker={"symbol": "square", "size": 46, "color": state_hex(str(state))},
                text=[str(state).replace("_", " ")] * len(rows),
                textfont={"size": 9},
                textposition="bottom center",
                name=str(state).replace("_", " "),
                hovertemplate="%{x} unit %{y}: " + str(state) + "<extra></extra>",
            )
        )
    fig.update_xaxes(categoryorder="array", categoryarray=stations)
    fig.update_yaxes(title="unit", dtick=1, autorange="reversed")
    return layout.figure_style(fig, height=300, showlegend=False)


def _plant_clock(origin_us: float) -> RunClock:
    """The plant's calendar: the sync's origin (the plant's own source times, UTC) plus plant hours."""
    return RunClock(datetime.fromtimestamp(origin_us / 1e6, tz=UTC).replace(tzinfo=None))


def _kpis_at(origin_us: float | None, plant_hours: float | None, kpi_hours: float | None) -> str:
    """When the KPIs are of an earlier plant time than the clock (a sync stopped by ``--until`` while the plant ran on,
    or one tick behind), say which: the KPI table's windows end there, not at the clock."""
    if not origin_us or plant_hours is None or kpi_hours is None or kpi_hours >= plant_hours - 1 / 60:
        return ""
    return f"KPIs up to {_plant_clock(origin_us).text(kpi_hours, long=True)} UTC ({number(kpi_hours)} h)"


def _status(data: dict[str, Any]) -> html.Div:
    meta = data["meta"]
    origin, now = meta.get("origin_us"), meta.get("plant_us")
    plant_hours = (now - origin) / 3.6e9 if origin and now else None
    state = meta.get("state", "unknown")
    kind = {"connected": "success", "reconnecting": "warning", "stopped": "info"}.get(state, "warning")
    last = data["view"] or {}
    facts = [
        f"line {meta.get('line', '?')}",
        f"endpoint {meta.get('endpoint', '?')}",
        f"plant clock {_plant_clock(origin).text(plant_hours, long=True)} UTC "
        f"({number(plant_hours)} h since the sync's origin)"
        if plant_hours is not None
        else "plant clock -",
        _kpis_at(origin, plant_hours, last.get("plant_hours")),
        f"{last.get('acknowledged', 0):,} values stored" if last else "no KPI update yet",
        f"{data['gaps']} gap(s)",
        f"{last.get('bad_values', 0)} bad value(s)" if last else "",
        f"last update {meta.get('updated', '-')}",
        f"tick {number(last['tick_s'], 3)} s" if last.get("tick_s") is not None else "",
    ]
    return layout.alert(" · ".join(f for f in facts if f), kind=kind, title=f"Sync {state}.", id="live-state")


def _kpi_table(data: dict[str, Any]) -> Any:
    snap = data["view"]
    if not snap or not snap.get("plant"):
        return layout.alert("The sync has not computed KPIs yet (they start after its warm-up).", kind="info")
    plant, drift = snap.get("plant") or {}, snap.get("drift") or {}  # drift: plant, twin, relative (shadow mode)
    windows = snap.get("windows") or {}  # this shift's and the last 24 h's figures (connectors.opcua.running)
    chosen = data.get("chosen")  # the window the user asked for (since_window)
    # columns: (heading, plant or twin) -> the figures (``KPIS``' keys) they show; the twin's only in shadow mode
    twin_on = bool(drift) or any((w or {}).get("twin") for w in windows.values())
    groups = [("since the start", plant, {k: (drift.get(k) or {}).get("twin") for k, _, _ in KPIS})]
    groups += [(title, (windows[name] or {}).get("plant") or {}, (windows[name] or {}).get("twin") or {})
               for name, title in WINDOWS.items() if name in windows]  # fmt: skip
    if chosen and "figures" in chosen:
        groups.append((CHOSEN, chosen["figures"], chosen.get("twin") or {}))
    columns = [{"name": ["", "KPI"], "id": "KPI"}]
    rows = [{"KPI": label} for _, label, _ in KPIS]
    whos = ("plant", "twin") if twin_on else ("plant",)
    for g, (title, *both) in enumerate(groups):
        for who, figures in zip(whos, both[: len(whos)], strict=True):
            columns.append({"name": [title, who], "id": f"{g}-{who}"})
            for row, (key, _, pct) in zip(rows, KPIS, strict=True):
                value = figures.get(key)
                value = value.get("mean") if isinstance(value, dict) else value  # a summary's {mean, ci95}
                row[f"{g}-{who}"] = (percent if pct else number)(value)
        if g == 0 and twin_on:
            columns.append({"name": [title, "drift"], "id": "drift"})
            for row, (key, _, _) in zip(rows, KPIS, strict=True):
                row["drift"] = percent((drift.get(key) or {}).get("relative"))
    table = dash_table.DataTable(
        rows,
        columns=columns,
        merge_duplicate_headers=True,
        id="live-kpi-table",
        style_cell={"fontSize": 13, "padding": "4px 10px", "fontFamily": layout.FONT},
        style_header={"fontWeight": 600, "backgroundColor": "#f3f5f8", "textAlign": "center"},
    )
    origin = data["meta"].get("origin_us")
    clock = _plant_clock(origin) if origin else None
    since = [
        f"{title}{'' if windows[name].get('label') in (None, title) else ' (' + windows[name]['label'] + ')'}: since "
        f"{clock.text(windows[name]['since']) if clock else number(windows[name]['since']) + ' h'}"
        for name, title in WINDOWS.items()
        if windows.get(name)
    ]
    note = html.P(" · ".join(since) + " (UTC)" if since else "", className="muted", id="live-windows")
    parts = [table, note]
    if chosen and "figures" in chosen and clock:
        asked = clock.text(chosen["asked"])
        rounded = "" if chosen["since"] == chosen["asked"] else f" (the first whole plant hour at or after {asked})"
        parts.append(html.P(f"{CHOSEN}: since {clock.text(chosen['since'], long=True)} UTC{rounded}, from the sync's "
                            "hourly running totals", className="muted", id="live-since-note"))  # fmt: skip
    elif chosen:
        parts.append(layout.alert(chosen["error"], kind="warning", id="live-since-error"))
    return html.Div(parts)


def history(h: Any) -> dict[str, Any]:
    """Throughput over plant time, of the plant and (shadow mode) of the twin, at most MAX_POINTS points each:
    ``{"since": hours or None, "plant": (hours, values), "twin": (hours, values)}``.

    From the sync's running totals at whole plant hours (``Historian.kpi_marks``): at each hour the throughput since
    the first of them (``window_from_totals``), so the line has a point per hour however fast the plant ran. A sync
    that kept no totals: its KPI snapshots (``Historian.kpis``), one per report, each since the start."""
    from twin.kpis.accumulate import window_from_totals

    out: dict[str, Any] = {"since": None}
    plant = h.kpi_marks(MAX_POINTS)
    if len(plant) >= 2:
        out["since"] = plant[0][0]
        for who, marks in (("plant", plant), ("twin", h.kpi_marks(MAX_POINTS, "twin"))):
            first = marks[0][1] if marks else None
            points = [(hours, window_from_totals(first, totals)["throughput_per_hour"]) for hours, totals in marks[1:]]
            out[who] = ([p[0] for p in points], [p[1] for p in points])
        return out
    kpis = h.kpis(points=MAX_POINTS)
    for who in ("plant", "twin"):
        column = f"{who}_throughput_per_hour"
        kept = kpis[kpis[column].notna()] if len(kpis) else kpis
        out[who] = (kept["plant_hours"].tolist(), kept[column].tolist()) if len(kept) else ([], [])
    return out


def history_figure(kpis: dict[str, Any], origin_us: float | None = None) -> go.Figure:
    """Throughput of the plant and of the twin over plant time (``history``)."""
    fig = go.Figure()
    clock = _plant_clock(origin_us) if origin_us else None
    for who, colour in (("plant", "#243040"), ("twin", "#2e9e42")):
        hours, values = kpis.get(who) or ([], [])
        if hours:
            x = date_values(clock, np.asarray(hours, dtype=float)) if clock else hours
            fig.add_trace(go.Scatter(x=x, y=values, name=who, line={"color": colour}))
    if clock:
        calendar_axis(fig, clock)
        fig.update_xaxes(title="plant time (UTC)")
    else:
        fig.update_xaxes(title="plant time (h)")
    since = kpis.get("since")
    if since is None:
        title = "throughput since the start (batches/h)"
    else:
        title = f"throughput since {clock.text(since) if clock else number(since) + ' h'} (batches/h)"
    fig.update_yaxes(title=title, rangemode="tozero")
    return layout.figure_style(fig, height=300)


def _forecasts(data: dict[str, Any]) -> Any:
    fc = data["forecasts"]
    if not len(fc):
        return html.P(
            "No forecasts yet: run the sync with --shadow --forecast-every '8 h' to have them made and scored.",
            className="muted",
        )
    from connectors.opcua.forecasting import accuracy

    kept = (data["view"] or {}).get("forecasts")  # the sync's summary over every forecast
    summary = kept if kept else {"made": len(fc), **accuracy([s for s in fc["score"] if s])}
    head = html.P(
        f"{summary['made']} forecasts made, {summary['forecasts']} scored. Batch completion error "
        f"{number(summary['mean_abs_error_h'])} h on average (bias {number(summary['bias_h'])} h); the batch intervals "
        f"(5th-95th percentile) covered {percent(summary['batch_coverage'])} of {summary['batches_scored']} batches "
        f"and the 90% count intervals {percent(summary['completed_coverage'])} of the batch counts.",
        id="live-forecast-summary",
    )
    rows = []
    for at, horizon, predicted, score in zip(fc["at_hours"], fc["horizon"], fc["predicted"], fc["score"], strict=True):
        c = predicted["completed"]
        rows.append(
            {
                "from (h)": number(at),
                "horizon (h)": number(horizon),
                "batches predicted": f"{number(c['p50'], 0)} [{number(c['p5'], 0)} – {number(c['p95'], 0)}]",
                "batches done": "-" if not score else str(score["completed"]),
                "mean |error| (h)": "-" if not score else number(score["mean_abs_error_h"]),
                "batches covered": "-" if not score else f"{score['batches_covered']} of {score['batches_scored']}",
            }
        )
    table = dash_table.DataTable(
        rows[::-1],
        columns=[{"name": c, "id": c} for c in rows[0]],
        page_size=8,
        style_cell={"fontSize": 12, "padding": "3px 8px", "fontFamily": layout.FONT},
        style_header={"fontWeight": 600, "backgroundColor": "#f3f5f8"},
    )
    return html.Div([head, table])


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("live-status", "children"),
        Output("live-units", "figure"),
        Output("live-kpis", "children"),
        Output("live-history", "figure"),
        Output("live-forecasts", "children"),
        Input("live-tick", "n_intervals"),
        Input("live-historian", "value"),
        Input("live-since", "value"),
        State("live-historian", "id"),
    )
    def refresh(_tick: int | None, path: str | None, since: str | None, _id: str) -> tuple[Any, ...]:
        try:
            data = _read(ctx, path or "", since)
        except LookupError as err:
            empty = layout.empty_figure(str(err).splitlines()[0], 300)
            return layout.alert(str(err), kind="info", id="live-state"), empty, None, empty, None
        return (
            _status(data),
            units_figure(unit_states(data)),
            _kpi_table(data),
            history_figure(data["kpis"], data["meta"].get("origin_us")),
            _forecasts(data),
        )


PAGE = Page(path="/live", title="Live", layout=_layout, register=_register, order=75, needs_run=False)
