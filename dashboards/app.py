"""The app factory: a Dash app over one run store, with every registered page.

    >>> app = create_app("twin-runs")                       # binds nothing yet
    >>> app = create_app("twin-runs", users={"ana": hash})  # HTTP basic auth on every request
    >>> app.run(host="127.0.0.1", port=8050)

Each app owns its run cache and its background-job manager (a diskcache folder of its own), so
two apps in one process share nothing. ``app.server.extensions["twin"]`` is its ``Context``, and
``app.server.extensions["twin-warm"]`` the warm-up thread where ``warm=True`` started one.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import dash
from dash import Input, Output, State, html, set_props

from dashboards import layout
from dashboards.data import RunCache
from dashboards.formatting import run_label
from dashboards.historians import HistorianAccess
from dashboards.pages import PAGE_MODULES, Page, load_pages
from twin.errors import TwinError
from twin.store import RunStore

log = logging.getLogger("twin.dashboard")
ASSETS = Path(__file__).parent / "assets"
# plotly.js for the pages' graphs: served from the assets, loaded by ``assets/plotly-loader.js``, not as a script of
# the page (which would hold up everything after it)
PLOTLY_BUNDLE = "plotly-cartesian.min.js"
MAX_REQUEST_BODY = 4 * 1024 * 1024  # bytes; a callback's request is a few KB, a big what-if form some 100 KB


@dataclass(frozen=True)
class Context:
    """What pages get: the run store, the app's run cache, and the manager of background jobs."""

    store: RunStore
    cache: RunCache
    jobs: dash.DiskcacheManager
    work_dir: Path  # the app's scratch folder (downloads built on demand, job state)
    historians: HistorianAccess = field(default_factory=HistorianAccess)  # what the Live and forecast pages may open


def create_app(
    store_dir: str | Path,
    users: Mapping[str, str] | None = None,
    work_dir: str | Path | None = None,
    pages: tuple[str, ...] = PAGE_MODULES,
    historians: Sequence[str | Path] = (),
    historian_dir: str | Path | None = None,
    warm: bool = False,
) -> dash.Dash:
    """A Dash app over the run store at ``store_dir`` (created if missing).

    ``users`` maps user names to password hashes (``dashboards.auth``); when given, every request
    needs HTTP basic authentication. The pages open only the plant historians in ``historians`` and
    under ``historian_dir``. A request body over ``MAX_REQUEST_BODY`` is refused (413). ``warm`` starts a
    thread that reads the newest runs and makes the first calls meanwhile (``dashboards.warm``).
    """
    import diskcache

    store = RunStore(store_dir)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="twin-dashboard-"))
    work.mkdir(parents=True, exist_ok=True)
    jobs = dash.DiskcacheManager(diskcache.Cache(str(work / "jobs")))
    access = HistorianAccess(tuple(Path(h) for h in historians), Path(historian_dir) if historian_dir else None)
    ctx = Context(store, RunCache(store), jobs, work, access)
    registered = load_pages(pages)

    app = dash.Dash(
        "twin-dashboard",
        title="twin · line dashboard",
        assets_folder=str(ASSETS),
        assets_ignore=re.escape(PLOTLY_BUNDLE),
        suppress_callback_exceptions=True,
        background_callback_manager=jobs,
        on_error=_show_error,
        update_title=None,
    )
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BODY  # any WSGI server; waitress refuses earlier
    # a function: each page load gets the store's runs as the picker's options, so that a run the picker kept from
    # earlier in the session (persistence) is among them and the dropdown never clears it as unknown
    app.layout = lambda: layout.shell(registered, str(store.root), run_options(ctx))
    if users:
        from dashboards.auth import require_auth

        require_auth(app.server, users)
    _register_router(app, ctx, registered)
    _register_picker(app, ctx)
    for page in registered:
        page.register(app, ctx)
    app.server.extensions["twin"] = ctx
    app.server.extensions["twin-pages"] = registered
    if warm:
        from dashboards import warm as warmup

        app.server.extensions["twin-warm"] = warmup.start(app, ctx)
    return app


def _show_error(err: Exception) -> None:
    """Any error in a callback: a friendly alert at the top of the page, the details in the server log."""
    if isinstance(err, TwinError):
        message = str(err).splitlines()[0]
    else:
        log.exception("dashboard callback failed", exc_info=err)
        first = (str(err).splitlines() or [""])[0][:200]  # a background job's error carries its traceback after
        message = f"Something went wrong ({err.__class__.__name__}: {first}). Details are in the server log."
    set_props("app-error", {"children": layout.alert(message, title="Could not update the page.")})


def _register_router(app: dash.Dash, ctx: Context, pages: list[Page]) -> None:
    by_path = {p.path: p for p in pages}

    @app.callback(
        Output(layout.PAGE_CONTAINER, "children"),
        Input(layout.URL, "pathname"),
        State(layout.URL, "search"),
    )
    def route(pathname: str | None, search: str | None) -> object:
        page = by_path.get(pathname or "/") or (pages[0] if (pathname or "/") == "/" else None)
        if page is None:
            return layout.page("Page not found", layout.alert(f"There is no page {pathname!r}.", kind="warning"))
        if page.needs_run and not ctx.store.run_ids():
            return layout.page(page.title, _no_runs(ctx))
        query = dict(parse_qsl((search or "").lstrip("?")))
        return html.Div([html.Div(id="app-error"), page.layout(ctx, query)])


def _no_runs(ctx: Context) -> html.Div:
    return layout.alert(
        f"The run store {ctx.store.root} holds no runs yet. Run a what-if from the What-if page, or store a run "
        f"with `twin sweep osd-tablet --store {ctx.store.root}`.",
        kind="info",
        title="No runs yet.",
    )


def run_options(ctx: Context) -> list[dict[str, str]]:
    """The run picker's options: the store's runs, newest first."""
    return [{"label": run_label(r), "value": r["run_id"]} for r in ctx.cache.catalog().to_dict("records")]


def _register_picker(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output(layout.RUN_PICKER, "options"),
        Output(layout.RUN_PICKER, "value"),
        Input(layout.URL, "pathname"),
        Input(layout.URL, "search"),
        Input(layout.RUNS_VERSION, "data"),
        State(layout.RUN_PICKER, "value"),
    )
    def refresh(_path: str | None, search: str | None, new_run: str | None, current: str | None) -> tuple:
        """The runs of the store, newest first; ``?run=ID`` (or a prefix) in the address selects one."""
        options = run_options(ctx)
        ids = [o["value"] for o in options]
        if dash.ctx.triggered_id == layout.RUNS_VERSION and new_run in ids:
            return options, new_run
        wanted = dict(parse_qsl((search or "").lstrip("?"))).get("run")
        chosen = [i for i in ids if wanted and i.startswith(wanted)]
        if len(chosen) == 1 and dash.ctx.triggered_id in (None, layout.URL):
            return options, chosen[0]
        return options, current if current in ids else (ids[0] if ids else None)
