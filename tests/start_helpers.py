"""Which modules a real ``twin`` process imports: the console script run to its end, ``sys.modules`` read at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

TWIN = Path(sys.executable).parent / "twin"

# runs the console script as `twin ARGS` would, and writes every imported module's name when the process exits
_WRAPPER = (
    "import atexit, runpy, sys\n"
    "out, sys.argv = sys.argv[1], sys.argv[2:]\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def imported_modules(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Every module that ``twin ARGS`` imported in its real process, and the finished process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "modules.txt"
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, out, str(TWIN), *args], capture_output=True, text=True,
            timeout=timeout, cwd=cwd, env={**os.environ, "COLUMNS": "200", **(env or {})},
        )  # fmt: skip
        modules = set(out.read_text().splitlines()) if out.exists() else set()
    return modules, done
