"""Warm a freshly started dashboard in a background thread: the newest runs read, first calls made.

    >>> thread = start(app, ctx)        # returns at once; the server starts meanwhile
    >>> thread.join()                   # tests only: wait until it is done

Between its steps the thread waits while the server answers requests, and for ``QUIET_S`` after
the last one while the browser draws it (``InFlight``): the page a person opened first is answered
and drawn first, what it asks for that the thread has not made yet it makes itself, and the thread
goes on while the person reads.

A fresh server would otherwise pay, on its first page, for reading the run and for the first use of
every library on the way (pyarrow's dataset reader, plotly's figure classes, the store's catalog).
The thread reads the head of the ``RUNS`` newest runs (spec, KPIs, replications and their ends), then
calls each page's ``prefetch`` (``dashboards.pages``) for each of them in the nav bar's order: what the
page draws first, computed and kept in the run's view as its callbacks keep it (each part under its
view's lock: a request for a part being made waits for it, never makes it twice). Then it makes each
page's layout once and asks the app for its index, layout and callbacks. It does nothing when the
store is empty, and a failure only reaches the server log: the pages then read what they need
themselves, as without it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

log = logging.getLogger("twin.dashboard")

RUNS = 2  # the newest runs read at start (the run cache keeps 4): one and what it is most likely compared with


YIELD_S = 5.0  # the longest a step waits for the server to be quiet
QUIET_S = 0.5  # ... quiet: no request in flight, none ended this long ago (the browser draws what it got)


class InFlight:
    """Requests the server is answering now: the warm-up gives way to them, and to the browser drawing
    their answers (a 2-core machine draws the page a person waits for first)."""

    def __init__(self) -> None:
        self._count = 0
        self._last = -math.inf  # when the last request ended (monotonic seconds)
        self._idle = threading.Condition()

    def install(self, server: Any) -> None:
        """Count every request ``server`` (a Flask app) answers, refused ones included."""
        inner = server.wsgi_app

        def counted(environ: dict, start_response: Any) -> Any:
            with self._idle:
                self._count += 1
            try:
                return inner(environ, start_response)
            finally:
                with self._idle:
                    self._count -= 1
                    self._last = time.monotonic()
                    self._idle.notify_all()

        server.wsgi_app = counted

    def wait_idle(self, timeout: float = YIELD_S, quiet: float = QUIET_S) -> bool:
        """Wait until no request is being answered and none ended in the last ``quiet`` seconds (at most
        ``timeout`` seconds); whether it is so."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while True:
                now = time.monotonic()
                if not self._count and now - self._last >= quiet:
                    return True
                if now >= deadline:
                    return False
                left = deadline - now
                self._idle.wait(left if self._count else min(left, quiet - (now - self._last)))


def start(app: Any, ctx: Any, runs: int = RUNS) -> threading.Thread:
    """Start the warm-up thread (a daemon: it never delays the server's exit); between its steps it waits
    for the requests in flight."""
    busy = InFlight()
    busy.install(app.server)
    thread = threading.Thread(target=warm, args=(app, ctx, runs, busy), name="twin-dashboard-warm", daemon=True)
    thread.start()
    return thread


def warm(app: Any, ctx: Any, runs: int = RUNS, busy: InFlight | None = None) -> dict[str, float]:
    """Read the newest runs' first parts and make the first calls (see the module docstring); returns the
    seconds each step took (the server log has them too). With ``busy``, each step waits for the requests
    in flight first."""
    took: dict[str, float] = {}

    def step(name: str, work: Any) -> Any:
        if busy is not None:
            busy.wait_idle()
        started = time.perf_counter()
        try:
            return work()
        except Exception:  # never fatal: the page reads it itself, and says what went wrong
            log.warning("warm-up step %s failed", name, exc_info=True)
            return None
        finally:
            took[name] = time.perf_counter() - started

    ids = step("catalog", lambda: list(ctx.cache.catalog()["run_id"])[:runs]) or []
    views = [v for v in (step(f"view {i}", lambda i=i: ctx.cache.view(i)) for i in ids) if v is not None]
    for view in views:  # what every page asks first: the run's spec, clock and replications, and their ends
        step(f"{view.run_id[:8]} head", lambda view=view: first_parts(view))
    pages = [page for page in load_pages(app) if page.prefetch is not None]
    for page in pages:  # in the nav bar's order, each page for each run (``Page.prefetch``)
        for view in views:
            step(f"{view.run_id[:8]} {page.title}", lambda page=page, view=view: page.prefetch(view))
    if views:
        step("json", lambda: serialize(views[0]))
    step("layouts", lambda: page_layouts(app, ctx))  # last: its own requests count as the server's
    log.info("warm-up: %s", ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))
    return took


def first_parts(view: Any) -> tuple:
    return (view.info, view.summary, view.spec_data, view.spec, view.clock, view.per_replication,
            view.end_times(), view.replications)  # fmt: skip


def load_pages(app: Any) -> list[Any]:
    """The app's pages (``create_app`` keeps them), else every registered page."""
    from dashboards.pages import load_pages as registered

    return app.server.extensions.get("twin-pages") or registered()


def serialize(view: Any) -> None:
    """One figure turned into a response's JSON (plotly's encoder loaded)."""
    import plotly.io as pio

    from dashboards.figures import gantt_figure
    from dashboards.series import gantt_segments

    first = view.replications[0]
    end = view.end(first)
    segments = gantt_segments(view.intervals(first), 0.0, end, 100)
    pio.to_json(gantt_figure(segments, view.unit_labels(), (0, end), view.clock))


def page_layouts(app: Any, ctx: Any) -> None:
    """Each page's layout once, and the app's own first requests where no login is asked."""
    for page in load_pages(app):
        page.layout(ctx, {})
    client = app.server.test_client()
    for path in ("/", "/_dash-layout", "/_dash-dependencies"):
        if client.get(path).status_code == 401:  # users: the test client has no credentials (nor counts as a try)
            break
