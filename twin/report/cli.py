"""``twin report``: a run's report as PDF or HTML, reproducible from what it prints.

$ twin report 3f9c2a71 --out report.pdf
$ twin report runs/base --compare 9d01 --compare 77ab --out report.html --what-ifs
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FORMATS = (".pdf", ".html", ".htm")


def report_command(
    run: Annotated[str, typer.Argument(help="A stored run (id or unique prefix) or a run folder (`twin run --out`).")],
    out: Annotated[Path, typer.Option("--out", help="The report to write: .pdf (printed by Chromium) or .html.")],
    compare: Annotated[
        list[str] | None, typer.Option("--compare", help="Another run to set beside it (repeatable).")
    ] = None,
    what_ifs: Annotated[
        bool, typer.Option("--what-ifs", help="Run the paired what-ifs that remove the bottleneck's top causes.")
    ] = False,
    store: Annotated[
        Path | None, typer.Option("--store", help="Run store folder (default: $TWIN_STORE, else ./twin-runs).")
    ] = None,
) -> None:
    """Write a run's report: KPIs with CIs, loss waterfall, bottleneck, Gantt excerpt, QC, spec, hash and seed."""
    from twin.errors import InputError
    from twin.report.document import ReportRun, report_html
    from twin.store.store import existing_store

    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"--out {out}: a report is .pdf or .html (got {suffix or 'no extension'!r})")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: no folder {out.parent}")
    runs_store = existing_store(store)
    main = ReportRun.load(run, runs_store)
    others = [ReportRun.load(ref, runs_store) for ref in compare or []]
    text = report_html(main, others, what_ifs=what_ifs)
    if suffix == ".pdf":
        from twin.report.pdf import print_pdf

        print_pdf(text, out)
    else:
        partial = out.with_name(f".{out.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    typer.echo(f"wrote {out} ({out.stat().st_size:,} bytes)")


def register(app: typer.Typer) -> None:
    """Add ``twin report`` to the CLI."""
    app.command("report")(report_command)
