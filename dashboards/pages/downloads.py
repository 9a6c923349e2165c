"""Downloads: the selected run's event log (CSV, Parquet), KPIs (JSON) and its USD scene.

Files are served by plain HTTP routes (``/download/<run_id>/<kind>``), streamed from disk rather
than pushed through callbacks, so a million-row log downloads like any file. The USD scene is a
zip of the ``.usdc`` stage and its equipment assets (``twin_assets/``), built once per run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

from dash import Input, Output, html
from flask import abort, send_file

from dashboards import layout
from dashboards.formatting import number
from dashboards.pages import Page
from twin.errors import TwinError
from twin.runfolder import EVENTS_FILE, KPIS_FILE
from twin.store import StoreError

KINDS = {  # kind: (label, file name pattern, what it is)
    "events.csv": ("Event log (CSV)", "{line}-{id}-events.csv", "one row per event; opens in a spreadsheet"),
    "events.parquet": ("Event log (Parquet)", "{line}-{id}-events.parquet", "with the run's metadata; pandas, DuckDB"),
    "kpis.json": ("KPIs (JSON)", "{line}-{id}-kpis.json", "the summary `twin run --json` prints"),
    "scene.zip": ("USD scene (.usdc + assets, zip)", "{line}-{id}-usd.zip", "for Omniverse or any USD viewer"),
}


def _layout(ctx: Any, query: dict[str, str]) -> html.Div:
    return layout.page(
        "Downloads",
        layout.loading(html.Div(id="downloads-body")),
        subtitle="The selected run's files, for spreadsheets, notebooks and 3D viewers.",
    )


def build_file(ctx: Any, run_id: str, kind: str, lock: threading.Lock) -> Path:
    """The file of ``kind`` for a run, built on first request into the app's work folder."""
    folder = ctx.store.path(run_id)
    if kind == "events.parquet":
        return folder / EVENTS_FILE
    if kind == "kpis.json":
        return folder / KPIS_FILE
    target = ctx.work_dir / "downloads" / run_id / kind
    with lock:
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent))
        try:
            if kind == "events.csv":
                ctx.cache.view(run_id).log.table.to_csv(tmp / kind, index=False)
            else:
                from connectors.usd.export import export_scene, load_source

                scene = tmp / "scene" / "line.usdc"
                scene.parent.mkdir()
                export_scene([load_source(folder)], scene)
                with zipfile.ZipFile(tmp / kind, "w", zipfile.ZIP_DEFLATED) as zf:
                    for path in sorted(scene.parent.rglob("*")):
                        if path.is_file():
                            zf.write(path, path.relative_to(scene.parent).as_posix())
            (tmp / kind).rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _register(app: Any, ctx: Any) -> None:
    lock = threading.Lock()

    @app.server.route("/download/<run_id>/<kind>")
    def download(run_id: str, kind: str) -> Any:
        if kind not in KINDS:
            abort(404)
        try:
            resolved = ctx.store.resolve(run_id)
            path = build_file(ctx, resolved, kind, lock)
            line = json.loads((ctx.store.path(resolved) / "run.json").read_text(encoding="utf-8")).get("line", "run")
        except StoreError:
            abort(404)
        except TwinError as err:
            return (f"Cannot build {kind}: {err}\n", 422, {"Content-Type": "text/plain; charset=utf-8"})
        name = KINDS[kind][1].format(line=line, id=resolved[:8])
        return send_file(path, as_attachment=True, download_name=name)

    @app.callback(
        Output("downloads-body", "children"), Input(layout.RUN_PICKER, "value"), Input("downloads-body", "id")
    )
    def show(run_id: str | None, _: str) -> Any:
        if not run_id:
            return layout.alert("Pick a run in the bar above.", kind="info")
        view = ctx.cache.view(run_id)
        rows = view.per_replication
        items = []
        for kind, (label, _, what) in KINDS.items():
            items.append(
                html.Tr(
                    [
                        html.Td(
                            html.A(
                                label,
                                href=f"/download/{view.run_id}/{kind}",
                                className="button",
                                id=f"download-{kind.replace('.', '-')}",
                                download="",
                            )
                        ),
                        html.Td(what, className="muted"),
                    ]
                )
            )
        events = number(float(view.rows), 0)
        facts = (
            f"Run {view.run_id} · {view.info.get('line')} · scenario {view.info.get('scenario')} · "
            f"{len(rows)} replications · {events} events"
        )
        return layout.card(
            "Files",
            html.P(facts, className="muted"),
            html.Table(items, className="downloads"),
            help="the USD scene takes a few seconds to build the first time",
        )


PAGE = Page(path="/downloads", title="Downloads", layout=_layout, register=_register, order=90)
