"""The shared frame of every page: nav bar, run picker, cards, alerts and the state legend.

>>> shell(pages)                                  # the app's layout: nav, picker, page container
>>> card("Throughput", body, help="batches leaving the line")
>>> kpi_card("kpi-oee", "OEE", "36.1%", "95% CI 35.8% – 36.4%")
>>> alert("Run not found", kind="warning")
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from dash import dcc, html

from twin.palette import state_hex

RUN_PICKER = "run-picker"
RUNS_VERSION = "runs-version"  # a store pages write (e.g. a new run id) to refresh the picker
URL = "url"
PAGE_CONTAINER = "page-container"
WHATIF_PREFILL = "whatif-prefill"  # session store: field path -> value, for "open as what-if"

DRAWS_GRAPHS = "draws-graphs"  # the class of every graph, and of a marker where a page's graphs come from a callback:
# ``assets/plotly-loader.js`` runs plotly.js as soon as a page holding one is in (pages without graphs never run it)
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


def shell(pages: list[Any], store_label: str, runs: list[dict[str, str]] | None = None) -> html.Div:
    """The app's layout: the page content is filled in by the router callback; ``runs``: the run picker's options."""
    links = [
        dcc.Link(p.title, href=p.path, className="nav-link", id=f"nav-{p.path.strip('/') or 'home'}") for p in pages
    ]
    return html.Div(
        [
            dcc.Location(id=URL),
            dcc.Store(id=RUNS_VERSION),
            dcc.Store(id=WHATIF_PREFILL, storage_type="session"),
            html.Header(
                [
                    html.Div(
                        [html.Span("twin", className="brand-name"), html.Span("line dashboard")], className="brand"
                    ),
                    html.Nav(links, className="nav"),
                    html.Div(
                        [
                            dcc.Dropdown(
                                id=RUN_PICKER,
                                options=runs or [],
                                placeholder="pick a run…",
                                clearable=False,
                                persistence=True,
                                persistence_type="session",
                                className="run-picker",
                            ),
                            html.Span(store_label, className="store-label", title="run store"),
                        ],
                        className="picker",
                    ),
                ],
                className="topbar",
            ),
            html.Main(id=PAGE_CONTAINER, className="page"),
        ]
    )


def page(title: str, *children: Any, subtitle: str | None = None) -> html.Div:
    head = [html.H1(title)] + ([html.P(subtitle, className="subtitle")] if subtitle else [])
    return html.Div([html.Div(head, className="page-head"), *children])


def card(title: str, *children: Any, help: str | None = None, className: str = "", **kwargs: Any) -> html.Section:
    head = [html.H2(title)] + ([html.Span(help, className="card-help")] if help else [])
    return html.Section([html.Div(head, className="card-head"), *children], className=f"card {className}", **kwargs)


def kpi_card(card_id: str, label: str, value: str, detail: str, unit: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(label, className="kpi-label"),
            html.Div(
                [html.Span(value, className="kpi-value", id=f"{card_id}-value"), html.Span(unit, className="kpi-unit")]
            ),
            html.Div(detail, className="kpi-detail", id=f"{card_id}-ci"),
        ],
        className="kpi",
        id=card_id,
    )


def alert(message: str, kind: str = "danger", title: str | None = None, **kwargs: Any) -> html.Div:
    """A friendly message box (kind: danger, warning, success, info)."""
    body = [html.Strong(title + " "), message] if title else [message]
    return html.Div(body, className=f"alert alert-{kind}", role="alert", **kwargs)


def state_legend(states: list[str]) -> html.Div:
    return html.Div(
        [
            html.Span([html.I(style={"background": state_hex(s)}), s.replace("_", " ")], className="legend-item")
            for s in states
        ],
        className="legend",
    )


def graph(
    graph_id: str, height: int | None = None, placeholder: str = "Pick a run in the bar above.", **kwargs: Any
) -> dcc.Graph:
    """A plotly graph that, until a callback draws it, says what to do (``placeholder``) instead of blank axes."""
    style = {"height": f"{height}px"} if height else {}
    kwargs.setdefault("figure", empty_figure(placeholder, height or 300))
    return dcc.Graph(id=graph_id, config=GRAPH_CONFIG, style=style, className=DRAWS_GRAPHS, **kwargs)


def graphs_soon() -> html.Div:
    """A marker for a page whose graphs come with a callback's answer: plotly.js is run meanwhile."""
    return html.Div(className=DRAWS_GRAPHS, hidden=True)


def loading(*children: Any, **kwargs: Any) -> dcc.Loading:
    return dcc.Loading(list(children), type="dot", color="#2e7d32", delay_show=300, **kwargs)


def figure_style(fig: Any, height: int | None = None, **layout: Any) -> Any:
    """The common look of the dashboard's plotly figures."""
    base = {
        "template": "plotly_white",
        "font": {"family": FONT, "size": 12, "color": "#243040"},
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "legend": {"orientation": "h", "y": -0.15},
        "hoverlabel": {"font": {"family": FONT}},
    }
    if height:
        base["height"] = height
    fig.update_layout(**{**base, **layout})
    return fig


def replication_options(replications: list[int]) -> tuple[list[dict[str, Any]], int | None]:
    """Options of a replication dropdown, and its first value."""
    return [{"label": f"#{r}", "value": r} for r in replications], (replications[0] if replications else None)


def empty_figure(message: str, height: int = 300) -> dict[str, Any]:
    """A chart with nothing to draw yet: no axes, one line saying what to do (never blank axes); a figure dict,
    made once per message and height (every page's layout has a few)."""
    return copy.deepcopy(_empty_figure(message, height))


@lru_cache(maxsize=256)
def _empty_figure(message: str, height: int) -> dict[str, Any]:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 13, "color": "#5b6b7b"}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    figure_style(fig, height=height, meta={"placeholder": message})
    return fig.to_dict()


def count_axis(fig: Any, top: float, axis: str = "yaxis", **kwargs: Any) -> None:
    """An axis (``yaxis``, ``yaxis2``, ``xaxis``) of counts: whole-number ticks from 0, about eight at most."""
    step = max(1, int(-(-max(top, 1) // 8)))
    ticks = {"tickmode": "linear", "tick0": 0, "dtick": step, "tickformat": "d", "rangemode": "tozero"}
    fig.update_layout({axis: {**ticks, **kwargs}})


def percent_axis(fig: Any, axis: str = "yaxis", **kwargs: Any) -> None:
    """An axis of percentages: 0 to 100 (never past it), ticks every 20, with a % sign."""
    ticks = {"range": [0, 100], "tickmode": "linear", "tick0": 0, "dtick": 20, "ticksuffix": "%"}
    fig.update_layout({axis: {**ticks, **kwargs}})
