"""Where optimization results go: one folder, written atomically (the run store can replace this later).

    >>> save_result(result, "out/buffers")   # best.yaml, optimization.json, run/ (the confirmed SimPy run)

``best.yaml`` is the best design as a plain spec (``twin run out/buffers/best.yaml`` runs it);
``run/`` is the SimPy confirmation as a run folder (``twin.runfolder``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from twin.errors import InputError
from twin.runfolder import write_run

if TYPE_CHECKING:
    from optimizers.api import OptimizeResult

BEST_SPEC, RESULT_FILE, RUN_FOLDER = "best.yaml", "optimization.json", "run"


def check_target(target: str | Path) -> Path:
    """Fail early (before a search) when ``target`` exists."""
    target = Path(target)
    if target.exists():
        raise InputError(f"{target}: already exists; choose another --out or remove it")
    return target


def save_result(result: OptimizeResult, target: str | Path) -> Path:
    """Write the result folder at ``target`` (which must not exist) in one rename."""
    target = check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        spec_text = yaml.safe_dump(result.best_spec.to_data(), sort_keys=False)
        (tmp / BEST_SPEC).write_text(spec_text, encoding="utf-8")
        (tmp / RESULT_FILE).write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
        write_run(result.best.result, tmp / RUN_FOLDER)
        try:
            os.rename(tmp, target)
        except OSError:
            raise InputError(f"{target}: appeared while the result was written; nothing was replaced") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
