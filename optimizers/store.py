"""Where optimization results go: a result folder written atomically, and the run store.

    >>> save_result(result, "out/buffers")   # best.yaml, optimization.json, run/ (the confirmed SimPy run)
    >>> store_best(result, RunStore("twin-runs"))   # the confirmed best design as a stored run

``best.yaml`` is the best design as a plain spec (``twin run out/buffers/best.yaml`` runs it);
``run/`` is the SimPy confirmation as a run folder (``twin.runfolder``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from twin.runfolder import atomic_folder, check_new, write_run

if TYPE_CHECKING:
    from optimizers.api import OptimizeResult
    from twin.store import RunStore

BEST_SPEC, RESULT_FILE, RUN_FOLDER = "best.yaml", "optimization.json", "run"


def check_target(target: str | Path) -> Path:
    """Fail early (before a search) when ``target`` exists."""
    return check_new(target)


def save_result(result: OptimizeResult, target: str | Path) -> Path:
    """Write the result folder at ``target`` (which must not exist) in one rename."""
    with atomic_folder(target) as tmp:
        spec_text = yaml.safe_dump(result.best_spec.to_data(), sort_keys=False)
        (tmp / BEST_SPEC).write_text(spec_text, encoding="utf-8")
        (tmp / RESULT_FILE).write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
        write_run(result.best.result, tmp / RUN_FOLDER)
    return Path(target)


def store_best(result: OptimizeResult, store: RunStore) -> str:
    """Save the best design's SimPy confirmation in the run store (tagged as the optimizer's); its run id.

    >>> run_id = store_best(result, RunStore("twin-runs"))     # then `twin runs show RUN_ID`, or the dashboard
    """
    tags = {
        "source": "optimizer",
        "method": result.method,
        "objectives": ",".join(result.problem.objectives),
        "evaluations": result.evaluations,
        "exact": not result.approximations,
    }
    return store.save(result.best.result, tags=tags)
