"""``KpiReport.summary`` has exactly the shape its TypedDicts declare, on real runs and in ``twin run --json``."""

from __future__ import annotations

import json
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

from conftest import run_cli

from twin.engine import simulate
from twin.kpis.report import compute_kpis
from twin.kpis.summary import STATION_FACTORS, Interval, KpiSummary, field_rows
from twin.models import load_spec


def _mismatches(value: Any, kind: Any, path: str = "") -> list[str]:
    """Where ``value`` departs from the type ``kind`` (keys missing or extra, wrong scalar types)."""
    kind = get_args(kind)[0] if getattr(kind, "__metadata__", None) else kind
    if is_typeddict(kind):
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        hints = get_type_hints(kind, include_extras=True)
        out = [f"{path}.{k}: missing" for k in hints if k not in value]
        out += [f"{path}.{k}: not declared" for k in value if k not in hints]
        for key in hints.keys() & value.keys():
            out += _mismatches(value[key], hints[key], f"{path}.{key}")
        return out
    origin, args = get_origin(kind), get_args(kind)
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: not a map"]
        return [m for k, v in value.items() for m in _mismatches(v, args[1], f"{path}.{k}")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [m for i, v in enumerate(value) for m in _mismatches(v, args[0], f"{path}[{i}]")]
    allowed = tuple(float if a is float else a for a in (args or (kind,)))
    if float in allowed:
        allowed = (*allowed, int)
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    return [] if ok else [f"{path}: {value!r} is not {kind}"]


def test_a_run_summary_has_exactly_the_declared_shape():
    spec = load_spec("osd-tablet", ["horizon=600 h", "warmup=100 h"])
    summary = compute_kpis(simulate(spec, replications=2, seed=3)).summary
    assert _mismatches(summary, KpiSummary) == []
    assert set(summary["stations"]) == {s.name for s in spec.stations}
    coating = summary["stations"]["coating"]
    assert len(coating["per_unit"]) == spec.station("coating").units
    assert all(set(Interval.__required_keys__) == set(coating[f]) for f in STATION_FACTORS)


def test_the_checker_catches_a_changed_shape():
    spec = load_spec("osd-tablet", ["horizon=400 h", "warmup=50 h"])
    summary = compute_kpis(simulate(spec, replications=1, seed=1)).summary
    broken = json.loads(json.dumps(summary))
    del broken["release"]["quarantine"]
    broken["stations"]["coating"]["extra"] = 1
    broken["wip"]["mean"] = "many"
    assert sorted(_mismatches(broken, KpiSummary)) == [
        ".release.quarantine: missing", ".stations.coating.extra: not declared",
        ".wip.mean: 'many' is not float | None",
    ]  # fmt: skip


def test_the_cli_json_has_the_declared_shape_and_every_field_is_documented(tmp_path):
    done = run_cli("run", "osd-tablet", "-r", "2", "--horizon", "500 h", "--warmup", "50 h", "--json")
    assert done.returncode == 0, done.stderr
    assert _mismatches(json.loads(done.stdout), KpiSummary) == []
    rows = field_rows()
    assert all(meaning for _, _, meaning in rows)
    paths = {p for p, _, _ in rows}
    assert {"throughput_per_hour", "lead_time_hours.p90", "stations.NAME.per_unit[i].oee", "bottleneck.share"} <= paths
