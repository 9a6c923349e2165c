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
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, watermark_us INTEGER, seq INTEGER, made_us INTEGER, data BLOB
);
CREATE TABLE IF NOT EXISTS kpi_marks (plant_hours REAL PRIMARY KEY, data TEXT);
CREATE TABLE IF NOT EXISTS twin_marks (plant_hours REAL PRIMARY KEY, data TEXT);
CREATE TABLE IF NOT EXISTS view (id INTEGER PRIMARY KEY CHECK (id = 0), received_us INTEGER, data TEXT);
CREATE TABLE IF NOT EXISTS aggregates (
    tag INTEGER NOT NULL, minute_us INTEGER NOT NULL, n INTEGER, first, last, min, max,
    PRIMARY KEY (tag, minute_us)
);
"""
MINUTE_US = 60_000_000
KEEP_CHECKPOINTS = 3  # the newest decoder checkpoints kept (older ones go)
DEFAULT_KEEP_RAW_HOURS = 7 * 24.0  # `twin history --compact`: raw samples of the last 7 plant days stay
CHANGE_ROLES = ("state", "alarm", "batch", "product", "release.batch")  # kept raw for ever: state changes
# KPI snapshots as compact rows: column -> path in a snapshot (the dashboard's charts read these columns)
MARK_TABLES = {"marks": "kpi_marks", "twin_marks": "twin_marks"}  # a snapshot's hourly totals -> where they are kept
KPI_COLUMNS: dict[str, tuple[str, ...]] = {
    **{
        f"{who}_{m}": (who, m, "mean")
        for who in ("plant", "twin")
        for m in ("throughput_per_hour", "units_per_hour", "oee", "wip", "lead_time_hours")
    },
    **{
        k: (k,)
        for k in (
            "received", "acknowledged", "duplicates", "bad_values", "missed", "lost", "reconnects",
            "tick_s", "lag_s", "queue", "values_per_s", "historian_bytes", "rebuilds",
        )
    },
}
_KPI_TABLE = (
    "CREATE TABLE IF NOT EXISTS kpi_rows (received_us INTEGER PRIMARY KEY, plant_hours REAL, state TEXT, "
    + ", ".join(f"{c} REAL" for c in KPI_COLUMNS)
    + ")"
)
SCHEMA += _KPI_TABLE + ";\n"


def _path(data: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = data
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


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
        """Keep a KPI snapshot: its numbers as one compact row, the whole of it as the latest view, and its
        ``marks`` (the plant's running totals at whole hours: ~460 bytes a plant hour, kept for good) in
        ``kpi_marks``, its ``twin_marks`` (the shadow twin's) in ``twin_marks``."""
        now = to_us(time.time())
        values = [_path(data, p) for p in KPI_COLUMNS.values()]
        marks = {table: data.get(key) or [] for key, table in MARK_TABLES.items()}
        view = {k: v for k, v in data.items() if k not in MARK_TABLES}
        with self.db:
            self.db.execute(
                f"INSERT OR REPLACE INTO kpi_rows VALUES ({', '.join('?' * (len(values) + 3))})",
                (now, plant_hours, data.get("state"), *values),
            )
            for table, rows in marks.items():
                rows = [(h, json.dumps(t)) for h, t in rows]
                self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", rows)
            self.db.execute("INSERT OR REPLACE INTO view VALUES (0, ?, ?)", (now, json.dumps(view)))

    def kpi_mark(self, at_or_after: float, who: str = "plant") -> tuple[float, dict[str, Any]] | None:
        """The plant's (``who="twin"``: the shadow twin's) running totals kept at the first whole hour at or after
        ``at_or_after`` plant hours (the snapshots' ``marks``, ``KpiAccumulator.totals``): one index look-up; None
        if there is none."""
        table = MARK_TABLES["twin_marks" if who == "twin" else "marks"]
        try:
            row = self.db.execute(
                f"SELECT plant_hours, data FROM {table} WHERE plant_hours >= ? ORDER BY plant_hours LIMIT 1",
                (float(at_or_after) - 1e-9,),
            ).fetchone()
        except sqlite3.OperationalError:  # a historian of an older sync
            return None
        return None if row is None else (float(row[0]), json.loads(row[1]))

    def kpi_marks(self, points: int, who: str = "plant") -> list[tuple[float, dict[str, Any]]]:
        """At most ``points`` of the plant's (``who="twin"``: the shadow twin's) running totals at whole hours, spread
        evenly from the first to the last, both kept (one index look-up each, so the cost does not grow with the
        table); oldest first, empty if there are none."""
        table = MARK_TABLES["twin_marks" if who == "twin" else "marks"]
        try:
            first, last = self.db.execute(f"SELECT MIN(plant_hours), MAX(plant_hours) FROM {table}").fetchone()
        except sqlite3.OperationalError:  # a historian of an older sync
            return []
        if first is None:
            return []
        marks: list[tuple[float, dict[str, Any]]] = []
        for probe in np.unique(np.linspace(first, last, max(points, 2))):
            found = self.kpi_mark(float(probe), who)
            if found is not None and (not marks or found[0] > marks[-1][0]):
                marks.append(found)
        return marks

    def save_checkpoint(self, key: str, watermark_us: int | None, seq: int, data: bytes) -> None:
        """Keep a decoder checkpoint (``PlantDecoder.state()``): the samples up to ``seq`` with source times up
        to ``watermark_us`` decoded; the oldest beyond ``KEEP_CHECKPOINTS`` go."""
        with self.db:
            self.db.execute(
                "INSERT INTO checkpoints(key, watermark_us, seq, made_us, data) VALUES (?, ?, ?, ?, ?)",
                (key, watermark_us, seq, to_us(time.time()), data),
            )
            self.db.execute(
                "DELETE FROM checkpoints WHERE id NOT IN (SELECT id FROM checkpoints ORDER BY id DESC LIMIT ?)",
                (KEEP_CHECKPOINTS,),
            )

    def compact(self, keep_raw_hours: float = DEFAULT_KEEP_RAW_HOURS, now_us: int | None = None) -> int:
        """Compact what is older than ``keep_raw_hours`` before ``now_us`` (default: the newest source time):
        the samples of counters, heartbeat and extra tags become per-minute aggregates (count of the samples
        deleted, first, last, min, max; each tag's last sample stays raw), of the state, alarm, batch and
        product tags only the changes stay (a repeat of the value before it goes), KPI rows are thinned to
        one a minute. Only samples that the newest
        decoder checkpoint covers go (none without one), so the plant's event log stays the same.
        Returns the samples deleted."""
        if now_us is None:
            now_us = self.db.execute("SELECT MAX(source_us) FROM samples").fetchone()[0]
            if now_us is None:
                return 0
        limit = now_us - int(keep_raw_hours * 3.6e9)
        newest = self.latest_checkpoint()
        if newest is None or newest[1] is None:
            return 0
        limit = min(limit, newest[1] + 1)
        top_seq = newest[2]
        roles = dict(self.db.execute("SELECT id, role FROM tags"))
        squash = [i for i, role in roles.items() if str(role).rsplit(".", 1)[-1] not in CHANGE_ROLES]
        if not squash:
            return 0
        ids = ",".join(str(int(i)) for i in squash)
        old = f"s.tag IN ({ids}) AND s.source_us < {int(limit)} AND s.seq <= {int(top_seq)}"
        last = (
            f"s.seq NOT IN (SELECT MAX(seq) FROM samples s WHERE {old} GROUP BY s.tag)"  # each tag's last value stays
        )
        with self.db:
            self.db.execute(
                f"WITH g AS (SELECT s.tag AS tag, (s.source_us / {MINUTE_US}) * {MINUTE_US} AS m, COUNT(*) AS n, "
                f"MIN(s.value) AS mn, MAX(s.value) AS mx FROM samples s WHERE {old} AND {last} GROUP BY s.tag, m) "
                "INSERT INTO aggregates SELECT g.tag, g.m, g.n, "
                "(SELECT value FROM samples x WHERE x.tag = g.tag AND x.source_us >= g.m "
                f"AND x.source_us < g.m + {MINUTE_US} ORDER BY x.source_us, x.seq LIMIT 1), "
                "(SELECT value FROM samples x WHERE x.tag = g.tag AND x.source_us >= g.m "
                f"AND x.source_us < g.m + {MINUTE_US} ORDER BY x.source_us DESC, x.seq DESC LIMIT 1), "
                "g.mn, g.mx FROM g WHERE true ON CONFLICT(tag, minute_us) DO UPDATE SET n = n + excluded.n, "
                "last = excluded.last, min = MIN(min, excluded.min), max = MAX(max, excluded.max)"
            )
            n = self.db.execute(f"DELETE FROM samples AS s WHERE {old} AND {last}").rowcount
            keep = [i for i in roles if i not in squash]
            if keep:  # the state-like tags keep their changes: a repeat of the value before it goes
                n += self.db.execute(
                    "DELETE FROM samples WHERE seq IN (SELECT seq FROM (SELECT seq, value, status, "
                    "LAG(value) OVER w AS pv, LAG(status) OVER w AS ps FROM samples "
                    f"WHERE tag IN ({','.join(str(int(i)) for i in keep)}) AND source_us < {int(limit)} "
                    f"AND seq <= {int(top_seq)} WINDOW w AS (PARTITION BY tag ORDER BY source_us, seq)) "
                    "WHERE pv IS value AND ps = status)"
                ).rowcount
            wall_limit = to_us(time.time()) - int(keep_raw_hours * 3.6e9)
            self.db.execute(
                "DELETE FROM kpi_rows WHERE received_us < ? AND received_us NOT IN "
                f"(SELECT MAX(received_us) FROM kpi_rows WHERE received_us < ? GROUP BY received_us / {MINUTE_US})",
                (wall_limit, wall_limit),
            )
            self.db.execute("DELETE FROM kpis WHERE received_us < ?", (wall_limit,))  # JSON rows of older syncs
        return n

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

    def max_seq(self) -> int:
        """The arrival number of the newest sample (0 when empty)."""
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM samples").fetchone()[0])

    def samples_after(
        self, tags: Iterable[str], seq: int = 0, after_us: int | None = None, upto_seq: int | None = None
    ) -> pd.DataFrame:
        """Raw samples (tag, source_us, value, status, seq) of ``tags`` that arrived after ``seq`` (and, with
        ``after_us``, whose source time is later; with ``upto_seq``, that arrived by then), in arrival order.
        Its cost is in proportion to the rows it reads: what arrived since ``seq`` or is later than ``after_us``."""
        known = dict(self.db.execute("SELECT name, id FROM tags"))
        ids = [known[t] for t in tags if t in known]
        where = [f"s.tag IN ({','.join(str(int(i)) for i in ids) or 'NULL'})"]
        args: list[Any] = []
        table = "samples s NOT INDEXED"  # the primary key's range: what arrived since ``seq``
        if seq > 0 or after_us is None:
            where.append("s.seq > ?")
            args.append(int(seq))
        if after_us is not None:
            where.append("s.source_us > ?")
            args.append(int(after_us))
            table = "samples s INDEXED BY samples_time"  # the time index's range: what is later
        if upto_seq is not None:
            where.append("s.seq <= ?")
            args.append(int(upto_seq))
        return pd.read_sql_query(
            f"SELECT t.name AS tag, s.source_us, s.value, s.status, s.seq FROM {table} JOIN tags t ON t.id = s.tag "
            f"WHERE {' AND '.join(where)} ORDER BY s.seq",
            self.db,
            params=args,
        )

    def latest_checkpoint(self, key: str | None = None) -> tuple[bytes, int | None, int] | None:
        """The newest decoder checkpoint (of ``key``): (data, watermark_us, seq), or None."""
        try:
            sql = "SELECT data, watermark_us, seq FROM checkpoints"
            args: tuple[Any, ...] = ()
            if key is not None:
                sql, args = sql + " WHERE key = ?", (key,)
            row = self.db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        except sqlite3.OperationalError:  # a historian from before checkpoints
            return None
        return None if row is None else (bytes(row[0]), row[1], int(row[2]))

    def late_since(self, seq: int, watermark_us: int | None) -> bool:
        """True if a sample that arrived after ``seq`` has a source time at or before ``watermark_us``."""
        if watermark_us is None:
            return False
        row = self.db.execute("SELECT 1 FROM samples WHERE seq > ? AND source_us <= ? LIMIT 1", (seq, watermark_us))
        return row.fetchone() is not None

    def view(self) -> dict[str, Any] | None:
        """The sync's latest KPI snapshot, whole (plant, twin, drift, per station; counters, service figures)."""
        try:
            row = self.db.execute("SELECT data FROM view WHERE id = 0").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is None:  # a historian of an older sync: its last JSON row
            row = self.db.execute("SELECT data FROM kpis ORDER BY received_us DESC LIMIT 1").fetchone()
        return None if row is None else json.loads(row[0])

    def size_bytes(self) -> int:
        """The historian's size on disk (with its write-ahead log)."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

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

    def kpis(self, points: int | None = None) -> pd.DataFrame:
        """KPI snapshots of the sync as compact rows (time, plant_hours, state and the ``KPI_COLUMNS``), oldest
        first; with ``points``, at most that many spread evenly over the whole time (one index look-up each,
        so the cost does not grow with the table)."""
        columns = "received_us, plant_hours, state, " + ", ".join(KPI_COLUMNS)
        try:
            first_last = self.db.execute("SELECT MIN(received_us), MAX(received_us), COUNT(*) FROM kpi_rows").fetchone()
        except sqlite3.OperationalError:  # a historian of an older sync
            return pd.DataFrame(columns=["time", "plant_hours", "state", *KPI_COLUMNS])
        if points is None or first_last[2] <= points:
            df = pd.read_sql_query(f"SELECT {columns} FROM kpi_rows ORDER BY received_us", self.db)
        else:
            lo, hi = first_last[0], first_last[1]
            probes = np.linspace(lo, hi, points).round().astype(np.int64)
            rows, seen = [], set()
            for probe in probes:
                row = self.db.execute(
                    f"SELECT {columns} FROM kpi_rows WHERE received_us >= ? ORDER BY received_us LIMIT 1",
                    (int(probe),),
                ).fetchone()
                if row is not None and row[0] not in seen:
                    seen.add(row[0])
                    rows.append(row)
            df = pd.DataFrame(rows, columns=["received_us", "plant_hours", "state", *KPI_COLUMNS])
        df.insert(0, "time", _times(df.pop("received_us")))
        return df

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

    def replace_forecast(self, at_hours: float, predicted: dict[str, Any] | None, score: dict[str, Any] | None) -> None:
        """Replace the forecast made at ``at_hours`` (its prediction unless None, and its score: None, not scored)."""
        with self.db:
            if predicted is not None:
                self.db.execute(
                    "UPDATE forecasts SET predicted = ? WHERE abs(at_hours - ?) < 1e-9",
                    (json.dumps(predicted), at_hours),
                )
            self.db.execute(
                "UPDATE forecasts SET score = ? WHERE abs(at_hours - ?) < 1e-9",
                (None if score is None else json.dumps(score), at_hours),
            )

    def forecasts(self, last: int | None = None) -> pd.DataFrame:
        """Forecasts of the shadow twin: id, made (wall time), at_hours, horizon, predicted, score (None until due);
        with ``last``, only the newest ``last`` (oldest first)."""
        sql = "SELECT * FROM forecasts ORDER BY id"
        if last is not None:
            sql = f"SELECT * FROM (SELECT * FROM forecasts ORDER BY id DESC LIMIT {int(last)}) ORDER BY id"
        return self._forecast_rows(sql, ())

    def forecasts_reaching(self, hours: float) -> pd.DataFrame:
        """The forecasts whose horizon ends at or after plant time ``hours`` (those that values from ``hours`` on
        concern), in the columns of ``forecasts``."""
        sql = "SELECT * FROM forecasts WHERE at_hours + horizon >= ? ORDER BY id"
        return self._forecast_rows(sql, (float(hours),))

    def _forecast_rows(self, sql: str, params: tuple[Any, ...]) -> pd.DataFrame:
        try:
            df = pd.read_sql_query(sql, self.db, params=params)
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

    def forecasts_due(self, hours: float) -> pd.DataFrame:
        """The forecasts not scored yet whose horizon ends by ``hours`` (id, at_hours, horizon, predicted)."""
        try:
            df = pd.read_sql_query(
                "SELECT id, at_hours, horizon, predicted FROM forecasts"
                " WHERE score IS NULL AND at_hours + horizon <= ?",
                self.db,
                params=(float(hours),),
            )
        except pd.errors.DatabaseError:  # a historian from before forecasts were kept
            df = pd.DataFrame(columns=["id", "at_hours", "horizon", "predicted"])
        df["predicted"] = [json.loads(p) for p in df["predicted"]]
        return df

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

    def queue_depth(self) -> int:
        """Values waiting to be committed."""
        return self._queue.qsize()

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
                    db.compact(self.retention_hours)
        except BaseException as err:  # surfaced by close(); the sync checks `failed`
            self._error = err
            log.exception("historian writer failed")
        finally:
            db.close()

    @property
    def failed(self) -> BaseException | None:
        return self._error
