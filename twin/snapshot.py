"""A line's state at a moment: what each unit does and holds, the buffers, quarantine.

    >>> snap = snapshot_from_log(log, at=1250.0)            # from a run or a plant's event log
    >>> snap.save("state.json"); snap = Snapshot.load("state.json")
    >>> snap.check_line(spec)                                # a snapshot of another line is refused

Times are hours on the run's clock (0 = a Monday 00:00). For a unit it records its state and since
when, the batch it holds, how long that batch has been processed (processing time only, repairs
excluded) and whether its processing is done (waiting to pass the batch on). A plant's log that
begins mid-run (a sync that joined a running plant) cannot say what came before: a batch's release
time is then ``None`` (unknown) and a batch already on its unit is ``started_before_data``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin.errors import InputError
from twin.eventlog import EventLog, LogMeta, state_intervals
from twin.files import write_atomically
from twin.spec.model import LineSpec

SNAPSHOT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchState(_Model):
    product: str
    quantity: float
    released: float | None = Field(
        None,
        description="When the batch (or its earliest ancestor) was released; null: unknown, before the data begin "
        "(a plant joined mid-run).",
    )


class QcState(_Model):
    batch: int
    phase: str = Field(description="waiting (for an analyst), testing, incubating or investigating.")
    since: float = Field(description="When the batch entered its phase.")


class UnitState(_Model):
    station: str
    unit: int
    state: str
    since: float = Field(description="When the unit entered its state.")
    batch: int = Field(-1, description="Batch on the unit, -1 for none.")
    elapsed: float = Field(0.0, description="Hours the batch has been processed so far (repairs excluded).")
    processed: bool = Field(False, description="Processing is done: the batch waits to be passed on.")
    started_before_data: bool = Field(
        False,
        description="The batch was already on the unit when the plant's data begin (a sync that joined mid-run): "
        "``elapsed`` is only what the data saw, a lower bound.",
    )
    activity: str = Field("", description="The unit's last event (start, setup, line_clearance, clean, ...).")
    previous: str | None = Field(None, description="Product of the unit's last finished batch.")


class Snapshot(_Model):
    """The state of a line at ``time``."""

    version: int = SNAPSHOT_VERSION
    line: str
    stations: list[str]
    spec_hash: str | None = None
    source: str = ""
    time: float
    units: list[UnitState]
    buffers: dict[str, list[int]] = Field(default_factory=dict, description="Waiting batches per station, in order.")
    quarantine: list[QcState] = Field(default_factory=list)
    batches: dict[int, BatchState] = Field(default_factory=dict, description="Every batch above.")
    released: int = Field(0, description="Batches released since the start (position in the plan).")
    releases_seen: list[str] | None = Field(
        None,
        description="Plant logs, which may begin mid-run: the products of the last batches released in the data, "
        "in order, to find the place in a repeating plan (null: the data begin at the line's start).",
    )
    next_batch: int = Field(0, description="First free batch id.")
    labels: dict[int, str] = Field(default_factory=dict, description="The plant's own ids of the batches (plant logs).")

    def save(self, path: str | Path) -> Path:
        """Write as JSON, atomically."""
        return write_atomically(path, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        """Read a snapshot file; ``InputError`` naming the file and field for anything wrong."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such snapshot file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not a snapshot ({err})") from None
        if isinstance(data, dict) and data.get("version") not in (None, SNAPSHOT_VERSION):
            raise InputError(f"{path}: snapshot version {data.get('version')} is not supported (this twin reads 1)")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise InputError(f"{path}: {where}: {first['msg']}") from None

    def check_line(self, spec: LineSpec, source: str = "snapshot") -> None:
        """Refuse a snapshot taken of another line (other name or other stations)."""
        stations = [s.name for s in spec.stations]
        if self.line != spec.name or self.stations != stations:
            raise InputError(
                f"{source}: a snapshot of line {self.line!r} ({', '.join(self.stations)}), "
                f"not of {spec.name!r} ({', '.join(stations)})"
            )
        units = {(s.name, u) for s in spec.stations for u in range(s.units)}
        extra = [f"{u.station}[{u.unit}]" for u in self.units if (u.station, u.unit) not in units]
        if extra:
            raise InputError(f"{source}: units {', '.join(extra)} are not in line {spec.name!r}")
        products = {p.name for p in spec.products}
        unknown = sorted({b.product for b in self.batches.values()} - products)
        if self.quarantine and spec.qc is None:
            raise InputError(f"{source}: batches in quarantine, but line {spec.name!r} has no QC lab")
        if unknown:
            raise InputError(f"{source}: products {', '.join(unknown)} are not made on line {spec.name!r}")


_ON_UNIT = {"setup", "start", "finish", "scrap", "split", "merge", "line_clearance", "gowning"}
_IN_QC = {"quarantine", "qc_start", "qc_end", "investigation"}
_GONE = {"approve"}


def snapshot_from_log(log: EventLog, at: float, replication: int = 0, source: str = "") -> Snapshot:
    """The state of a line at time ``at`` as its event log tells it."""
    table = log.table[(log.table["replication"] == replication) & (log.table["time"] <= at)]
    if table.empty:
        raise InputError(f"no rows at or before {at} h in replication {replication}")
    meta = log.meta
    rows = table[table["batch"] >= 0]
    events = rows["event"].astype(str)
    stations = rows["station"].astype(object)

    # where each batch is: the last row that moved it
    moves = rows[~events.isin(["release", "hold_violation", "fail", "repair", "state", "end"])]
    last = moves.groupby("batch", sort=True).tail(1)
    gone = set(rows.loc[events.isin(["approve"]) | (events.eq("reject") & stations.isna()), "batch"])
    gone |= set(rows.loc[events.eq("reject") & stations.notna(), "batch"])  # rejected or scrapped at a station
    consumed = set(rows.loc[events.isin(["split", "merge"]), "parent"])
    buffers: dict[str, list[int]] = {}
    quarantine: list[int] = []
    on_unit: dict[tuple[str, int], tuple[int, str]] = {}
    for batch, event, station, unit in zip(
        last["batch"], last["event"].astype(str), last["station"].astype(object), last["unit"], strict=True
    ):
        batch = int(batch)
        if batch in gone or batch in consumed:
            continue
        if event in _IN_QC:
            quarantine.append(batch)
        elif event == "arrive" or event == "investigation_end":
            buffers.setdefault(str(station), []).append(batch)
        elif event in _ON_UNIT and isinstance(station, str):
            on_unit[(station, int(unit))] = (batch, event)

    units = _unit_states(table, meta.stations, meta.units, on_unit, at, joined=meta.source == "plant")
    live = {b for b, _ in on_unit.values()} | set(quarantine) | {b for w in buffers.values() for b in w}
    qc_rows = table[table["event"].isin(["quarantine", "qc_start", "qc_end", "investigation"])]
    qc_last = qc_rows[qc_rows["batch"].isin(quarantine)].groupby("batch").tail(1)
    phases = {"quarantine": "waiting", "qc_start": "testing", "qc_end": "incubating", "investigation": "investigating"}
    return Snapshot(
        line=meta.line,
        stations=list(meta.stations),
        spec_hash=meta.spec_hash,
        source=source,
        time=float(at),
        units=units,
        buffers=buffers,
        quarantine=[
            QcState(batch=int(b), phase=phases[str(e)], since=float(t))
            for b, e, t in sorted(zip(qc_last["batch"], qc_last["event"].astype(str), qc_last["time"], strict=True))
        ],
        batches=_batch_states(table, live, meta),
        released=int((table["event"] == "release").sum()),
        releases_seen=_releases_seen(table) if meta.source == "plant" else None,
        next_batch=int(table["batch"].max()) + 1 if (table["batch"] >= 0).any() else 0,
        labels=_labels(meta, live),
    )


RELEASES_SEEN = 64  # the last releases a snapshot of a plant keeps: enough to place any sensible plan


def _releases_seen(table: pd.DataFrame) -> list[str]:
    """Products of the last ``RELEASES_SEEN`` releases in the data, in order."""
    rows = table[table["event"] == "release"].tail(RELEASES_SEEN)
    return [str(p) for p in rows["product"]]


def _labels(meta: LogMeta, batches: set[int]) -> dict[int, str]:
    """The plant's ids of ``batches``, where the log came from a plant (its ``plant_batches``)."""
    plant = meta.extra.get("plant_batches") or []
    return {b: str(plant[b]) for b in sorted(batches) if 0 <= b < len(plant)}


def _unit_states(
    table: pd.DataFrame,
    stations: list[str],
    units: list[int],
    on_unit: dict[tuple[str, int], tuple[int, str]],
    at: float,
    joined: bool = False,
) -> list[UnitState]:
    """Each unit's state at ``at``; ``joined``: the log is a plant's, whose data begin at 0 with the line running
    (a batch "started" at 0 was there before)."""
    intervals = state_intervals(table, {int(r): at for r in table["replication"].unique()})
    states = []
    for station, count in zip(stations, units, strict=True):
        for unit in range(count):
            mine = intervals[(intervals["station"] == station) & (intervals["unit"] == unit)]
            if mine.empty:
                states.append(UnitState(station=station, unit=unit, state="starved", since=0.0))
                continue
            current = mine.iloc[-1]
            batch, event = on_unit.get((station, unit), (-1, ""))
            own = table[(table["station"] == station) & (table["unit"] == unit)]
            activity = own["event"].astype(str).iloc[-1] if len(own) else ""
            finished = own[own["event"] == "finish"]
            previous = str(finished["product"].iloc[-1]) if len(finished) else None
            elapsed, processed, before = 0.0, event in ("finish", "scrap", "split"), False
            if batch >= 0 and not processed:
                started = table[(table["batch"] == batch) & (table["station"] == station) & (table["event"] == "start")]
                if len(started):
                    since = float(started["time"].iloc[-1])
                    before = joined and since <= 0.0
                    busy = mine[(mine["state"] == "processing") & (mine["end"] > since)]
                    elapsed = float((busy["end"] - np.maximum(busy["start"], since)).sum())
            states.append(
                UnitState(
                    station=station,
                    unit=unit,
                    state=str(current["state"]),
                    since=float(current["start"]),
                    batch=batch,
                    elapsed=elapsed,
                    processed=processed,
                    started_before_data=before,
                    activity=activity,
                    previous=previous,
                )
            )
    return states


def _batch_states(table: pd.DataFrame, live: set[int], meta: LogMeta) -> dict[int, BatchState]:
    """Product, current units (after losses, splits and merges) and release time of live batches."""
    from twin.kpis.columns import by_replication
    from twin.kpis.flow import lookup, origins

    _, cols = next(by_replication(table, meta.stations, meta.products))
    keys, released = origins(cols)
    rows = table[table["batch"].isin(live)]
    sizes = dict(zip(meta.products, meta.batch_sizes, strict=True))
    result = {}
    for batch, group in rows.groupby("batch"):
        product = group["product"].dropna()
        if product.empty:
            continue
        name = str(product.iloc[-1])
        carrying = group[group["event"].isin(["leave", "split", "merge"])]["quantity"].dropna()
        result[int(batch)] = BatchState(
            product=name,
            quantity=float(carrying.iloc[-1]) if len(carrying) else float(sizes[name]),
            released=_known(float(lookup(keys, released, np.array([batch]), np.nan)[0])),
        )
    return result


def _known(value: float) -> float | None:
    """``value``, or None where it is not known (NaN)."""
    return None if np.isnan(value) else value
