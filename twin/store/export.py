"""Copy stored runs out of the store, as run folders (Parquet) or as CSV files for spreadsheets.

    >>> export_run(store, "3f2a9c", "out/press2")                  # a run folder: read_run() reads it
    >>> export_run(store, "3f2a9c", "out/press2-csv", fmt="csv")   # events.csv, kpis_by_replication.csv, ...

The target is written under a temporary name beside it and renamed in one step, and is never
overwritten.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from twin.errors import InputError
from twin.eventlog import EventLog
from twin.runfolder import EVENTS_FILE, KPIS_FILE, REPLICATIONS_FILE, RUN_FILE, SPEC_FILE, atomic_folder
from twin.store.store import RunStore

FORMATS = ("parquet", "csv")


def export_run(store: RunStore, run_id: str, target: str | Path, fmt: str = "parquet") -> Path:
    """Write the run as a folder at ``target`` (which must not exist)."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    source = store.path(run_id)
    with atomic_folder(target, "--to") as tmp:
        for name in (SPEC_FILE, KPIS_FILE, RUN_FILE):
            shutil.copy2(source / name, tmp / name)
        if fmt == "parquet":
            for name in (EVENTS_FILE, REPLICATIONS_FILE):
                shutil.copy2(source / name, tmp / name)
        else:
            EventLog.from_parquet(source / EVENTS_FILE).table.to_csv(tmp / "events.csv", index=False)
            pd.read_parquet(source / REPLICATIONS_FILE).to_csv(tmp / "kpis_by_replication.csv", index=False)
    return Path(target)
