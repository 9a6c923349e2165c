"""The `twin` command line, run as a real process."""

from __future__ import annotations

import json

from conftest import run_cli

from twin.runfolder import read_run


def test_run_json_has_the_documented_fields(two_station_yaml):
    result = run_cli("run", str(two_station_yaml), "--replications", "3", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("throughput_per_hour", "lead_time_hours", "wip"):
        assert set(data[key]) >= {"mean", "ci95"} and len(data[key]["ci95"]) == 2
    assert data["replications"] == 3 and data["seed"] == 5 and len(data["spec_hash"]) == 64
    assert set(data["stations"]) == {"m1", "m2"}
    for station in data["stations"].values():
        assert {"states", "utilization", "oee"} <= set(station)
        assert abs(sum(v for v in station["states"].values() if v) - 1) < 1e-9
    assert data["bottleneck"]["station"] in {"m1", "m2"}


def test_run_is_reproducible_and_settings_change_it(two_station_yaml):
    a = run_cli("run", str(two_station_yaml), "-r", "2", "--json")
    b = run_cli("run", str(two_station_yaml), "-r", "2", "--json")
    assert a.stdout == b.stdout
    c = run_cli("run", str(two_station_yaml), "-r", "2", "--json", "--horizon", "2000 h", "--warmup", "1 w")
    data = json.loads(c.stdout)
    assert data["window_hours"] == [168.0, 2000.0]
    assert data != json.loads(a.stdout)


def test_run_table_output_and_run_folder(two_station_yaml, tmp_path):
    out = tmp_path / "runs" / "baseline"
    result = run_cli("run", str(two_station_yaml), "-r", "2", "--out", str(out), "--set", "stations.m2.buffer=4")
    assert result.returncode == 0, result.stderr
    assert "Throughput" in result.stdout and "Bottleneck" in result.stdout and "m2" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "events.parquet", "genealogy.parquet", "kpis.json", "kpis_by_replication.parquet", "run.json", "spec.yaml",
    ]  # fmt: skip
    back = read_run(out)
    assert back.spec.station("m2").buffer == 4
    assert back.kpis.summary == json.loads((out / "kpis.json").read_text())
    info = json.loads((out / "run.json").read_text())
    assert info["overrides"] == ["stations.m2.buffer=4"] and info["spec_hash"] == back.spec.spec_hash
    again = run_cli("run", str(two_station_yaml), "-r", "2", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_compare_uses_common_random_numbers_and_paired_intervals(two_station_yaml, tmp_path):
    result = run_cli(
        "compare", str(two_station_yaml), "-r", "4", "--json",
        "-s", "bigger buffer: stations.m2.buffer=6",
        "-s", "faster m1: stations.m1.process_time={dist: exponential, mean: 0.8 h}, stations.m1.failures=null",
        "--out", str(tmp_path / "cmp"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["scenarios"]] == ["bigger buffer", "faster m1"]
    bigger = data["scenarios"][0]
    delta = bigger["deltas"]["throughput_per_hour"]
    expected = bigger["kpis"]["throughput_per_hour"]["mean"] - data["baseline"]["throughput_per_hour"]["mean"]
    assert abs(delta["mean"] - expected) < 1e-12
    lo, hi = delta["ci95"]
    assert lo <= delta["mean"] <= hi and lo >= -1e-12  # more buffer never hurts with the same draws
    assert len(list((tmp_path / "cmp").iterdir())) == 3
    table = run_cli("compare", str(two_station_yaml), "-r", "2", "-s", "bigger buffer: stations.m2.buffer=6")
    assert "Δ (95% CI)" in table.stdout and "bigger buffer" in table.stdout


def test_validate_schema_and_models():
    result = run_cli("validate", "osd-tablet")
    assert result.returncode == 0 and "OK" in result.stdout and "8 stations" in result.stdout
    schema = json.loads(run_cli("schema").stdout)
    assert schema["title"] == "LineSpec" and "stations" in schema["properties"]
    models = run_cli("models")
    assert "osd-tablet" in models.stdout and "sterile-fill-finish" in models.stdout


def test_a_model_name_works_wherever_a_spec_path_does():
    result = run_cli("run", "sterile-fill-finish", "-r", "2", "--horizon", "6 w", "--warmup", "1 w", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["line"] == "sterile-fill-finish"
