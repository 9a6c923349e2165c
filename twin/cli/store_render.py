"""Rich tables and plain records for the run store and sweep commands."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.markup import escape
from rich.table import Table

from twin.cli.render import LINE_ROWS, _delta, _value
from twin.kpis.line import LINE_KPI, constraint_of, station_factor_label
from twin.stats import Interval

SHORT_ID = 12
UNITS = {key: (label, unit, digits) for label, key, unit, digits in LINE_ROWS}


def plain(value: Any) -> Any:
    """A catalog cell as JSON-ready data (timestamps as ISO text, NaN as None, maps as dicts)."""
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a catalog frame as JSON-ready dicts."""
    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A catalog frame whose lists and maps are JSON text (one CSV cell each)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = [
                json.dumps(plain(v)) if isinstance(v, Mapping | list | tuple | np.ndarray) else plain(v)
                for v in out[column]
            ]
    return out


def _mean_ci(row: Mapping[str, Any], kpi: str, digits: int, percent: bool = False) -> str:
    mean, low, high = (plain(row.get(k)) for k in (kpi, f"{kpi}_low", f"{kpi}_high"))
    if mean is None:
        return "—"
    if low is None or high is None:
        return _value(mean, digits, percent)
    return f"{_value(mean, digits, percent)} ± {_value((high - low) / 2, digits, percent)}"


def _row(table: Table, *cells: str) -> None:
    """Add a row of plain text (brackets in names and units are not markup)."""
    table.add_row(*(escape(c) for c in cells))


def _column(table: Table, header: str, **options: Any) -> None:
    table.add_column(escape(header), **options)


def _created(value: Any) -> str:
    value = plain(value)
    return value[:19].replace("T", " ") if isinstance(value, str) else "—"


def runs_table(frame: pd.DataFrame, title: str) -> Table:
    """Catalog rows, narrow enough for 80 columns: id, time, scenario, means of the main KPIs, sweep.

    The line and sweep columns appear only when they tell rows apart (or say something).
    """
    lines = frame["line"].dropna().unique() if len(frame) else []
    with_line = len(lines) > 1
    with_sweep = bool(len(frame)) and frame["sweep_id"].notna().any()
    table = Table(title=escape(title + (f" (line {lines[0]})" if len(lines) == 1 else "")),
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # fmt: skip
    _column(table, "run", no_wrap=True)
    _column(table, "created", no_wrap=True)
    if with_line:
        _column(table, "line", overflow="fold")
    _column(table, "scenario", overflow="fold")
    for name in ("reps", "batches/h", "OEE %"):
        _column(table, name, justify="right", no_wrap=True)
    _column(table, "bottleneck", overflow="fold")
    if with_sweep:
        _column(table, "sweep", no_wrap=True)
    for row in frame.to_dict(orient="records"):
        cells = [str(row["run_id"])[:8], _created(row["created"])[5:16]]
        if with_line:
            cells.append(str(row["line"]))
        cells += [
            str(row["scenario"]),
            str(plain(row["replications"])),
            _value(plain(row["throughput_per_hour"]), 4),
            _value(plain(row["oee"]), 1, percent=True),
            str(plain(row["bottleneck"]) or "—"),
        ]
        if with_sweep:
            cells.append((plain(row["sweep_id"]) or "—")[:8])
        _row(table, *cells)
    return table


def info_table(info: Mapping[str, Any], path: str) -> Table:
    """A run's record (``run.json``) as key/value rows."""
    table = Table(title=escape(f"run {info['run_id']}"), box=box.SIMPLE_HEAD, pad_edge=False, show_header=False)
    _column(table, "field", no_wrap=True)
    _column(table, "value", overflow="fold")
    order = ("created", "line", "scenario", "sweep_id", "spec_hash", "seed", "replications", "horizon", "warmup",
             "overrides", "tags", "twin_version")  # fmt: skip
    for key in order:
        value = info.get(key)
        if value in (None, [], {}):
            continue
        if key in ("horizon", "warmup"):
            value = f"{value:,.2f}".rstrip("0").rstrip(".") + " h"
        elif key == "overrides":
            value = "\n".join(value)
        elif key == "tags":
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        _row(table, key, str(value))
    _row(table, "folder", path)
    return table


SHORT_HEADERS = {"throughput_per_hour": "batches/h", "units_per_hour": "units/h", "oee": "OEE %",
                 "lead_time_hours": "lead h", "lead_time_p50_hours": "lead p50 h", "lead_time_p90_hours": "lead p90 h",
                 "wip": "WIP"}  # fmt: skip


def ranked_table(frame: pd.DataFrame, title: str, rank: str) -> Table:
    """A sweep's points best first: the ranked KPI with its 95% CI, then the means of the main KPIs.

    Narrow enough for an 80-column terminal; ``--json`` has every figure.
    """
    table = Table(title=escape(title), box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    _column(table, "#", justify="right", no_wrap=True)
    _column(table, "scenario", overflow="fold")
    _column(table, f"{SHORT_HEADERS.get(rank, rank)} ▼", justify="right", no_wrap=True)
    shown = [k for k in ("throughput_per_hour", "oee", "lead_time_hours", "wip") if k != rank]
    for key in shown:
        _column(table, SHORT_HEADERS[key], justify="right", no_wrap=True)
    _column(table, "bottleneck", overflow="fold")
    _column(table, "run", no_wrap=True)
    values = frame.attrs.get("rank_values", [])
    for i, row in enumerate(frame.to_dict(orient="records")):
        if rank in UNITS:
            _, unit, digits = UNITS[rank]
            ranked = _mean_ci(row, rank, digits, percent=unit == "%")
        else:  # STATION.oee / STATION.utilization: a mean per station
            ranked = _value(plain(values[i]) if i < len(values) else None, 1, percent=True)
        cells = [str(row["rank"]), str(row["scenario"]), ranked]
        for key in shown:
            _, unit, digits = UNITS[key]
            cells.append(_value(plain(row[key]), digits, percent=unit == "%"))
        cells += [str(plain(row["bottleneck"]) or "—"), str(row["run_id"])[:8]]
        _row(table, *cells)
    return table


def changes_table(changes: list[tuple[str, Any, Any]], a: str, b: str) -> Table:
    """Spec and settings differences, one path a row."""
    table = Table(title=escape("What differs"), box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    _column(table, "field", overflow="fold")
    _column(table, a, overflow="fold")
    _column(table, b, overflow="fold")
    for path, va, vb in changes:
        _row(table, path, _show(va), _show(vb))
    return table


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def delta_table(
    summaries: tuple[Mapping[str, Any], Mapping[str, Any]],
    means: tuple[Mapping[str, float], Mapping[str, float]],
    deltas: Mapping[str, Interval],
    labels: tuple[str, str],
    how: str,
) -> Table:
    """KPIs of two runs and the delta b - a with its 95% CI."""
    title = escape(f"KPIs: {labels[1]} − {labels[0]} ({how}, 95% CI)")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    _column(table, "KPI", overflow="fold")
    for header in (labels[0], labels[1], f"Δ {labels[1]} − {labels[0]}", "Δ %"):
        _column(table, header, justify="right", no_wrap=True)
    for metric, delta in deltas.items():
        kpi = LINE_KPI.get(metric)
        if kpi is not None and kpi.optional and all(plain(m.get(metric)) in (None, 0, 0.0) for m in means):
            continue  # a quality or release KPI neither run has
        if metric in UNITS:
            label, unit, digits = UNITS[metric]
        else:
            label, unit, digits = station_factor_label(metric), "%", 1
        percent = unit == "%"
        a, b = plain(means[0].get(metric)), plain(means[1].get(metric))
        rel = "—" if a in (None, 0) or b is None else f"{(b - a) / abs(a) * 100:+.1f}"
        _row(table, f"{label} [{unit}]", _value(a, digits, percent), _value(b, digits, percent),
                      _delta(delta, digits, percent), rel)  # fmt: skip
    _row(table, "OEE valued at", *(str(constraint_of(s) or "—") for s in summaries), "", "")
    bottlenecks = [str(s["bottleneck"]["station"]) for s in summaries]
    _row(table, "Bottleneck", *bottlenecks, "", "")
    return table
