"""The event log: one table per run, the only interface between "what happened" and "what it means".

Simulated runs and live plant feeds produce the same table, and every KPI is a pure function of it.

Columns (one row per event, sorted by ``replication`` then ``time``; rows at equal times keep the
order in which they happened):

==============  ===========  ================================================================
column          type         meaning
==============  ===========  ================================================================
time            float64      hours since the start of the run
replication     int32        independent replication (0, 1, ...)
batch           int64        batch id, unique within a replication; -1 for rows without batch
product         category     product of the batch; null without batch
station         category     station; null for line-level rows (``release``, ``end``)
unit            int16        equipment unit within the station (0, 1, ...); -1 for station-level
event           category     see ``EVENTS``
state           category     the unit's state from this row on (see ``STATES``); null = unchanged
quantity        float64      units (tablets, vials): of the batch on ``finish`` and ``leave``; lost
                             on ``scrap`` and ``reject``; of the new batch on ``split``/``merge``
ideal           float64      ideal (nominal) processing hours of the batch on ``finish``
parent          int64        on ``split`` and ``merge`` rows, the batch the new one came from; -1
==============  ===========  ================================================================

Events: ``release`` (a batch enters the line), ``arrive`` (it enters a station's buffer),
``setup`` (a unit starts a changeover), ``start`` / ``finish`` (processing), ``leave`` (the batch
leaves the unit: to the next buffer, or out of the line at the last station), ``fail`` /
``repair``, ``state`` (a state change with no other event, e.g. a unit becomes starved) and
``end`` (the end of observation of a replication). The batch rules add ``clean`` (minor),
``major_clean``, ``line_clearance``, ``gowning``, ``scrap``, ``reject``, ``hold_violation``, ``investigation`` /
``investigation_end``, ``split`` / ``merge`` (one row per parent of each new batch), and the
quality-control events ``quarantine``, ``qc_start``, ``qc_end`` and ``approve`` (station null).

A unit's state intervals are the spans between consecutive rows of that unit that carry a state
(``state_intervals``); a state lasts until the next such row or the ``end`` row.

    >>> log = simulate(spec, replications=3, seed=1)
    >>> log.table.query("event == 'finish'").groupby("station").size()
    >>> intervals = state_intervals(log.table)
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from twin.errors import InputError

SCHEMA_VERSION = 2
ROW_GROUP = 65_536  # rows per Parquet row group (``EventLog.to_parquet``)


class Event(StrEnum):
    """Event names: the one copy the engine, the KPIs, the decoders and the docs read (``Event.FINISH == "finish"``)."""

    RELEASE = "release"
    ARRIVE = "arrive"
    SETUP = "setup"
    START = "start"
    FINISH = "finish"
    LEAVE = "leave"
    FAIL = "fail"
    REPAIR = "repair"
    STATE = "state"
    END = "end"
    CLEAN = "clean"
    MAJOR_CLEAN = "major_clean"
    LINE_CLEARANCE = "line_clearance"
    GOWNING = "gowning"
    SCRAP = "scrap"
    REJECT = "reject"
    HOLD_VIOLATION = "hold_violation"
    INVESTIGATION = "investigation"
    INVESTIGATION_END = "investigation_end"
    SPLIT = "split"
    MERGE = "merge"
    QUARANTINE = "quarantine"
    QC_START = "qc_start"
    QC_END = "qc_end"
    APPROVE = "approve"


class State(StrEnum):
    """Unit states (``State.PROCESSING == "processing"``)."""

    PROCESSING = "processing"
    SETUP = "setup"
    DOWN = "down"
    STARVED = "starved"
    BLOCKED = "blocked"
    IDLE = "idle"
    CLEANING = "cleaning"
    WAITING_CLEANING = "waiting_cleaning"
    WAITING_OPERATOR = "waiting_operator"
    OFF_SHIFT = "off_shift"


EVENTS: tuple[str, ...] = tuple(e.value for e in Event)
STATES: tuple[str, ...] = tuple(s.value for s in State)

ACTIVE_STATES = frozenset({"processing", "setup", "down", "cleaning", "waiting_cleaning", "waiting_operator"})
"""States in which a unit is working, being worked on or waiting for a service (active-period method's "active")."""

PLANNED_DOWN_STATES = frozenset({"idle", "off_shift"})
"""States excluded from planned busy time in OEE (no work planned, outside the shift calendar)."""

QUALITY_LOSS_EVENTS = ("scrap", "reject")
"""Events whose quantity is lost to quality: ``scrap`` (units lost from a batch), ``reject`` (a whole batch)."""

COLUMNS: tuple[str, ...] = (
    "time", "replication", "batch", "product", "station", "unit", "event", "state", "quantity", "ideal", "parent",
)  # fmt: skip


@dataclass(frozen=True)
class LogMeta:
    """What the table alone cannot say: the line's structure and the run's window and provenance."""

    line: str
    stations: list[str]
    units: list[int]
    products: list[str]
    batch_sizes: list[float]
    horizon: float
    warmup: float
    replications: int
    seed: int | None = None
    spec_hash: str | None = None
    source: str = "simulation"
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> LogMeta:
        data = json.loads(text)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(f"event log schema version {version} is not supported (this twin reads {SCHEMA_VERSION})")
        return cls(**data)


def genealogy(table: pd.DataFrame) -> pd.DataFrame:
    """Parent-child links of split and merged batches: replication, parent, child, station, time, kind."""
    rows = table[table["event"].isin(["split", "merge"])]
    return pd.DataFrame(
        {
            "replication": rows["replication"].to_numpy(),
            "parent": rows["parent"].to_numpy(),
            "child": rows["batch"].to_numpy(),
            "station": rows["station"].astype(object).to_numpy(),
            "time": rows["time"].to_numpy(),
            "kind": rows["event"].astype(str).to_numpy(),
        }
    )


@dataclass(frozen=True)
class EventLog:
    """An event table and its metadata. ``table`` follows the schema above."""

    table: pd.DataFrame
    meta: LogMeta

    def __len__(self) -> int:
        return len(self.table)

    def replication(self, index: int) -> EventLog:
        """The rows of one replication."""
        return EventLog(self.table[self.table["replication"] == index].reset_index(drop=True), self.meta)

    def end_times(self) -> dict[int, float]:
        """End of observation of each replication (its ``end`` row)."""
        ends = self.table[self.table["event"] == "end"]
        return dict(zip(ends["replication"].astype(int), ends["time"].astype(float), strict=True))

    def to_parquet(self, path: str | Path) -> None:
        """Write the table with its metadata (dictionary-encoded, compressed), in row groups of ``ROW_GROUP``
        rows: a reader of one replication or time window (``read_parquet`` with filters) skips the others."""
        table = pa.Table.from_pandas(self.table, preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata[b"twin"] = self.meta.to_json().encode()
        pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd", row_group_size=ROW_GROUP)

    @classmethod
    def from_parquet(cls, path: str | Path) -> EventLog:
        """Read a table written by ``to_parquet``."""
        table, meta = read_parquet(path)
        return cls(table, meta)


def read_meta(path: str | Path) -> LogMeta:
    """The metadata of an event log written by ``EventLog.to_parquet``, without reading its rows."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"{path}: not a readable event log ({err})") from None
    raw = (schema.metadata or {}).get(b"twin")
    if raw is None:
        raise InputError(f"{path}: not a twin event log (no 'twin' metadata)")
    return LogMeta.from_json(raw)


def read_parquet(
    path: str | Path, columns: tuple[str, ...] = COLUMNS, filters: Any = None
) -> tuple[pd.DataFrame, LogMeta]:
    """Some ``columns`` (default: all) of the rows of an event log that pass ``filters`` (pyarrow's
    ``[(column, op, value)]`` or a ``pyarrow.dataset`` expression), in the schema's dtypes, and the log's
    metadata.

        >>> ends, meta = read_parquet(path, ("replication", "time", "event"), [("event", "=", "end")])
    """
    meta = read_meta(path)
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"not event log columns: {', '.join(unknown)}")
    try:
        table = pq.read_table(path, columns=list(columns), filters=filters)
    except (OSError, pa.ArrowInvalid) as err:
        raise InputError(f"{path}: not a readable event log ({err})") from None
    return normalize_table(table.to_pandas(), meta, columns), meta


def categorical(codes: np.ndarray, categories: list[str] | tuple[str, ...]) -> pd.Categorical:
    """A categorical column from integer codes (-1 = null)."""
    return pd.Categorical.from_codes(codes, dtype=_category_type(tuple(categories)))


@functools.lru_cache(maxsize=256)
def _category_type(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """One (immutable) dtype per list of categories: building one checks the categories, about 100 µs, and every
    replication's table makes four columns (a forecast runs many short replications)."""
    return pd.CategoricalDtype(list(categories))


def normalize_table(table: pd.DataFrame, meta: LogMeta, columns: tuple[str, ...] = COLUMNS) -> pd.DataFrame:
    """Coerce a table (e.g. from a plant feed or Parquet) to the schema's dtypes and categories (``columns``
    of it: default all)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"event log lacks column(s) {', '.join(missing)}")
    categories = {"product": meta.products, "station": meta.stations, "event": list(EVENTS), "state": list(STATES)}
    dtypes = {"time": "float64", "replication": "int32", "batch": "int64", "unit": "int16", "quantity": "float64",
              "ideal": "float64", "parent": "int64"}  # fmt: skip
    out = {}
    for name in columns:
        column = table[name]
        if name in categories:
            out[name] = _categorical(column, list(categories[name]))
        else:
            out[name] = column.astype(dtypes[name])
    return pd.DataFrame(out).reset_index(drop=True)


def _categorical(column: pd.Series, categories: list[str]) -> pd.Categorical:
    """``column`` as a categorical of exactly ``categories`` (values outside them become null)."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # e.g. Parquet's dictionaries: recode, never via objects
        own = [str(c) for c in column.cat.categories]
        if own == categories:
            return pd.Categorical.from_codes(column.cat.codes.to_numpy(), categories=categories)
        index = {c: i for i, c in enumerate(categories)}
        recode = np.array([index.get(c, -1) for c in own] + [-1], dtype=np.int64)  # code -1 (null) stays -1
        return pd.Categorical.from_codes(recode[column.cat.codes.to_numpy()], categories=categories)
    return pd.Categorical(column.astype(object), categories=categories)


def state_intervals(table: pd.DataFrame, ends: dict[int, float] | None = None) -> pd.DataFrame:
    """Every unit's state intervals: replication, station, unit, state, start, end.

    An interval lasts until the unit's next state row, or the replication's ``end`` row.
    """
    if ends is None:
        end_rows = table[table["event"] == "end"]
        ends = dict(zip(end_rows["replication"].astype(int), end_rows["time"].astype(float), strict=True))
    rows = table[table["state"].notna()]
    rep = rows["replication"].to_numpy()
    station = rows["station"].cat.codes.to_numpy().astype(np.int64)
    unit = rows["unit"].to_numpy().astype(np.int64)
    time = rows["time"].to_numpy()
    order = np.lexsort((np.arange(len(rows)), time, unit, station, rep))
    rep, station, unit, time = rep[order], station[order], unit[order], time[order]
    state_codes = rows["state"].cat.codes.to_numpy()[order]
    same_next = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        same_next[:-1] = (rep[1:] == rep[:-1]) & (station[1:] == station[:-1]) & (unit[1:] == unit[:-1])
    end = np.empty(len(order))
    end[:-1] = time[1:]
    end_by_rep = np.full(int(rep.max()) + 1 if len(rep) else 0, np.nan)
    for r, t in ends.items():
        if r < len(end_by_rep):
            end_by_rep[r] = t
    end = np.where(same_next, end, end_by_rep[rep])
    return pd.DataFrame(
        {
            "replication": rep,
            "station": pd.Categorical.from_codes(station, categories=rows["station"].cat.categories),
            "unit": unit,
            "state": pd.Categorical.from_codes(state_codes, categories=rows["state"].cat.categories),
            "start": time,
            "end": end,
        }
    )
