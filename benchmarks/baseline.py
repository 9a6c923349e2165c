"""An older revision of the project in a folder of its own, and code run against it in a fresh process.

    >>> with revision_tree("HEAD~3") as old:
    ...     out = run_in(old, "import twin, sys; print(twin.__file__)")

Benchmarks that print before/after figures in one run use it: alternating rounds of the same code in
the old tree and in this one, each in a fresh process, so that both see the same machine load (the
code times itself and prints its figures).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def revision_tree(revision: str) -> Iterator[Path]:
    """The files of git ``revision`` (``git archive``), removed afterwards."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield Path(folder)


def run_in(tree: Path, code: str, *args: str) -> str:
    """Run ``code`` (``python -c``) with ``tree`` first on the import path; its standard output."""
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env,
                          cwd=tree).stdout  # fmt: skip
