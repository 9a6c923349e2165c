"""Run folders: the resolved spec, the event log and the KPIs of one run, written atomically.

    >>> path = write_run(result, "out/baseline")
    >>> result = read_run("out/baseline")

The folder is written under a temporary name beside the target and renamed in one step, so an
interrupted run never leaves half a run at the target.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from twin import __version__
from twin.errors import InputError
from twin.eventlog import EventLog, genealogy
from twin.experiment import RunResult
from twin.files import atomic_path
from twin.kpis.report import compute_kpis
from twin.spec.loader import spec_from_data

SPEC_FILE, EVENTS_FILE, KPIS_FILE, REPLICATIONS_FILE, RUN_FILE, GENEALOGY_FILE = (
    "spec.yaml", "events.parquet", "kpis.json", "kpis_by_replication.parquet", "run.json", "genealogy.parquet",
)  # fmt: skip


def check_new(target: str | Path, option: str = "--out") -> Path:
    """``target`` as a path; ``InputError`` naming ``option`` when it exists already or cannot be a folder."""
    target = Path(target)
    if target.exists():
        raise InputError(f"{target}: already exists; choose another {option} or remove it")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{target}: {parent} is a file, not a folder; choose another {option}")
            break
    return target


@contextmanager
def atomic_folder(target: str | Path, option: str = "--out") -> Iterator[Path]:
    """A folder to fill that appears at ``target`` (which must not exist) in one rename, or not at all.

    >>> with atomic_folder("out/result") as tmp:
    ...     (tmp / "a.json").write_text("{}")

    Files and folders get the umask's modes; what a killed writer left beside ``target`` is removed first.
    """
    target = check_new(target, option)
    try:
        with atomic_path(target, folder=True) as tmp:
            yield tmp
    except OSError as err:
        if err.filename2 is not None and Path(err.filename2) == target:  # the rename found a folder there
            raise InputError(f"{target}: appeared while it was written; nothing was replaced") from None
        raise


def write_run(result: RunResult, target: str | Path) -> Path:
    """Write ``result`` as a run folder at ``target`` (which must not exist yet)."""
    with atomic_folder(target) as tmp:
        (tmp / SPEC_FILE).write_text(yaml.safe_dump(result.spec.to_data(), sort_keys=False), encoding="utf-8")
        result.log.to_parquet(tmp / EVENTS_FILE)
        (tmp / KPIS_FILE).write_text(json.dumps(result.kpis.summary, indent=2), encoding="utf-8")
        result.kpis.per_replication.reset_index().to_parquet(tmp / REPLICATIONS_FILE, index=False)
        genealogy(result.log.table).to_parquet(tmp / GENEALOGY_FILE, index=False)
        run_info = {
            "run_id": uuid.uuid4().hex,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "twin_version": __version__,
            "line": result.spec.name,
            "spec_hash": result.spec.spec_hash,
            "scenario": result.name,
            "overrides": list(result.overrides),
            **result.settings,
        }
        (tmp / RUN_FILE).write_text(json.dumps(run_info, indent=2), encoding="utf-8")
    return Path(target)


def read_log(path: str | Path) -> EventLog:
    """Only the event log of a run folder (quicker than ``read_run``: no KPIs)."""
    path = Path(path)
    if not (path / EVENTS_FILE).is_file():
        raise InputError(f"{path}: not a run folder (missing {EVENTS_FILE})")
    return EventLog.from_parquet(path / EVENTS_FILE)


def read_run(path: str | Path) -> RunResult:
    """Read a run folder written by ``write_run``."""
    path = Path(path)
    missing = [f for f in (SPEC_FILE, EVENTS_FILE, RUN_FILE) if not (path / f).is_file()]
    if not path.is_dir() or missing:
        raise InputError(f"{path}: not a run folder (missing {', '.join(missing) or 'folder'})")
    try:
        info: dict[str, Any] = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path / RUN_FILE}: not readable run information ({err})") from None
    if not isinstance(info, dict):
        raise InputError(f"{path / RUN_FILE}: not readable run information (expected an object)")
    spec = spec_from_data(yaml.safe_load((path / SPEC_FILE).read_text(encoding="utf-8")), source=str(path / SPEC_FILE))
    log = EventLog.from_parquet(path / EVENTS_FILE)
    settings = {k: info[k] for k in ("replications", "seed", "horizon", "warmup") if k in info}
    return RunResult(
        spec, log, compute_kpis(log), info.get("scenario", "baseline"), tuple(info.get("overrides", ())), settings
    )
