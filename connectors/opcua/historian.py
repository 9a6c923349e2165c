"""The historian: every value the sync receives, with source timestamp and status, in SQLite (WAL mode).

Writing (the sync; one writer thread, commits at least every ``flush_s``)::

    >>> writer = HistorianWriter("plant.db", retention_hours=24 * 90)
    >>> tag_ids = writer.historian.register_tags({"COATING_U1_STATE": "coating[0].state"})
    >>> writer.put(tag_ids["COATING_U1_STATE"], source_us, server_us, received_us, 4, 0)
    >>> writer.acknowledged          # values committed (safe from a kill -9 of the process)

Reading (the dashboard's Live page, ``twin history``, calibration; any process, while the sync writes)::

    >>> h = Historian("plant.db", readonly=True)
    >>> h.tags()                                    # name, role, samples, first and last source time
    >>> h.query(["COATING_U1_STATE"], start, end)   # tag, source_time, server_time, received_time, value, status
    >>> h.latest()                                  # the last value of every tag
    >>> h.gaps(); h.meta(); h.kpis()                # connection gaps, sync settings, KPI snapshots
    >>> h.export("states.parquet", tags=[...])      # CSV or Parquet by suffix

Times are stored as integer microseconds since the Unix epoch (UTC) and returned as pandas UTC
timestamps. Rows of one tag with equal source times keep the order in which they arrived (``seq``).
SQLite in WAL mode lets readers read while the writer writes; with ``synchronous=NORMAL`` a
committed transaction survives the death of the writing process.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import InputError
from twin.files import atomic_path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, role TEXT);
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER PRIMARY KEY,
    tag INTEGER NOT NULL REFERENCES tags(id),
    source_us INTEGER NOT NULL,
    server_us INTEGER,
    received_us INTEGER NOT NULL,
    value,
    status INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS samples_tag_time ON samples(tag, source_us);
CREATE INDEX IF NOT EXISTS samples_time ON samples(source_us);
CREATE TABLE IF NOT EXISTS gaps (id INTEGER PRIMARY KEY, start_us INTEGER, end_us INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS kpis (received_us INTEGER PRIMARY KEY, plant_hours REAL, data TEXT);
CREATE TABLE IF NOT EXISTS forecasts (
    id INTEGER PRIMARY KEY, made_us INTEGER, at_hours REAL, horizon REAL, predicted TEXT, score TEXT
);
"""


def to_us(t: datetime | pd.Timestamp | str | float | int | None) -> int | None:
    """Microseconds since the epoch from a datetime, an ISO string or a number of seconds."""
    if t is None:
        return None
    if isinstance(t, int | float) and not isinstance(t, bool):
        return round(float(t) * 1e6)
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize(UTC)
    return int(ts.value // 1000)


def _times(us: pd.Series) -> pd.Series:
    return pd.to_datetime(us.astype("Int64"), unit="us", utc=True)


class Historian:
    """A historian file: the tables above and the read API."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise InputError(f"{self.path}: no such historian")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.commit()
        self.db.execute("PRAGMA busy_timeout=5000")
        try:
            self.db.execute("SELECT 1 FROM samples LIMIT 1")
        except sqlite3.DatabaseError as err:
            raise InputError(f"{self.path}: not a historian ({err})") from None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------------------------------ writing

    def register_tags(self, roles: dict[str, str]) -> dict[str, int]:
        """Tag name -> id, adding the tags that are new."""
        with self.db:
            for name, role in roles.items():
                self.db.execute(
                    "INSERT INTO tags(name, role) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET role=excluded.role",
                    (name, role),
                )
        return {name: tag_id for tag_id, name in self.db.execute("SELECT id, name FROM tags")}

    def append(self, rows: Sequence[tuple[int, int, int | None, int, Any, int]]) -> None:
        """Insert (tag id, source_us, server_us, received_us, value, status) rows in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT INTO samples(tag, source_us, server_us, received_us, value, status) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def mark_gap(self, start_us: int, end_us: int | None, reason: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO gaps(start_us, end_us, reason) VALUES (?, ?, ?)", (start_us, end_us, reason))

    def set_meta(self, **items: Any) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()]
            )

    def add_kpis(self, plant_hours: float, data: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO kpis VALUES (?, ?, ?)", (to_us(time.time()), plant_hours, json.dumps(data))
            )

    def enforce_retention(self, keep_hours: float, now_us: int | None = None) -> int:
        """Delete samples (and gaps, KPI snapshots) older than ``keep_hours`` before ``now_us`` (default: the
        newest source time, so that a plant clock that runs fast is measured by itself); returns how many."""
        if now_us is None:
            now_us = self.db.execute("SELECT MAX(source_us) FROM samples").fetchone()[0]
            if now_us is None:
                return 0
        cutoff = now_us - int(keep_hours * 3.6e9)
        with self.db:
            n = self.db.execute("DELETE FROM samples WHERE source_us < ?", (cutoff,)).rowcount
            self.db.execute("DELETE FROM gaps WHERE end_us < ?", (cutoff,))
            wall_cutoff = to_us(time.time()) - int(keep_hours * 3.6e9)
            self.db.execute("DELETE FROM kpis WHERE received_us < ?", (wall_cutoff,))
        return n

    # ------------------------------------------------------------------------------------------ reading

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def tags(self) -> pd.DataFrame:
        """One row per tag: name, role, samples, first and last source time."""
        df = pd.read_sql_query(
            "SELECT t.name, t.role, COUNT(s.seq) AS samples, MIN(s.source_us) AS first_us, MAX(s.source_us) AS last_us "
            "FROM tags t LEFT JOIN samples s ON s.tag = t.id GROUP BY t.id ORDER BY t.id",
            self.db,
        )
        df["first"], df["last"] = _times(df.pop("first_us")), _times(df.pop("last_us"))
        return df

    def _tag_ids(self, tags: Iterable[str] | None) -> list[int] | None:
        if tags is None:
            return None
        tags = list(tags)
        known = dict(self.db.execute("SELECT name, id FROM tags"))
        missing = [t for t in tags if t not in known]
        if missing:
            raise InputError(f"{self.path}: no tag(s) {', '.join(missing)} (see `twin history {self.path} --list`)")
        return [known[t] for t in tags]

    def query(
        self,
        tags: Iterable[str] | None = None,
        start: Any = None,
        end: Any = None,
        limit: int | None = None,
        raw_times: bool = False,
    ) -> pd.DataFrame:
        """Samples of ``tags`` (all by default) with start <= source time <= end, by tag then time then arrival."""
        where, args = [], []
        ids = self._tag_ids(tags)
        if ids is not None:
            where.append(f"s.tag IN ({','.join('?' * len(ids))})")
            args += ids
        if start is not None:
            where.append("s.source_us >= ?")
            args.append(to_us(start))
        if end is not None:
            where.append("s.source_us <= ?")
            args.append(to_us(end))
        sql = (
            "SELECT t.name AS tag, s.source_us, s.server_us, s.received_us, s.value, s.status, s.seq "
            "FROM samples s JOIN tags t ON t.id = s.tag"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.tag, s.source_us, s.seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        df = pd.read_sql_query(sql, self.db, params=args)
        if raw_times:
            return df
        return pd.DataFrame(
            {
                "tag": df["tag"],
                "source_time": _times(df["source_us"]),
                "server_time": _times(df["server_us"]),
                "received_time": _times(df["received_us"]),
                "value": df["value"],
                "status": df["status"],
            }
        )

    def latest(self, tags: Iterable[str] | None = None) -> pd.DataFrame:
        """The last value of each tag (by source time, then arrival)."""
        ids = self._tag_ids(tags)
        sql = (
            "SELECT t.name AS tag, s.source_us, s.value, s.status FROM tags t JOIN samples s ON s.seq = "
            "(SELECT seq FROM samples WHERE tag = t.id ORDER BY source_us DESC, seq DESC LIMIT 1)"
        )
        args: list[Any] = []
        if ids is not None:
            sql += f" WHERE t.id IN ({','.join('?' * len(ids))})"
            args = ids
        df = pd.read_sql_query(sql + " ORDER BY t.id", self.db, params=args)
        df["source_time"] = _times(df.pop("source_us"))
        return df

    def last_values(self) -> pd.DataFrame:
        """Every sample at each tag's latest source time (raw: tag, source_us, value, status)."""
        return pd.read_sql_query(
            "SELECT t.name AS tag, s.source_us, s.value, s.status FROM samples s JOIN tags t ON t.id = s.tag "
            "JOIN (SELECT tag, MAX(source_us) AS m FROM samples GROUP BY tag) x ON x.tag = s.tag AND x.m = s.source_us "
            "ORDER BY s.seq",
            self.db,
        )

    def gaps(self) -> pd.DataFrame:
        df = pd.read_sql_query("SELECT start_us, end_us, reason FROM gaps ORDER BY id", self.db)
        return pd.DataFrame({"start": _times(df["start_us"]), "end": _times(df["end_us"]), "reason": df["reason"]})

    def kpis(self) -> pd.DataFrame:
        """KPI snapshots of the sync (plant and, in shadow mode, twin), oldest first."""
        df = pd.read_sql_query("SELECT received_us, plant_hours, data FROM kpis ORDER BY received_us", self.db)
        return pd.DataFrame(
            {
                "time": _times(df["received_us"]),
                "plant_hours": df["plant_hours"],
                "kpis": [json.loads(d) for d in df["data"]],
            }
        )

    def add_forecast(self, at_hours: float, horizon: float, predicted: dict[str, Any]) -> int:
        """Keep a forecast made at plant time ``at_hours`` (shadow mode); its id."""
        with self.db:
            cur = self.db.execute(
                "INSERT INTO forecasts(made_us, at_hours, horizon, predicted) VALUES (?, ?, ?, ?)",
                (to_us(time.time()), at_hours, horizon, json.dumps(predicted)),
            )
        return int(cur.lastrowid or 0)

    def set_forecast_score(self, forecast_id: int, score: dict[str, Any]) -> None:
        with self.db:
            self.db.execute("UPDATE forecasts SET score = ? WHERE id = ?", (json.dumps(score), forecast_id))

    def forecasts(self) -> pd.DataFrame:
        """Forecasts of the shadow twin: id, made (wall time), at_hours, horizon, predicted, score (None until due)."""
        try:
            df = pd.read_sql_query("SELECT * FROM forecasts ORDER BY id", self.db)
        except pd.errors.DatabaseError:  # a historian from before forecasts were kept
            df = pd.DataFrame(columns=["id", "made_us", "at_hours", "horizon", "predicted", "score"])
        return pd.DataFrame(
            {
                "id": df["id"].astype(int),
                "made": _times(df["made_us"]),
                "at_hours": df["at_hours"].astype(float),
                "horizon": df["horizon"].astype(float),
                "predicted": [json.loads(p) for p in df["predicted"]],
                "score": [json.loads(x) if isinstance(x, str) else None for x in df["score"]],
            }
        )

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def export(self, path: str | Path, tags: Iterable[str] | None = None, start: Any = None, end: Any = None) -> int:
        """Write the query's rows to ``path`` (``.csv`` or ``.parquet``, atomically); returns the row count."""
        path = Path(path)
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise InputError(f"{path}: export to .csv or .parquet")
        df = self.query(tags, start, end)
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".csv":
                out = df.copy()
                for c in ("source_time", "server_time", "received_time"):
                    out[c] = out[c].map(lambda t: t.isoformat() if pd.notna(t) else "")
                out.to_csv(tmp, index=False)
            else:
                df.assign(
                    value=df["value"].map(lambda v: None if v is None else str(v)),
                    value_type=df["value"].map(lambda v: type(v).__name__),
                ).to_parquet(tmp, index=False)
        return len(df)


class HistorianWriter:
    """A thread that commits queued samples in batches; counts what is acknowledged and how late."""

    def __init__(
        self,
        path: str | Path,
        retention_hours: float | None = None,
        flush_s: float = 0.025,
        max_batch: int = 20000,
        measure_latency: bool = False,
    ):
        self.historian = Historian(path)
        self.retention_hours, self.flush_s, self.max_batch = retention_hours, flush_s, max_batch
        self._queue: queue.SimpleQueue[tuple[int, int, int | None, int, Any, int] | None] = queue.SimpleQueue()
        self.acknowledged = 0
        self.latencies_us: list[int] = []  # commit time - source time, when measure_latency
        self.latency_tags: list[int] = []  # the tag of each latency (only some tags may carry wall-clock times)
        self._keep_latency = measure_latency
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="historian-writer", daemon=True)
        self._thread.start()

    def put(self, tag: int, source_us: int, server_us: int | None, received_us: int, value: Any, status: int) -> None:
        self._queue.put((tag, source_us, server_us, received_us, value, status))

    def close(self) -> None:
        """Commit everything queued and stop the thread."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        db = Historian(self.historian.path)
        last_retention = 0.0
        done = False
        try:
            while not done:
                batch = []
                try:
                    item = self._queue.get(timeout=self.flush_s)
                except queue.Empty:
                    item = ...
                deadline = time.monotonic() + self.flush_s
                while item is not ...:
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                    if len(batch) >= self.max_batch or time.monotonic() > deadline:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    db.append(batch)
                    committed = to_us(time.time())
                    self.acknowledged += len(batch)
                    if self._keep_latency:
                        self.latencies_us.extend(committed - np.fromiter((b[1] for b in batch), dtype=np.int64))
                        self.latency_tags.extend(b[0] for b in batch)
                if self.retention_hours is not None and time.monotonic() - last_retention > 60:
                    last_retention = time.monotonic()
                    db.enforce_retention(self.retention_hours)
        except BaseException as err:  # surfaced by close(); the sync checks `failed`
            self._error = err
            log.exception("historian writer failed")
        finally:
            db.close()

    @property
    def failed(self) -> BaseException | None:
        return self._error
