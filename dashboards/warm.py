"""Warm a freshly started dashboard in a background thread: the newest runs read, first calls made.

    >>> thread = start(app, ctx)        # returns at once; the server starts meanwhile
    >>> thread.join()                   # tests only: wait until it is done

A fresh server would otherwise pay, on its first page, for reading the run and for the first use of
every library on the way (pyarrow's dataset reader, plotly's figure classes, the store's catalog).
The thread reads the parts of the ``RUNS`` newest runs that the pages draw first, in the order they
are asked for (each part under its view's lock: a request for a part being read waits for it, never
reads it twice), draws the figures of the whole first replication that Timeline and Compare show
first (kept in the view, as the pages keep them), makes each page's layout once and asks the app for
its index, layout and callbacks. It does nothing when the store is empty, and a failure only reaches
the server log: the pages then read what they need themselves, as without it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("twin.dashboard")

RUNS = 2  # the newest runs read at start (the run cache keeps 4): one and what it is most likely compared with


def start(app: Any, ctx: Any, runs: int = RUNS) -> threading.Thread:
    """Start the warm-up thread (a daemon: it never delays the server's exit)."""
    thread = threading.Thread(target=warm, args=(app, ctx, runs), name="twin-dashboard-warm", daemon=True)
    thread.start()
    return thread


def warm(app: Any, ctx: Any, runs: int = RUNS) -> dict[str, float]:
    """Read the newest runs' first parts and make the first calls (see the module docstring); returns the
    seconds each step took (the server log has them too)."""
    took: dict[str, float] = {}

    def step(name: str, work: Any) -> Any:
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
    for view in views:  # Overview, Timeline, Compare, Batches: the first replication's rows and state intervals
        step(f"{view.run_id[:8]} replication", lambda view=view: replication_parts(view))
    for view in views:  # Timeline's and Compare's figures of the first replication
        step(f"{view.run_id[:8]} figures", lambda view=view: first_figures(view))
    step("layouts", lambda: page_layouts(app, ctx))
    for view in views:  # Losses: every replication's state intervals and the start rows
        step(f"{view.run_id[:8]} losses", lambda view=view: all_parts(view))
    log.info("warm-up: %s", ", ".join(f"{k} {v:.2f} s" for k, v in took.items()))
    return took


def first_parts(view: Any) -> tuple:
    return (view.info, view.summary, view.spec_data, view.spec, view.clock, view.per_replication,
            view.end_times(), view.replications)  # fmt: skip


def replication_parts(view: Any) -> None:
    first = view.replications[0]
    view.table(first)
    view.intervals(first)


def all_parts(view: Any) -> None:
    view.all_intervals()
    view.events("start", ("replication", "station", "unit", "time", "product"))


def first_figures(view: Any) -> None:
    """The figures of the first replication that Timeline and Compare draw first (kept in the view), and one
    serialized as a callback's response is."""
    import plotly.io as pio

    from dashboards.pages.compare import full_timeline
    from dashboards.pages.timeline import timeline

    first = view.replications[0]
    window = (0.0, view.end(first))
    drawn = view.derived(("timeline", first), lambda: timeline(view, first, window))
    full_timeline(view)
    pio.to_json(drawn[0])


def page_layouts(app: Any, ctx: Any) -> None:
    """Each page's layout once, and the app's own first requests where no login is asked."""
    from dashboards.pages import load_pages

    for page in load_pages():
        page.layout(ctx, {})
    client = app.server.test_client()
    for path in ("/", "/_dash-layout", "/_dash-dependencies"):
        if client.get(path).status_code == 401:  # users: the test client has no credentials (nor counts as a try)
            break
