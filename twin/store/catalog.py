"""The catalog: one Parquet row per stored run, read together with DuckDB.

    >>> table = catalog_entry(result, info)          # a one-row pyarrow Table
    >>> with catalog_connection(store_root) as con:  # DuckDB with a view ``runs``
    ...     con.execute("SELECT scenario, throughput_per_hour FROM runs").fetchdf()

Each run folder carries its own entry (``entry.parquet``), written before the folder is renamed
into place, so a run and its catalog row appear together in one step and no two writers ever
touch the same file. The columns:

=======================  ==========================================================================
column                   meaning
=======================  ==========================================================================
run_id                   the run's id (the name of its folder)
created                  when it was stored (UTC, microseconds)
line, scenario           the line's name; the scenario's name ("baseline" unless named)
spec_hash                SHA-256 of the resolved spec
point_key                hash of (spec_hash, seed, replications, horizon, warm-up): equal keys,
                         identical results; a resumed sweep skips the points whose key is stored
sweep_id                 the sweep that stored the run (null for a single run)
seed, replications       run settings
horizon, warmup          hours
overrides                the ``path=value`` overrides on top of the spec file (list of text)
tags                     free labels, text to text (``tags['study']``)
twin_version             version of twin that ran it
<KPI>, <KPI>_low/_high   mean and 95% CI of each line KPI in ``KPI_COLUMNS``
bottleneck               the line's bottleneck station
station_oee              station -> mean OEE (``station_oee['coating']``)
station_utilization      station -> mean utilization
=======================  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from twin.kpis.line import LINE_KPI, LINE_KPIS, stat

if TYPE_CHECKING:
    import duckdb

ENTRY_FILE = "entry.parquet"
RUNS_DIR = "runs"

KPI_COLUMNS: dict[str, bool] = {k.column: k.higher_is_better for k in LINE_KPIS if k.stored}
"""Line KPI -> True when higher is better (the order a ranking puts first), for the KPIs the catalog keeps."""

_FIELDS: list[tuple[str, pa.DataType]] = [
    ("run_id", pa.string()),
    ("created", pa.timestamp("us")),
    ("line", pa.string()),
    ("scenario", pa.string()),
    ("spec_hash", pa.string()),
    ("point_key", pa.string()),
    ("sweep_id", pa.string()),
    ("seed", pa.int64()),
    ("replications", pa.int32()),
    ("horizon", pa.float64()),
    ("warmup", pa.float64()),
    ("overrides", pa.list_(pa.string())),
    ("tags", pa.map_(pa.string(), pa.string())),
    ("twin_version", pa.string()),
]
for _kpi in KPI_COLUMNS:
    _FIELDS += [(_kpi, pa.float64()), (f"{_kpi}_low", pa.float64()), (f"{_kpi}_high", pa.float64())]
_FIELDS += [
    ("bottleneck", pa.string()),
    ("station_oee", pa.map_(pa.string(), pa.float64())),
    ("station_utilization", pa.map_(pa.string(), pa.float64())),
]
ENTRY_SCHEMA = pa.schema(_FIELDS)
COLUMNS: tuple[str, ...] = tuple(ENTRY_SCHEMA.names)


def kpi_stat(summary: Mapping[str, Any], kpi: str) -> dict[str, Any]:
    """The ``{"mean", "ci95"}`` of a line KPI in a KPI summary (``lead_time_p90_hours`` included)."""
    return dict(stat(summary, LINE_KPI[kpi]))


def _number(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def catalog_entry(summary: Mapping[str, Any], info: Mapping[str, Any], created: datetime) -> pa.Table:
    """The one-row catalog table of a run: its ``run.json`` fields and its KPI ``summary``."""
    row: dict[str, Any] = {
        "run_id": info["run_id"],
        "created": created,
        "line": info["line"],
        "scenario": info.get("scenario", "baseline"),
        "spec_hash": info["spec_hash"],
        "point_key": info["point_key"],
        "sweep_id": info.get("sweep_id"),
        "seed": info.get("seed"),
        "replications": info.get("replications"),
        "horizon": info.get("horizon"),
        "warmup": info.get("warmup"),
        "overrides": list(info.get("overrides", ())),
        "tags": [(str(k), str(v)) for k, v in (info.get("tags") or {}).items()],
        "twin_version": info.get("twin_version"),
        "bottleneck": summary["bottleneck"]["station"],
        "station_oee": [(s, _number(st["oee"]["mean"])) for s, st in summary["stations"].items()],
        "station_utilization": [(s, _number(st["utilization"]["mean"])) for s, st in summary["stations"].items()],
    }
    for kpi in KPI_COLUMNS:
        stat = kpi_stat(summary, kpi)
        row[kpi] = _number(stat["mean"])
        row[f"{kpi}_low"], row[f"{kpi}_high"] = (_number(x) for x in stat["ci95"])
    return pa.Table.from_pylist([row], schema=ENTRY_SCHEMA)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def catalog_connection(root: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with a view ``runs`` over every entry of the store at ``root``.

    The entries are listed when the view is queried; a store with no run yet gives an empty
    ``runs`` with the same columns.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        runs = root / RUNS_DIR
        if any(True for _ in runs.glob(f"*/{ENTRY_FILE}")):
            pattern = _sql_text(str(runs / "*" / ENTRY_FILE))
            con.execute(f"CREATE VIEW runs AS SELECT * FROM read_parquet({pattern})")
        else:
            con.register("empty_runs", ENTRY_SCHEMA.empty_table())
            con.execute("CREATE VIEW runs AS SELECT * FROM empty_runs")
        yield con
    finally:
        con.close()
