"""The page registry: one module per page, one line in ``PAGE_MODULES`` registers it.

The page contract. A page module defines ``PAGE = Page(...)``:

- ``path`` (``"/losses"``), ``title`` (nav bar label) and ``order`` (position in the nav bar);
- ``layout(ctx, query) -> component``: the page's components, built on each visit (``ctx`` is the
  app's ``Context``: run store, run cache, background-job manager; ``query`` the URL's query
  parameters, e.g. ``{"run": "3f2a"}``). Give every component id a page prefix (``losses-...``);
- ``register(app, ctx) -> None``: adds the page's callbacks with ``app.callback`` (never the global
  ``dash.callback``). Callbacks read the selected run from ``Input(RUN_PICKER, "value")`` and must
  also take an input of their own page, so that they fire only while the page is shown;
- ``needs_run`` (default True): the page shows a friendly "pick a run" card when the store is empty;
- ``prefetch(view) -> None`` (optional): reads and computes, into the ``RunView`` (``view.derived``),
  what the page draws first for a run, exactly as its callbacks do; the warm-up at server start
  (``dashboards.warm``) calls it for the newest runs, so that a fresh server's first page is warm.

Errors raised in callbacks become a friendly alert (``layout.alert``), never a traceback. Heavy
imports (jax, pxr) go inside the callbacks that need them.

    PAGE_MODULES = (..., "dashboards.pages.live")     # one line adds the "Live" page
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

PAGE_MODULES: tuple[str, ...] = (
    "dashboards.pages.overview",
    "dashboards.pages.timeline",
    "dashboards.pages.losses",
    "dashboards.pages.whatif",
    "dashboards.pages.compare",
    "dashboards.pages.batches",
    "dashboards.pages.optimize",
    "dashboards.pages.live",
    "dashboards.pages.forecast",
    "dashboards.pages.downloads",
)


@dataclass(frozen=True)
class Page:
    """A page of the dashboard (see the module docstring)."""

    path: str
    title: str
    layout: Callable[[Any, dict[str, str]], Any]
    register: Callable[[Any, Any], None]
    order: int = 100
    needs_run: bool = True
    prefetch: Callable[[Any], None] | None = None


def load_pages(modules: tuple[str, ...] = PAGE_MODULES) -> list[Page]:
    """The registered pages, in nav-bar order."""
    pages = [import_module(name).PAGE for name in modules]
    return sorted(pages, key=lambda p: p.order)
