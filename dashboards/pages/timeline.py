"""Timeline: a Gantt of every unit's states, zoomable, and the batches' paths through the line.

Zooming re-queries the visible window: the server cuts it into pixel-wide bins (``dashboards.series``)
so that a year of events becomes a few thousand segments, sharp at any zoom.
"""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, dcc, html, no_update

from dashboards import layout
from dashboards.figures import gantt_figure, paths_figure, window_hours
from dashboards.pages import Page
from dashboards.series import batch_paths, gantt_segments
from twin.clock import RunClock

BINS = 1200


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Timeline",
        layout.card(
            "Equipment states",
            html.Div(
                [
                    html.Label(
                        [
                            "Replication",
                            dcc.Dropdown(id="timeline-replication", clearable=False, className="small-dropdown"),
                        ]
                    ),
                    html.Div(id="timeline-note", className="muted"),
                ],
                className="controls",
            ),
            layout.loading(layout.graph("timeline-gantt")),
            help="drag to zoom into a window (double-click: whole run); finer detail is fetched as you zoom",
        ),
        layout.card("Batches' paths", layout.loading(layout.graph("timeline-paths"))),
        subtitle="Every unit's state over the run, and each batch's way through the stations.",
    )


def window_of(relayout: dict[str, Any] | None, end: float, clock: RunClock) -> tuple[float, float] | None:
    """The x window (hours) a zoom asked for, in the axis's dates; None when the event was not a zoom."""
    if not relayout:
        return None
    if relayout.get("xaxis.autorange"):
        return (0.0, end)
    try:
        if "xaxis.range[0]" in relayout:
            lo, hi = window_hours(clock, relayout["xaxis.range[0]"], relayout["xaxis.range[1]"])
        elif "xaxis.range" in relayout:
            lo, hi = window_hours(clock, *relayout["xaxis.range"][:2])
        else:
            return None
    except (TypeError, ValueError):  # not a date the axis would send
        return None
    lo, hi = max(lo, 0.0), min(hi, end)
    return (lo, hi) if hi > lo else None


def _register(app: Any, ctx: Any) -> None:
    @app.callback(
        Output("timeline-gantt", "figure"),
        Output("timeline-paths", "figure"),
        Output("timeline-note", "children"),
        Output("timeline-replication", "options"),
        Output("timeline-replication", "value"),
        Input(layout.RUN_PICKER, "value"),
        Input("timeline-replication", "value"),
        Input("timeline-gantt", "relayoutData"),
        State("timeline-note", "children"),  # empty until a figure is drawn (not the figure: 250 KB back)
    )
    def draw(run_id: str | None, replication: int | None, relayout: dict | None, drawn: str | None) -> tuple:
        """One round trip for a run: its replications (the first chosen) and their figures; a replication or a zoom
        draws the figures alone."""
        if not run_id:
            return no_update, no_update, "", [], None
        view = ctx.cache.view(run_id)
        from dash import ctx as callback_ctx

        triggers = {p.split(".")[0] for p in callback_ctx.triggered_prop_ids}
        choices: tuple = (no_update, no_update)
        if not triggers or layout.RUN_PICKER in triggers or replication not in view.replications:
            choices = layout.replication_options(view.replications)  # a run shown anew: its first replication
            replication, drawn = choices[1], None
        end = view.end(int(replication))
        zoomed = triggers == {"timeline-gantt"}  # only the graph's own relayout: a zoom, or e.g. an autosize
        window = window_of(relayout, end, view.clock) if zoomed else (0.0, end)
        if window is None:  # not a zoom (e.g. autosize): keep what is drawn, or draw the whole run (the renderer
            if drawn:  # drops a request in flight when the placeholder's autosize changes an input meanwhile)
                return no_update, no_update, no_update, *choices
            window = (0.0, end)
        if window == (0.0, end):  # the whole run: drawn once per view (and by the warm-up at server start)
            figures = view.derived(("timeline", int(replication)), lambda: timeline(view, int(replication), window))
        else:
            figures = timeline(view, int(replication), window)
        return (*figures, *choices)


def timeline(view: Any, replication: int, window: tuple[float, float]) -> tuple[dict, dict, str]:
    """The Gantt and the batches' paths over ``window`` (hours), as figure dicts, and the note above them."""
    intervals = view.intervals(replication)
    segments = gantt_segments(intervals, window[0], window[1], BINS)
    shown = sum(len(r) for r, _, _ in segments.values())
    in_window = int(((intervals["end"] > window[0]) & (intervals["start"] < window[1])).sum())
    gantt = gantt_figure(segments, view.unit_labels(), window, view.clock)
    paths, total = batch_paths(view.table(replication), view.stations, window[0], window[1])
    products = [p.name for p in view.spec.products]
    clock = view.clock
    note = (
        f"{clock.text(window[0])} – {clock.text(window[1])}: {in_window:,} state intervals in "
        f"{window[1] - window[0]:,.0f} h shown as {shown:,} segments ({BINS} bins across)"
    )
    return gantt.to_dict(), paths_figure(paths, total, view.stations, products, window, clock).to_dict(), note


def _prefetch(view: Any) -> None:
    """The whole first replication's figures, as ``draw`` keeps them."""
    first = view.replications[0]
    window = (0.0, view.end(first))
    view.derived(("timeline", first), lambda: timeline(view, first, window))


PAGE = Page(path="/timeline", title="Timeline", layout=_layout, register=_register, order=20, prefetch=_prefetch)
