"""The report buttons of Overview and Compare: the same document as `twin report`, as PDF or HTML.

    >>> report_buttons("overview")                       # two buttons and a download
    >>> register_report(app, ctx, "overview", State(RUN_PICKER, "value"))
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dash import Input, Output, State, dcc, html, no_update


def report_buttons(prefix: str) -> html.Div:
    """``Report (PDF)`` and ``Report (HTML)`` buttons and their download."""
    return html.Div(
        [
            html.Button("Report (PDF)", id=f"{prefix}-report-pdf", className="button"),
            html.Button("Report (HTML)", id=f"{prefix}-report-html", className="button"),
            dcc.Loading(dcc.Download(id=f"{prefix}-report"), type="dot", color="#2e7d32"),
        ],
        className="controls report-buttons",
    )


def build_report(ctx: Any, run_ids: list[str], as_pdf: bool) -> dict[str, Any]:
    """The report of ``run_ids[0]`` beside ``run_ids[1:]``, as a ``dcc.Download`` payload."""
    from twin.report.document import ReportRun, report_html

    runs = [ReportRun.load(r, ctx.store) for r in run_ids]
    text = report_html(runs[0], runs[1:])
    name = f"report-{runs[0].result.spec.name}-{ctx.store.resolve(run_ids[0])[:8]}"
    if not as_pdf:
        return dcc.send_string(text, f"{name}.html")
    from twin.report.pdf import print_pdf

    with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
        out = print_pdf(text, Path(tmp) / f"{name}.pdf")
        return dcc.send_bytes(out.read_bytes(), out.name)


def register_report(app: Any, ctx: Any, prefix: str, runs: State) -> None:
    """Wire the buttons: ``runs`` is the State holding a run id or a list of them (the first is reported on)."""

    @app.callback(
        Output(f"{prefix}-report", "data"),
        Input(f"{prefix}-report-pdf", "n_clicks"),
        Input(f"{prefix}-report-html", "n_clicks"),
        runs,
        prevent_initial_call=True,
    )
    def download(_pdf: int | None, _html: int | None, chosen: Any) -> Any:
        from dash import ctx as callback_ctx

        ids = [chosen] if isinstance(chosen, str) else list(chosen or [])
        if not ids:
            return no_update
        return build_report(ctx, ids, as_pdf=callback_ctx.triggered_id == f"{prefix}-report-pdf")
