"""The run store: a folder of run folders and a catalog you can query with SQL. No server.

    >>> store = RunStore("twin-runs")                 # or RunStore() for $TWIN_STORE / ./twin-runs
    >>> run_id = store.save(result, sweep_id=None, tags={"study": "coater"})
    >>> store.list(where="scenario LIKE 'press%' AND oee > 0.4")      # a pandas DataFrame
    >>> store.query("SELECT scenario, max(throughput_per_hour) FROM runs GROUP BY scenario")
    >>> result = store.get(run_id)                    # RunResult: spec, event log, KPIs
    >>> store.delete([run_id])

Layout of a store folder::

    twin-store.json            format and schema version (a store this twin cannot read is refused)
    runs/<run_id>/             a run folder (``twin.runfolder``) plus its catalog row, entry.parquet
    sweeps/<sweep_id>.json     what a sweep asked for (its points), written when it starts
    .staging/, .trash/         work in progress of live processes; never read as runs

Safe under concurrency: a run is written under ``.staging`` and appears in ``runs/`` by one rename,
its catalog row with it; deleting is one rename out of ``runs/`` first. Readers never see half a
run, writers never share a file, and a process killed at any moment leaves at most debris in
``.staging`` that the next writer of the same host removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from twin.errors import InputError
from twin.experiment import RunResult
from twin.files import owner_alive, owner_tag
from twin.runfolder import KPIS_FILE, RUN_FILE, read_run, write_run
from twin.store.catalog import ENTRY_FILE, RUNS_DIR, catalog_connection, catalog_entry
from twin.store.packed import PackedRun

SCHEMA_VERSION = 1
STORE_FILE = "twin-store.json"
STORE_FORMAT = "twin run store"
SWEEPS_DIR, STAGING_DIR, TRASH_DIR = "sweeps", ".staging", ".trash"
DEFAULT_STORE = "twin-runs"
_KNOWN = {STORE_FILE, RUNS_DIR, SWEEPS_DIR, STAGING_DIR, TRASH_DIR}


class StoreError(InputError):
    """A store that cannot be used (missing, not a store, newer schema) or a bad query or run id."""


def default_store_path() -> Path:
    """``$TWIN_STORE`` if set, else ``./twin-runs``."""
    return Path(os.environ.get("TWIN_STORE") or DEFAULT_STORE)


def point_key(
    spec_hash: str, seed: int | None, replications: int | None, horizon: float | None, warmup: float | None
) -> str:
    """What identifies a run's results: equal keys give bit-identical event logs and KPIs."""
    hours = [None if h is None else float(h) for h in (horizon, warmup)]
    data = {"spec_hash": spec_hash, "seed": seed, "replications": replications, "horizon": hours[0], "warmup": hours[1]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def existing_store(path: str | Path | None = None) -> RunStore | None:
    """The store at ``path`` if there is one; None for a missing or empty folder (raises for anything else)."""
    root = Path(path) if path is not None else default_store_path()
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return None
    return RunStore(root, create=False)


class RunStore:
    """A run store in a folder; see the module docstring. ``create=False`` refuses a missing store."""

    def __init__(self, path: str | Path | None = None, create: bool = True):
        self.root = Path(path) if path is not None else default_store_path()
        self._swept = False
        marker = self.root / STORE_FILE
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: is a file, not a run store folder")
        if not marker.exists():
            strangers = sorted(p.name for p in self.root.iterdir() if p.name not in _KNOWN
                               and not p.name.startswith(".twin-store")) if self.root.is_dir() else []  # fmt: skip
            if strangers:
                raise StoreError(
                    f"{self.root}: not a twin run store (no {STORE_FILE}; it holds {', '.join(strangers[:3])}"
                    f"{', ...' if len(strangers) > 3 else ''}); choose another --store"
                )
            if not create:
                raise StoreError(f"{self.root}: no run store here (it is created by the first run stored in it)")
            self._create()
        self._check_version(marker)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- the store's own files -------------------------------------------------------------------

    def _create(self) -> None:
        data = {"format": STORE_FORMAT, "schema_version": SCHEMA_VERSION,
                "created": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        tmp = self.root / f".twin-store.{uuid.uuid4().hex}.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            try:
                os.link(tmp, self.root / STORE_FILE)  # create-if-absent in one step: two creators agree
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not (self.root / STORE_FILE).exists():
                    os.replace(tmp, self.root / STORE_FILE)
        except OSError as err:
            raise StoreError(f"{self.root}: cannot create a run store here ({err.strerror or err})") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _check_version(self, marker: Path) -> None:
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StoreError(f"{marker}: unreadable run store marker ({err.__class__.__name__}: {err})") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
            raise StoreError(f"{marker}: not a twin run store marker")
        if version != SCHEMA_VERSION:
            hint = "upgrade twin to read it" if isinstance(version, int) and version > SCHEMA_VERSION else ""
            raise StoreError(
                f"{self.root}: run store schema version {version} cannot be read by this twin "
                f"(it reads version {SCHEMA_VERSION}){'; ' + hint if hint else ''}"
            )

    def _work_dir(self, kind: str) -> Path:
        """A fresh folder under ``.staging`` or ``.trash``, named after this process."""
        base = self.root / kind
        base.mkdir(exist_ok=True)
        if not self._swept:
            self._swept = True
            self.clear_work()
        work = base / owner_tag()
        work.mkdir()
        return work

    def clear_work(self, mine: bool = False) -> None:
        """Remove the work in progress of dead processes of this host (and this process's with ``mine``).

        Call it with ``mine=True`` only when this process is not writing (e.g. after an interrupt).
        """
        own = f"{socket.gethostname()}-{os.getpid()}-"
        for folder in (self.root / STAGING_DIR, self.root / TRASH_DIR):
            for old in folder.iterdir() if folder.is_dir() else ():
                if not owner_alive(old.name) or (mine and old.name.startswith(own)):
                    shutil.rmtree(old, ignore_errors=True)

    # -- writing ---------------------------------------------------------------------------------

    def save(
        self, result: RunResult | PackedRun, sweep_id: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> str:
        """Store a run (spec, event log, KPIs and a catalog row) in one step; returns its run id.

        ``result`` is a ``RunResult``, or a ``PackedRun`` whose files a worker has encoded already.
        """
        work = self._work_dir(STAGING_DIR)
        try:
            if isinstance(result, PackedRun):
                folder = work / "run"
                folder.mkdir()
                result.write(folder)
            else:
                folder = write_run(result, work / "run")
            info = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
            summary = json.loads((folder / KPIS_FILE).read_text(encoding="utf-8"))
            created = datetime.now(UTC)
            info.update(
                run_id=uuid.uuid4().hex,  # the store names its runs: a packed run saved twice is two runs
                created=created.isoformat(timespec="microseconds"),
                point_key=point_key(*(info.get(k) for k in ("spec_hash", "seed", "replications", "horizon", "warmup"))),
                sweep_id=sweep_id,
                tags={str(k): str(v) for k, v in (tags or {}).items()},
                store_schema_version=SCHEMA_VERSION,
            )
            (folder / RUN_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
            pq.write_table(catalog_entry(summary, info, created.replace(tzinfo=None)), folder / ENTRY_FILE)
            (self.root / RUNS_DIR).mkdir(exist_ok=True)
            os.rename(folder, self.root / RUNS_DIR / info["run_id"])  # the run and its row appear together
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return info["run_id"]

    def delete(self, run_ids: Iterable[str]) -> list[str]:
        """Remove runs (ids or unique prefixes); each vanishes from the catalog in one step."""
        resolved = [self.resolve(r) for r in run_ids]
        if not resolved:
            return []
        work = self._work_dir(TRASH_DIR)
        try:
            for run_id in resolved:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another process: fine
                    os.rename(self.root / RUNS_DIR / run_id, work / run_id)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return resolved

    def save_sweep(self, manifest: Mapping[str, Any]) -> Path:
        """Record what a sweep asked for as ``sweeps/<sweep_id>.json`` (replaced in one step)."""
        folder = self.root / SWEEPS_DIR
        folder.mkdir(exist_ok=True)
        target = folder / f"{manifest['sweep_id']}.json"
        tmp = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    # -- reading ---------------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        """Ids of the stored runs (folder names), unordered."""
        runs = self.root / RUNS_DIR
        return [p.name for p in runs.iterdir() if not p.name.startswith(".")] if runs.is_dir() else []

    def resolve(self, ref: str) -> str:
        """The run id that ``ref`` names: a full id or a unique prefix of at least 4 characters."""
        ref = ref.strip()
        ids = self.run_ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if i.startswith(ref)] if len(ref) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise StoreError(f"run {ref!r} is ambiguous in {self.root}: {len(matches)} runs start with it")
        raise StoreError(f"no run {ref!r} in {self.root}")

    def path(self, run_id: str) -> Path:
        """The run folder of a run (id or unique prefix)."""
        return self.root / RUNS_DIR / self.resolve(run_id)

    def get(self, run_id: str) -> RunResult:
        """The stored run: spec, event log and KPIs (recomputed from the log)."""
        return read_run(self.path(run_id))

    def info(self, run_id: str) -> dict[str, Any]:
        """The run's ``run.json``: id, time, line, scenario, sweep, overrides and settings."""
        return json.loads((self.path(run_id) / RUN_FILE).read_text(encoding="utf-8"))

    def summary(self, run_id: str) -> dict[str, Any]:
        """The run's KPI summary as stored (``kpis.json``, the shape of ``twin run --json``)."""
        return json.loads((self.path(run_id) / KPIS_FILE).read_text(encoding="utf-8"))

    def per_replication(self, run_id: str) -> pd.DataFrame:
        """The run's KPIs per replication, indexed by replication."""
        table = pd.read_parquet(self.path(run_id) / "kpis_by_replication.parquet")
        return table.set_index("replication")

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """What a sweep asked for (its manifest)."""
        path = self.root / SWEEPS_DIR / f"{sweep_id}.json"
        if not path.is_file():
            raise StoreError(f"no sweep {sweep_id!r} in {self.root}")
        return json.loads(path.read_text(encoding="utf-8"))

    def query(self, sql: str) -> pd.DataFrame:
        """Run SQL on the catalog (a table named ``runs``; see ``twin.store.catalog`` for its columns)."""
        return self._execute(sql, "query")

    def list(
        self, where: str | None = None, order_by: str = "created, run_id", limit: int | None = None
    ) -> pd.DataFrame:
        """Catalog rows, optionally filtered by an SQL condition on its columns."""
        sql = "SELECT * FROM runs"
        if where:
            sql += f" WHERE ({where})"
        sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._execute(sql, f"--where {where!r}" if where else "list")

    def find_points(self, keys: Iterable[str]) -> dict[str, str]:
        """For each point key already stored, the id of its earliest run."""
        wanted = set(keys)
        found: dict[str, str] = {}
        stored = self._execute("SELECT point_key, run_id FROM runs ORDER BY created, run_id", "find points")
        for key, run_id in zip(stored["point_key"], stored["run_id"], strict=True):
            if key in wanted and key not in found:
                found[key] = run_id
        return found

    def _execute(self, sql: str, label: str) -> pd.DataFrame:
        import duckdb

        for attempt in range(6):
            try:
                with catalog_connection(self.root) as con:
                    return con.execute(sql).fetchdf()
            except duckdb.IOException:
                if attempt == 5:
                    raise
                time.sleep(0.05 * (attempt + 1))  # a run was removed while the catalog was read: read again
            except duckdb.Error as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
                raise StoreError(f"{label}: {first}") from None
        raise AssertionError("unreachable")
