"""Plotly figures shared by several pages: the state Gantt and the batches' paths through the line.

    >>> gantt_figure(gantt_segments(view.intervals(0), 0, 4368), view.unit_labels(), (0, 4368), view.clock)
    >>> paths_figure(*batch_paths(view.table(0), view.stations, 0, 4368), view.stations, products, window, clock)

Both take data already reduced on the server (``dashboards.series``); a figure carries at most a
few thousand segments whatever the length of the run. Their x axes are calendar time
(``twin.clock.RunClock``): hours from the start become dates on the way out, and a zoom's dates
become hours again with ``window_hours``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.layout import figure_style
from dashboards.series import Segments
from twin.clock import RunClock
from twin.eventlog import STATES
from twin.palette import product_color, state_hex, to_hex

HOVER_TIME = "%{x|%a %d %b %H:%M}"


def date_values(clock: RunClock, hours: Any) -> list[str | None]:
    """Hours from the start as ISO dates plotly reads (``None`` where a value is missing: a gap)."""
    return [None if np.isnat(d) else str(d) for d in clock.dates(hours)]


def date_ms(clock: RunClock, hours: Any) -> np.ndarray:
    """Hours from the start as milliseconds since 1970 (NaN where a value is missing: a gap): what a plotly
    date axis reads from numbers. A float array goes to the browser as a typed array (8 bytes a value, not
    some 28 characters of an ISO date) and costs no string per point here."""
    dates = clock.dates(hours)
    ms = dates.astype("datetime64[ms]").astype(np.int64).astype(float)
    return np.where(np.isnat(dates), np.nan, ms)


def calendar_axis(fig: go.Figure, clock: RunClock, window: tuple[float, float] | None = None, **kwargs: Any) -> None:
    """Make x a date axis over ``window`` (hours), titled with where the clock starts."""
    extra = {"range": date_values(clock, list(window))} if window is not None else {}
    fig.update_xaxes(type="date", title=clock.describe(), tickformat="%a %d %b\n%H:%M", **extra, **kwargs)


def window_hours(clock: RunClock, lo: Any, hi: Any) -> tuple[float, float]:
    """A date axis's range (ISO strings, or numbers when plotly sends hours) back in hours from the start."""
    def one(v: Any) -> float:
        return float(v) if isinstance(v, (int, float)) else clock.hours(str(v).replace(" ", "T")[:26])

    return one(lo), one(hi)


def _small_int(values: np.ndarray) -> type:
    """The smallest unsigned integer type that holds ``values`` (whole numbers >= 0)."""
    top = int(values.max()) if len(values) else 0
    return np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32


def room(labels: list[str], top: int = 45) -> dict[str, int]:
    """Margins that hold the y labels, a legend above the plot and two lines of dates with the axis title below.

    Plotly grows margins that are too small for these (automargin) by drawing the whole figure a second
    time: about as long as the first for a Gantt of a few thousand segments. Margins given wide enough
    spare that; a label longer than guessed still gets its room the slow way, never clipped.
    """
    return {"l": 16 + 7 * max((len(label) for label in labels), default=4), "r": 10, "t": top, "b": 70}


def gantt_grid(segments: Segments, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The segments as a grid: column edges (hours: every segment's start and end, so bounds stay exact) and, per
    unit and column, the index in ``STATES`` of the state drawn there (``len(STATES)``: none, a gap)."""
    parts = [np.concatenate([lo, hi]) for _rows, lo, hi in segments.values()]
    edges = np.unique(np.concatenate(parts)) if parts else np.zeros(0)
    z = np.full((rows, max(len(edges) - 1, 0)), len(STATES), dtype=np.uint8)
    for code, state in enumerate(STATES):
        if state not in segments:
            continue
        row, lo, hi = segments[state]
        first, last = np.searchsorted(edges, lo), np.searchsorted(edges, hi)
        for r, a, b in zip(row.tolist(), first.tolist(), last.tolist(), strict=True):
            z[r, a:b] = code
    return edges, z


def gantt_figure(
    segments: Segments, labels: list[str], window: tuple[float, float], clock: RunClock, title: str = ""
) -> go.Figure:
    """Every unit's states as horizontal bars (calendar time on x, one row per unit, its label on y).

    One heatmap of the segments' grid (``gantt_grid``): drawn as one image, 2-4x faster than the same bars as
    thousands of thick line segments; its hover names the state, the unit and the time. The legend's entries are empty
    traces, one per state drawn (clicking them hides nothing: ``itemclick`` off).
    """
    height = max(220, 60 + 26 * len(labels))
    fig = go.Figure()
    edges, z = gantt_grid(segments, len(labels))
    if z.size:
        drawn = [state for state in STATES if state in segments]
        gap = len(STATES)
        names = np.array([state.replace("_", " ") for state in STATES] + ["no state"])
        # one band per code, -0.5 .. gap + 0.5: the colour of each state, none for a gap
        colors = [state_hex(state) for state in STATES] + ["rgba(0,0,0,0)"]
        scale = [[(code + side) / (gap + 1), color] for code, color in enumerate(colors) for side in (0, 1)]
        fig.add_trace(
            go.Heatmap(
                x=date_ms(clock, edges),
                y=labels,
                z=z,
                text=names[z],
                zmin=-0.5,
                zmax=gap + 0.5,
                colorscale=scale,
                showscale=False,
                ygap=max(2, round((height - 90) / max(len(labels), 1) * 0.25)),
                hovertemplate="%{y}: %{text}<br>" + HOVER_TIME + "<extra></extra>",
                name="states",
                showlegend=False,
            )
        )
        for state in drawn:  # the legend: an empty trace per state drawn
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    marker={"symbol": "square", "size": 11, "color": state_hex(state)},
                    name=state.replace("_", " "),
                    hoverinfo="skip",
                )
            )
    if title:  # above the legend, which sits on top of the plot
        head = {
            "text": title,
            "x": 0,
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 8},
            "font": {"size": 13},
        }
        figure_style(fig, height=height + 30, title=head, margin=room(labels, top=65))
    else:
        figure_style(fig, height=height, margin=room(labels))
    fig.update_yaxes(
        type="category",
        categoryarray=labels,
        autorange="reversed",
        fixedrange=True,
        range=[len(labels) - 0.5, -0.5],
        showgrid=False,
    )
    calendar_axis(fig, clock, window)
    legend = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "itemclick": False, "itemdoubleclick": False}
    fig.update_layout(legend=legend, uirevision="gantt", showlegend=True)
    return fig


def paths_figure(
    paths: pd.DataFrame,
    total: int,
    stations: list[str],
    products: list[str],
    window: tuple[float, float],
    clock: RunClock,
) -> go.Figure:
    """Each batch's time at each station (thick) and its moves between them (thin), coloured by product."""
    fig = go.Figure()
    for i, product in enumerate(products):
        mine = paths[paths["product"] == product]  # sorted by batch, then station
        if mine.empty:
            continue
        color = to_hex(product_color(i))
        batch = mine["batch"].to_numpy()
        last = np.append(batch[1:] != batch[:-1], True)  # a batch's last station: a gap follows
        n = len(mine)
        points = np.column_stack([mine["start"].to_numpy(float), mine["leave"].to_numpy(float), np.full(n, np.nan)])
        keep = np.column_stack([np.ones(n, bool), np.ones(n, bool), last]).ravel()
        station = mine["station_index"].to_numpy()
        fig.add_trace(
            go.Scatter(
                x=date_ms(clock, points.ravel()[keep]),  # start, leave at each station; a gap after each batch
                y=np.repeat(station, 3)[keep].astype(_small_int(station)),
                customdata=np.repeat(batch, 3)[keep].astype(np.int32),
                mode="lines",
                name=product,
                line={"color": color, "width": 1.5},
                hovertemplate="batch %{customdata}<br>" + HOVER_TIME + "<extra>" + product + "</extra>",
            )
        )
    shown = paths["batch"].nunique() if not paths.empty else 0
    note = f"{shown} of {total} batches in the window" if shown < total else f"{total} batches"
    figure_style(
        fig,
        height=max(240, 60 + 30 * len(stations)),
        title={"text": f"Batches through the line · {note}", "x": 0, "font": {"size": 13}},
        margin=room(stations),
    )
    fig.update_yaxes(tickvals=list(range(len(stations))), ticktext=stations, autorange="reversed", fixedrange=True)
    calendar_axis(fig, clock, window)
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0.5})
    return fig
