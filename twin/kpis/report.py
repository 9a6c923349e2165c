"""KPIs of a run: pure functions of its event log.

    >>> report = compute_kpis(log)
    >>> report.summary["throughput_per_hour"]        # {"mean": ..., "ci95": [lo, hi]} (twin.kpis.summary)
    >>> report.per_replication["lead_time_hours"]    # one value per replication

The window of each replication runs from the warm-up to its ``end`` row; every KPI is computed
per replication, then averaged with a 95% Student-t confidence interval across replications.
Line OEE is the line's good output valued at its constraint (``line_oee``): the station that
would need the most ideal hours for the good units (tablets, vials) that left the line in the
window, so that lots made by splits and merges count in the same units as whole batches; never
more than what that station itself earned in the window. ``summary["constraint"]`` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from twin.eventlog import STATES, EventLog, LogMeta, normalize_table
from twin.kpis.bottleneck import Bottlenecks, bottlenecks
from twin.kpis.columns import EVENT, STATE, by_replication
from twin.kpis.flow import Flow, flow
from twin.kpis.quality import Quality, quality
from twin.kpis.states import StationStates, credited_ideal, station_states, unit_intervals
from twin.kpis.summary import STATION_FACTORS, Interval, KpiSummary, StationKpis
from twin.stats import interval

# Stations whose needed hours agree to this relative tolerance tie (the same ideal hours per unit, no yield between
# them: equal in exact arithmetic, apart by rounding); the first of them is the line OEE's constraint.
OEE_TIE = 1e-9
SCALARS = ("throughput_per_hour", "units_per_hour", "lead_time_hours", "wip", "oee")


@dataclass(frozen=True)
class KpiReport:
    """Per-replication KPIs (a flat table) and their summary (JSON-ready, typed by ``KpiSummary``)."""

    per_replication: pd.DataFrame
    summary: KpiSummary


def compute_kpis(log: EventLog, warmup: float | None = None) -> KpiReport:
    """All KPIs of a log; ``warmup`` (hours) overrides the log's own."""
    meta = log.meta
    start = meta.warmup if warmup is None else float(warmup)
    rows = []
    for replication, cols in by_replication(log.table, meta.stations, meta.products):
        end_rows = cols.time[cols.event == EVENT["end"]]
        end = float(end_rows[-1]) if len(end_rows) else float(cols.time.max())
        if end <= start:
            continue
        rows.append(_replication_kpis(replication, cols, meta.stations, meta.units, start, end))
    per_replication = pd.DataFrame(rows).set_index("replication") if rows else pd.DataFrame()
    return KpiReport(per_replication, summarize(per_replication, log.meta, start))


def clip_log(log: EventLog, start: float, end: float) -> EventLog:
    """The log as a window (start, end] of it reads: its rows up to ``end``, each replication closed by an ``end``
    row at ``end``, the warm-up at ``start``; ``compute_kpis(clip_log(log, a, b))`` are the KPIs of (a, b]
    (what came before ``start`` still says each unit's state and each batch's origin at ``start``)."""
    table = log.table
    keep = table[(table["time"] <= end) & (table["event"] != "end")]
    replications = np.unique(table["replication"].to_numpy())
    ends = pd.DataFrame(
        {
            "time": np.full(len(replications), float(end)),
            "replication": replications,
            "batch": -1,
            "product": None,
            "station": None,
            "unit": -1,
            "event": "end",
            "state": None,
            "quantity": np.nan,
            "ideal": np.nan,
            "parent": -1,
        }
    )
    parts = [keep.astype({c: object for c in ("product", "station", "event", "state")}), ends]
    meta = replace(log.meta, warmup=float(start), horizon=float(end))
    table = pd.concat(parts, ignore_index=True).sort_values(["replication", "time"], kind="stable")
    return EventLog(normalize_table(table, meta), meta)


def _replication_kpis(
    replication: int, cols: Any, stations: list[str], units: list[int], start: float, end: float
) -> dict[str, Any]:
    f = flow(cols, len(stations) - 1, start, end)
    q = quality(cols, f.origin, start, end)
    intervals = unit_intervals(cols, start, end)
    credit = credited_ideal(cols, start, end)
    equipment = station_states(cols, intervals, units, start, end, credit)
    b = bottlenecks(intervals, units, start, end)
    oee, constraint = line_oee(cols, units, f.exit_products, f.exit_quantity, start, end, credit, intervals)
    return replication_row(replication, stations, units, start, end, f, q, equipment, b, (oee, constraint))


def replication_row(
    replication: int,
    stations: list[str],
    units: list[int],
    start: float,
    end: float,
    f: Flow,
    q: Quality,
    equipment: StationStates,
    b: Bottlenecks,
    valued: tuple[float, int],
) -> dict[str, Any]:
    """One replication's KPIs (a row of ``KpiReport.per_replication``) from its flow, quality, equipment and
    bottleneck figures over the window (start, end] and its line OEE with the station it is valued at; both
    ``compute_kpis`` and the running accumulators (``twin.kpis.accumulate``) end here."""
    oee, constraint = valued
    s = equipment.stations
    row: dict[str, Any] = {
        "replication": replication,
        "window_start": start,
        "window_end": end,
        "throughput_per_hour": f.batches_per_hour,
        "units_per_hour": f.units_per_hour,
        "lead_time_hours": float(f.lead_times.mean()) if len(f.lead_times) else np.nan,
        "lead_time_p50_hours": float(np.quantile(f.lead_times, 0.5)) if len(f.lead_times) else np.nan,
        "lead_time_p90_hours": float(np.quantile(f.lead_times, 0.9)) if len(f.lead_times) else np.nan,
        "wip": f.wip,
        "oee": oee,
        "constraint": stations[constraint] if constraint >= 0 else None,
        "bottleneck": stations[b.main] if b.main >= 0 else None,
        "rejected_batches": q.rejected_batches,
        "lost_units": q.lost_units,
        "hold_violations": q.hold_violations,
        "released_per_hour": q.released_per_hour,
        "release_lead_time_hours": float(q.release_lead_times.mean()) if len(q.release_lead_times) else np.nan,
        "release_lead_time_p90_hours": float(np.quantile(q.release_lead_times, 0.9))
        if len(q.release_lead_times)
        else np.nan,
        "qc_time_hours": float(q.qc_times.mean()) if len(q.qc_times) else np.nan,
        "quarantine": q.quarantine,
        "quarantine_max": q.quarantine_max,
        "qc_rejected": q.qc_rejected,
    }
    for j, name in enumerate(stations):
        for k, state in enumerate(STATES):
            row[f"{name}.state.{state}"] = s.fractions[j, k]
        for factor in STATION_FACTORS:
            row[f"{name}.{factor}"] = getattr(s, factor)[j]
        row[f"{name}.bottleneck_sole"] = b.sole[j]
        row[f"{name}.bottleneck_shifting"] = b.shifting[j]
    first = 0
    for name, count in zip(stations, units, strict=True):
        for u in range(count):
            for k, state in enumerate(STATES):
                row[f"{name}.unit{u}.state.{state}"] = equipment.units.fractions[first + u, k]
            for factor in STATION_FACTORS:
                row[f"{name}.unit{u}.{factor}"] = getattr(equipment.units, factor)[first + u]
        first += count
    return row


def line_oee(
    cols: Any,
    units: list[int],
    exit_products: np.ndarray,
    exit_quantity: np.ndarray,
    start: float,
    end: float,
    credit: np.ndarray | None = None,
    intervals: Any = None,
) -> tuple[float, int]:
    """Line OEE over the window and the station it is valued at (-1: none).

    Hours per unit (tablet, vial) of each station and product are its ideal hours over the units it
    finished (so lots made by splits and merges are valued in the same units as whole batches),
    divided by its parallel units. The constraint is the station that would need the most hours for
    the good units that left the line in the window (of stations within a relative ``OEE_TIE`` of
    it, the first); line OEE is those hours over the window, but never more than the ideal hours the
    constraint itself earned in the window (output drained from buffers filled before the window, or
    a batch the window holds only the end of, is not the window's work). It lies in [0, 1] by
    construction. ``credit`` and ``intervals`` (from ``credited_ideal`` and ``unit_intervals``) spare
    computing them again.
    """
    finished = (cols.event == EVENT["finish"]) & (cols.station >= 0) & (cols.product >= 0)
    if not finished.any():
        return np.nan, -1
    good = exit_products >= 0
    n_products = int(max(cols.product[finished].max(), exit_products.max(initial=-1))) + 1
    known = finished & ~np.isnan(cols.ideal) & (cols.quantity > 0)
    ideal_sum = np.zeros((len(units), n_products))
    quantity_sum = np.zeros((len(units), n_products))
    np.add.at(ideal_sum, (cols.station[known], cols.product[known]), cols.ideal[known])
    np.add.at(quantity_sum, (cols.station[known], cols.product[known]), cols.quantity[known])
    made = np.zeros(n_products)
    np.add.at(made, exit_products[good], np.nan_to_num(exit_quantity[good]))
    busy = unit_intervals(cols, start, end) if intervals is None else intervals

    def earned(constraint: int) -> tuple[float, float]:
        credited = credited_ideal(cols, start, end) if credit is None else credit
        hours = float(credited[cols.station == constraint].sum())
        processing = (busy.station == constraint) & (busy.state == STATE["processing"])
        for unit in range(units[constraint]):  # a batch still in process at the window's end: its hours so far
            mine = (cols.station == constraint) & (cols.unit == unit) & (cols.batch >= 0)
            began = np.flatnonzero(mine & (cols.event == EVENT["start"]))
            if len(began) and not (mine[began[-1] :] & (cols.event[began[-1] :] == EVENT["finish"])).any():
                since = cols.time[began[-1]]
                tail = processing & (busy.unit == unit) & (busy.end > since)
                hours += float((busy.end - np.maximum(busy.start, since))[tail].sum())
        return hours, float((busy.end - busy.start)[processing].sum())

    return valued_oee(ideal_sum, quantity_sum, units, made, earned, end - start)


def valued_oee(
    ideal_sum: np.ndarray,
    quantity_sum: np.ndarray,
    units: list[int],
    made: np.ndarray,
    earned: Callable[[int], tuple[float, float]],
    length: float,
) -> tuple[float, int]:
    """Line OEE and its constraint (-1: none) from the ideal hours and quantities of every ``finish`` [station,
    product], the good units ``made`` of each product that left in the window, and ``earned(constraint)``: the
    ideal hours that station earned in the window (batches in process counted so far) and its processing hours."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_unit = np.where(quantity_sum > 0, ideal_sum / quantity_sum, 0.0) / np.asarray(units, dtype=float)[:, None]
    needed = np.zeros(per_unit.shape[0])  # hours each station would need for the line's good output
    for q, units_made in enumerate(made):  # product by product, not a BLAS product: the same bits on every machine
        needed = needed + per_unit[:, q] * units_made
    if not needed.any():
        return 0.0, -1
    constraint = int(np.argmax(needed >= needed.max() * (1 - OEE_TIE)))  # the first of the stations that tie
    hours, processing = earned(constraint)
    return float(min(needed[constraint], min(hours, processing) / units[constraint]) / length), constraint


def summarize(per_replication: pd.DataFrame, meta: LogMeta, start: float) -> KpiSummary:
    """Means and 95% confidence intervals across replications, in the CLI's JSON shape."""
    df = per_replication

    def ci(column: str) -> Interval:
        out: Interval = interval(df[column].to_numpy(dtype=float) if column in df else []).as_dict()  # type: ignore[assignment]
        # every KPI is a count, a rate, a time or a share: its interval stays >= 0, and a share's <= 1
        top = 1.0 if column == "oee" or column.rsplit(".", 1)[-1] in STATION_FACTORS else np.inf
        out["ci95"] = [None if x is None else float(min(max(x, 0.0), top)) for x in out["ci95"]]
        return out

    def mean(column: str) -> float | None:
        values = df[column].to_numpy(dtype=float) if column in df else np.empty(0)
        known = values[~np.isnan(values)]
        return float(known.mean()) if len(known) else None

    lead = {**ci("lead_time_hours"), "p50": ci("lead_time_p50_hours"), "p90": ci("lead_time_p90_hours")}
    main_counts = df["bottleneck"].value_counts() if "bottleneck" in df else pd.Series(dtype=int)
    stations: dict[str, StationKpis] = {}
    shares = {}
    for j, name in enumerate(meta.stations):
        shares[name] = (mean(f"{name}.bottleneck_sole") or 0.0) + (mean(f"{name}.bottleneck_shifting") or 0.0)
        stations[name] = {  # type: ignore[typeddict-item]  # the factors, spread from STATION_FACTORS
            "units": meta.units[j],
            "states": {state: mean(f"{name}.state.{state}") for state in STATES},
            **{factor: ci(f"{name}.{factor}") for factor in STATION_FACTORS},
            "per_unit": [
                {
                    "unit": u,
                    "states": {state: mean(f"{name}.unit{u}.state.{state}") for state in STATES},
                    **{factor: ci(f"{name}.unit{u}.{factor}") for factor in STATION_FACTORS},
                }
                for u in range(meta.units[j])
            ],
            "bottleneck": {
                "sole": mean(f"{name}.bottleneck_sole"),
                "shifting": mean(f"{name}.bottleneck_shifting"),
                "replications": int(main_counts.get(name, 0)),
            },
        }
    main = max(meta.stations, key=lambda n: (int(main_counts.get(n, 0)), shares[n])) if len(df) else None
    constraint_counts = df["constraint"].value_counts() if "constraint" in df else pd.Series(dtype=int)
    constraint = (  # the station it is valued at in the most replications (ties: the earlier station)
        max(meta.stations, key=lambda n: int(constraint_counts.get(n, 0))) if len(constraint_counts) else None
    )
    return {  # type: ignore[typeddict-item]  # lead: LeadTime, built from ci() above
        "line": meta.line,
        "spec_hash": meta.spec_hash,
        "seed": meta.seed,
        "replications": len(df),
        "window_hours": [start, mean("window_end")],
        "throughput_per_hour": ci("throughput_per_hour"),
        "units_per_hour": ci("units_per_hour"),
        "lead_time_hours": lead,
        "wip": ci("wip"),
        "oee": ci("oee"),
        "constraint": {
            "station": constraint,
            "replications": {name: int(constraint_counts.get(name, 0)) for name in meta.stations},
        },
        "quality": {
            "rejected_batches": ci("rejected_batches"),
            "lost_units": ci("lost_units"),
            "hold_violations": ci("hold_violations"),
        },
        "release": {
            "released_per_hour": ci("released_per_hour"),
            "lead_time_hours": {**ci("release_lead_time_hours"), "p90": ci("release_lead_time_p90_hours")},
            "qc_time_hours": ci("qc_time_hours"),
            "quarantine": ci("quarantine"),
            "quarantine_max": ci("quarantine_max"),
            "rejected_batches": ci("qc_rejected"),
        },
        "stations": stations,
        "bottleneck": {
            "station": main,
            "share": shares,
            "replications": {name: int(main_counts.get(name, 0)) for name in meta.stations},
        },
    }
