"""HTML to PDF with a headless Chromium (the browser prints the report as it shows it).

    >>> print_pdf(html_text, Path("report.pdf"))      # written whole or not at all

The browser is ``$TWIN_CHROMIUM``, else the first of ``chromium``, ``chromium-browser``,
``google-chrome`` on the PATH. It runs with a throw-away profile, no network use beyond the
local file, and a time limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from twin.errors import InputError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 120  # only a hung browser takes this long


def browser() -> str:
    """The Chromium to print with (``InputError`` saying how to get one when there is none)."""
    wanted = os.environ.get("TWIN_CHROMIUM")
    if wanted:
        if shutil.which(wanted):
            return str(shutil.which(wanted))
        raise InputError(f"TWIN_CHROMIUM={wanted}: no such program")
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise InputError("a PDF needs Chromium (apt-get install chromium, or set TWIN_CHROMIUM); "
                     "--out report.html writes the report as HTML without it")  # fmt: skip


def print_pdf(html_text: str, out: Path) -> Path:
    """Print ``html_text`` to ``out`` (a PDF, A4); the file appears only once complete."""
    exe = browser()
    with tempfile.TemporaryDirectory(prefix="twin-report-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        command = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", "--no-first-run",
            f"--user-data-dir={Path(tmp) / 'profile'}", f"--print-to-pdf={pdf}", page.as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise InputError(f"{exe} did not print the report in {TIMEOUT_S} s") from None
        if not pdf.is_file() or pdf.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise InputError(f"{exe} did not print the report (exit {done.returncode}: {last})")
        partial = out.with_name(f".{out.name}.partial")
        shutil.copyfile(pdf, partial)
        os.replace(partial, out)
    return out
