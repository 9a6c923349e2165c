"""A batch record: one batch's way through the line as an engineer reads an eBR summary.

    >>> record = batch_record(log, spec, batch=7, replication=0)
    >>> record.steps              # one row per station: unit, arrive, start, end, left, durations, waits
    >>> record.waits_text(step)   # "waiting operator 1.2 h, cleaning 45 min, busy with other batches 3.0 h"
    >>> record.holds, record.qc   # hold-time checks against the spec's rules; QC tests and release

Everything is read from the event log (the same table for a simulated run and a plant feed) and the
spec's rules; times are hours from the start (``time`` column), turned into dates only when shown
(``twin.clock``). Why a batch waited in front of a unit is the unit's state while it waited:
processing another batch ("busy"), waiting for an operator, a skid or cleaning, off shift, down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.eventlog import EventLog, state_intervals
from twin.trace import trace

WAIT_NAMES = {
    "processing": "busy with other batches",
    "setup": "changeover",
    "down": "unit down",
    "starved": "idle",
    "blocked": "unit blocked by an earlier batch",
    "idle": "idle",
    "cleaning": "cleaning",
    "waiting_cleaning": "waiting for a cleaning skid",
    "waiting_operator": "waiting for an operator",
    "off_shift": "off shift",
}
"""How a wait in front of a unit reads, by the unit's state while the batch waited (``STATES``)."""

CLEAN_EVENTS = ("clean", "major_clean", "line_clearance")


@dataclass(frozen=True)
class Step:
    """The batch at one station."""

    station: str
    unit: int | None
    arrive: float | None
    start: float | None
    end: float | None  # processing finished
    left: float | None  # left the unit (later than ``end`` when blocked)
    waits: dict[str, float]  # reason -> hours, between arrival and start
    cleaning: list[tuple[str, float]]  # (event, time) on the unit since the previous batch left it
    scrapped: float  # units lost at this station
    quantity: float | None  # units out of processing

    @property
    def duration(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start

    @property
    def waited(self) -> float | None:
        return None if self.arrive is None or self.start is None else self.start - self.arrive

    @property
    def blocked(self) -> float | None:
        return None if self.end is None or self.left is None else self.left - self.end


@dataclass(frozen=True)
class HoldCheck:
    """A hold-time rule of the spec applied to the batch."""

    from_station: str
    to_station: str
    limit: float  # hours
    held: float | None  # hours from leaving ``from_station`` to starting at ``to_station``
    violated: bool


@dataclass(frozen=True)
class BatchRecord:
    batch: int
    replication: int
    product: str | None
    ancestors: dict[int, list[int]]  # the genealogy up: each batch's parents (``twin.trace``)
    descendants: dict[int, list[int]]  # and down: each batch's children
    released: float | None  # entered the line
    steps: list[Step]
    holds: list[HoldCheck]
    qc: dict[str, float | None] = field(default_factory=dict)  # quarantine, qc_start, qc_end, approve, reject
    investigations: list[float] = field(default_factory=list)

    @property
    def parents(self) -> list[int]:
        return self.ancestors.get(self.batch, [])

    @property
    def children(self) -> list[int]:
        return self.descendants.get(self.batch, [])

    @property
    def status(self) -> str:
        if self.qc.get("approve") is not None:
            return "released"
        if self.qc.get("reject") is not None or any(s.scrapped and s.quantity == 0 for s in self.steps):
            return "rejected"
        if self.qc.get("quarantine") is not None:
            return "in QC"
        return "in process" if self.steps and self.steps[-1].left is None else "left the line"

    @staticmethod
    def waits_text(step: Step, span: Any) -> str:
        """The reasons of a step's wait, longest first, as ``reason duration`` (``span`` formats hours)."""
        parts = sorted(step.waits.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{reason} {span(hours)}" for reason, hours in parts if hours > 1e-9) or "–"


def _first(rows: pd.DataFrame, event: str) -> float | None:
    hit = rows.loc[rows["event"] == event, "time"]
    return float(hit.iloc[0]) if len(hit) else None


def batch_record(
    log: EventLog, spec: Any, batch: int, replication: int = 0, intervals: pd.DataFrame | None = None
) -> BatchRecord:
    """The record of ``batch`` (``InputError`` naming the batches when there is none such).

    ``intervals``: the replication's state intervals when the caller has them already (a dashboard's cache).
    """
    traced = trace(log, batch, replication)
    table = log.table[log.table["replication"] == replication]
    mine = table[table["batch"] == batch]
    products = mine["product"].dropna()
    product = str(products.iloc[0]) if len(products) else None
    if intervals is None:
        intervals = state_intervals(table, log.end_times())
    steps = [_step(table, intervals, mine, station) for station in log.meta.stations]
    steps = [s for s in steps if s is not None]
    by_station = {s.station: s for s in steps}
    holds = []
    for rule in getattr(spec, "hold_times", ()) or ():
        before, after = by_station.get(rule.from_), by_station.get(rule.to)
        known = before and after and before.left is not None and after.start is not None
        held = after.start - before.left if known else None
        hit = mine[(mine["event"] == "hold_violation") & (mine["station"].astype(object) == rule.to)]
        holds.append(HoldCheck(rule.from_, rule.to, spec.hours(rule.max), held, bool(len(hit))))
    line = mine[mine["station"].isna()]
    qc = {e: _first(line, e) for e in ("quarantine", "qc_start", "qc_end", "approve", "reject")}
    investigations = mine.loc[mine["event"] == "investigation", "time"].astype(float).tolist()
    return BatchRecord(
        batch=batch,
        replication=replication,
        product=product,
        ancestors=traced.ancestors,
        descendants=traced.descendants,
        released=_first(line, "release"),
        steps=steps,
        holds=holds,
        qc=qc,
        investigations=investigations,
    )


def _step(table: pd.DataFrame, intervals: pd.DataFrame, mine: pd.DataFrame, station: str) -> Step | None:
    rows = mine[mine["station"].astype(object) == station]
    if rows.empty:
        return None
    arrive = _first(rows, "arrive")
    start = _first(rows, "start")
    end = _first(rows, "finish")
    left = _first(rows, "leave")
    on_unit = rows[(rows["unit"] >= 0) & rows["event"].isin(["start", "setup", "finish"])]
    unit = int(on_unit["unit"].iloc[0]) if len(on_unit) else None
    waits: dict[str, float] = {}
    cleaning: list[tuple[str, float]] = []
    if unit is not None and arrive is not None and start is not None:
        iv = intervals[(intervals["station"].astype(object) == station) & (intervals["unit"] == unit)]
        lo = np.maximum(iv["start"].to_numpy(), arrive)
        hi = np.minimum(iv["end"].to_numpy(), start)
        for state, hours in zip(iv["state"].astype(str), hi - lo, strict=True):
            if hours > 0:
                reason = WAIT_NAMES.get(state, state.replace("_", " "))
                waits[reason] = waits.get(reason, 0.0) + float(hours)
        unit_rows = table[(table["station"].astype(object) == station) & (table["unit"] == unit)]
        previous = unit_rows[(unit_rows["event"] == "leave") & (unit_rows["time"] <= start)]
        since = float(previous["time"].iloc[-1]) if len(previous) else 0.0
        cleans = unit_rows[unit_rows["event"].isin(CLEAN_EVENTS) & (unit_rows["time"] >= since)]
        cleans = cleans[cleans["time"] <= start]
        cleaning = [(str(e), float(t)) for e, t in zip(cleans["event"], cleans["time"], strict=True)]
    scrap = rows.loc[rows["event"].isin(["scrap", "reject"]), "quantity"].fillna(0).sum()
    done = rows.loc[rows["event"] == "finish", "quantity"]
    return Step(
        station=station,
        unit=unit,
        arrive=arrive,
        start=start,
        end=end,
        left=left,
        waits=waits,
        cleaning=cleaning,
        scrapped=float(scrap),
        quantity=float(done.iloc[0]) if len(done) and pd.notna(done.iloc[0]) else None,
    )


def record_table(record: BatchRecord, clock: Any, span: Any) -> pd.DataFrame:
    """The steps as a table a person reads: calendar times, durations, waits and their reasons, cleaning."""
    rows = []
    for s in record.steps:
        rows.append(
            {
                "station": s.station,
                "unit": "" if s.unit is None else s.unit + 1,
                "arrived": clock.text(s.arrive),
                "start": clock.text(s.start, with_shift=True),
                "end": clock.text(s.end),
                "duration": span(s.duration),
                "waited": span(s.waited),
                "why it waited": BatchRecord.waits_text(s, span),
                "blocked after": span(s.blocked) if s.blocked else "–",
                "cleaning before": ", ".join(f"{e.replace('_', ' ')} {clock.text(t)}" for e, t in s.cleaning) or "–",
                "scrapped units": f"{s.scrapped:,.0f}" if s.scrapped else "–",
            }
        )
    return pd.DataFrame(rows)


def record_hours(record: BatchRecord) -> pd.DataFrame:
    """The steps with hours from the start (for CSV and JSON: exact, machine-readable)."""
    return pd.DataFrame(
        [
            {
                "station": s.station,
                "unit": s.unit,
                "arrive_h": s.arrive,
                "start_h": s.start,
                "end_h": s.end,
                "left_h": s.left,
                "duration_h": s.duration,
                "waited_h": s.waited,
                **{f"wait_{k.replace(' ', '_')}_h": v for k, v in s.waits.items()},
                "scrapped_units": s.scrapped,
            }
            for s in record.steps
        ]
    )
