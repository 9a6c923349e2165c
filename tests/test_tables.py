"""The tables people read: quality and release KPIs, the station line OEE is valued at and when a what-if
moves it, sweep names, `twin optimize --horizon/--warmup`; real `twin` processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from twin.durations import format_hours
from twin.kpis.line import LINE_KPI

QC_LINE = """\
name: qc-line
time_unit: h
horizon: 400 h
warmup: 40 h
products: [{name: A, batch_size: 1000}]
release: {mode: plan, repeat: true, plan: [{product: A, batches: 1}]}
qc: {analysts: 2, test_time: {dist: exponential, mean: 2 h}, oos_probability: 0.1}
hold_times: [{from: m1, to: m2, max: 1 h, action: scrap}]
stations:
  - {name: m1, process_time: {dist: exponential, mean: 1 h}, quality: {reject_probability: 0.05}}
  - {name: m2, process_time: {dist: exponential, mean: 1.2 h}, buffer: 3}
"""
QUALITY_ROWS = ("qc_time_hours", "release_lead_time_hours", "rejected_batches", "hold_violations")


@pytest.fixture
def qc_line(tmp_path: Path) -> Path:
    path = tmp_path / "qc.yaml"
    path.write_text(QC_LINE)
    return path


def _row(text: str, label: str) -> str:
    found = [line for line in text.splitlines() if line.strip().startswith(label)]
    assert found, f"no row {label!r} in\n{text}"
    return found[0]


def _shown(stat: dict, digits: int) -> str:
    mean, (low, high) = stat["mean"], stat["ci95"]
    if abs((high - mean) - (mean - low)) > 1e-9 * max(1.0, abs(mean)):  # cut at 0: the interval itself
        return f"{mean:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"
    return f"{mean:,.{digits}f} ± {(high - low) / 2:,.{digits}f}"


def test_run_shows_quality_and_release_kpis_and_what_line_oee_is_valued_at(qc_line: Path):
    table = run_cli("run", str(qc_line), "-r", "3")
    data = json.loads(run_cli("run", str(qc_line), "-r", "3", "--json").stdout)
    assert table.returncode == 0, table.stderr
    for column in QUALITY_ROWS:
        kpi = LINE_KPI[column]
        stat = data[kpi.path[0]][kpi.path[1]]
        assert stat["mean"] > 0, column
        assert _shown(stat, kpi.digits) in _row(table.stdout, kpi.label), column
    assert data["constraint"]["station"] == "m2" and data["constraint"]["replications"] == {"m1": 0, "m2": 3}
    assert "valued at m2, the constraint" in _row(table.stdout, "Line OEE")
    assert not re.search(r"\de[+-]\d", table.stdout)


def test_a_line_without_qc_or_losses_has_no_empty_quality_rows(tmp_path: Path):
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nhorizon: 200 h\nwarmup: 20 h\nstations: [{name: m, process_time: 1 h}]\n")
    table = run_cli("run", str(path), "-r", "2")
    assert table.returncode == 0, table.stderr
    for column in QUALITY_ROWS:
        assert LINE_KPI[column].label not in table.stdout
    assert "100.0 ± 0.0" in _row(table.stdout, "Line OEE")  # a constant 1 h station running flat out


def test_compare_says_when_a_what_if_moves_the_constraint(qc_line: Path):
    args = ("compare", str(qc_line), "-r", "3", "-s", "second m2: stations.m2.units=2", "-s", "buffer: stations.m2.buffer=5")
    table = run_cli(*args)
    data = json.loads(run_cli(*args, "--json").stdout)
    assert table.returncode == 0, table.stderr
    assert _row(table.stdout, "OEE valued at").split() == ["OEE", "valued", "at", "m2", "m1", "m2"]
    moved, same = data["scenarios"]
    assert moved["kpis"]["constraint"]["station"] == "m1" and same["constraint_moved"] is None
    assert moved["constraint_moved"].startswith("second m2: line OEE is valued at m1, the baseline's at m2")
    notes = [line for line in table.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "second m2: line OEE is valued at m1" in notes[0]
    for column in QUALITY_ROWS:  # with their paired deltas
        kpi = LINE_KPI[column]
        assert column in moved["deltas"]
        assert _row(table.stdout, f"{kpi.label} [{kpi.unit}]")


def test_sweep_names_and_runs_diff(tmp_path: Path, qc_line: Path):
    scenarios = tmp_path / "what-ifs.csv"
    scenarios.write_text("name,stations.m2.units\none m2,1\ntwo m2,2\n")
    store = tmp_path / "store"
    r = run_cli("sweep", str(qc_line), "--scenarios", str(scenarios), "-r", "2", "--workers", "0", "--store", str(store))
    assert r.returncode == 0, r.stderr
    runs = json.loads(run_cli("runs", "list", "--store", str(store), "--json").stdout)
    assert sorted(row["scenario"] for row in runs) == ["one m2", "two m2"]  # no "; baseline"
    ids = {row["scenario"]: row["run_id"] for row in runs}
    diff = run_cli("runs", "diff", ids["one m2"], ids["two m2"], "--store", str(store))
    assert diff.returncode == 0, diff.stderr
    for column in QUALITY_ROWS:
        kpi = LINE_KPI[column]
        assert _row(diff.stdout, f"{kpi.label} [{kpi.unit}]")
    assert _row(diff.stdout, "OEE valued at").split()[-2:] == ["m2", "m1"]
    assert _row(diff.stdout, "m2 OEE [%]") and _row(diff.stdout, "m1 availability [%]")  # labels, not keys
    assert "note: B: line OEE is valued at m1, the baseline's at m2" in diff.stdout
    data = json.loads(run_cli("runs", "diff", ids["one m2"], ids["two m2"], "--store", str(store), "--json").stdout)
    assert data["constraint"]["a"] == "m2" and data["constraint"]["b"] == "m1"
    assert set(QUALITY_ROWS) <= set(data["kpis"])


def test_optimize_takes_a_horizon_and_a_warmup(tmp_path: Path, qc_line: Path):
    out = tmp_path / "opt"
    args = ("optimize", str(qc_line), "--vary", "stations.m2.buffer=1..3", "--evals", "6", "-r", "2", "--confirm", "2")
    r = run_cli(*args, "--horizon", "120 h", "--warmup", "10 h", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "evaluator − SimPy" in r.stdout and not re.search(r"\de[+-]\d", r.stdout)  # no 8.9e-16
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert (best["horizon"], best["warmup"]) == ("120 h", "10 h")
    run = json.loads((out / "run" / "run.json").read_text())
    assert (run["horizon"], run["warmup"]) == (120.0, 10.0)
    bad = run_cli(*args, "--horizon", "10 h", "--warmup", "20 h", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --warmup (20.00 h) must be shorter than the horizon (10.00 h)"
    ]
    assert not (tmp_path / "bad").exists()


def test_durations_people_read_have_no_exponent():
    assert [format_hours(h) for h in (0.25, 1.5, 80.0, 24 * 1500.5)] == ["15 min", "1.5 h", "3.33 d", "1,500 d"]


def test_the_compare_page_says_where_line_oee_is_valued_and_does_not_colour_a_moved_one(tmp_path: Path):
    from dashboards.data import RunCache
    from dashboards.pages.compare import comparison_table
    from twin.experiment import run
    from twin.spec.loader import spec_from_data
    from twin.store import RunStore

    store = RunStore(tmp_path / "store", create=True)
    base = spec_from_data(yaml.safe_load(QC_LINE))
    two = spec_from_data({**yaml.safe_load(QC_LINE), "stations": [
        {"name": "m1", "process_time": {"dist": "exponential", "mean": "1 h"}, "quality": {"reject_probability": 0.05}},
        {"name": "m2", "units": 2, "process_time": {"dist": "exponential", "mean": "1.2 h"}, "buffer": 3}]})  # fmt: skip
    ids = [store.save(run(base, 3, 1)), store.save(run(two, 3, 1, name="second m2"))]
    cache = RunCache(store)
    table = comparison_table([cache.view(i) for i in ids])
    rows = {row.id: row.children for row in table.children[1].children}
    assert [cell.children for cell in rows["compare-row-constraint"]] == [
        "Line OEE valued at", "m2", "m1", "moved"
    ]
    oee_delta = rows["compare-row-oee"][-1]
    # up by a significant 19 points [7, 30], but shares of different stations' time: neither green nor red
    assert oee_delta.children[0].startswith("+18.8") and oee_delta.className == "same"
    for column in QUALITY_ROWS:
        assert f"compare-row-{column}" in rows


def test_constraint_text_of_old_summaries_empty_runs_and_split_replications():
    from twin.kpis.line import constraint_moved, constraint_text

    assert constraint_text({}) == ""  # a summary stored before the constraint was recorded
    assert constraint_text({"constraint": {"station": None, "replications": {"a": 0}}}) == "no output to value"
    split = {"constraint": {"station": "a", "replications": {"a": 2, "b": 1}}}
    assert constraint_text(split) == "valued at a, the constraint in 2 of 3 replications"
    assert constraint_moved({}, split, "x") is None and constraint_moved(split, split, "x") is None
