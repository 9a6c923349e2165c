"""Sweeps: points, validation before anything runs, results identical on every backend, interrupt and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pandas as pd
import psutil
import pytest
from conftest import run_cli
from start_helpers import imported_modules
from store_helpers import BIN, assert_same_runs, popen, stop, stored_count, wait_for, write_line

from twin.errors import InputError, SpecError
from twin.experiment import run
from twin.models import load_spec
from twin.runfolder import read_run
from twin.store import RunStore
from twin.sweep import SweepRunner, csv_points, grid_points, plan_sweep, sweep_table
from twin.sweep.backends import Auto, available_cores, chunk_sizes
from twin.sweep.points import parse_axis, short_labels
from twin.sweep.tasks import assemble, simulate_chunk


def test_grid_axes():
    assert parse_axis("stations.m2.buffer=0..3") == ("stations.m2.buffer", ["0", "1", "2", "3"])
    assert parse_axis("stations.m2.buffer=2..8..3") == ("stations.m2.buffer", ["2", "5", "8"])
    assert parse_axis("stations.m1.process_time={dist: gamma, mean: 2 h, sd: 1 h}, 90 min") == (
        "stations.m1.process_time",
        ["{dist: gamma, mean: 2 h, sd: 1 h}", "90 min"],
    )
    points = grid_points(["stations.press.units=1,2", "stations.m2.buffer=0..2"])
    assert [p.name for p in points] == [f"units={u}, buffer={b}" for u in (1, 2) for b in (0, 1, 2)]
    assert points[4].overrides == ("stations.press.units=2", "stations.m2.buffer=1")
    assert short_labels(["stations.a.buffer", "stations.b.buffer", "horizon"]) == {
        "stations.a.buffer": "a.buffer",
        "stations.b.buffer": "b.buffer",
        "horizon": "horizon",
    }
    for bad, message in [
        ("stations.m2.buffer", "expected PATH=V1,V2"),
        ("stations.m2.buffer=5..1", "A <= B"),
        ("stations.m2.buffer=1,,2", "empty value"),
        ("stations.m2.buffer=1,1", "given twice"),
    ]:
        with pytest.raises(InputError, match=message):
            parse_axis(bad)
    with pytest.raises(InputError, match="same path is given twice"):
        grid_points(["a.b=1,2", "a.b=3"])


def test_scenarios_csv(tmp_path):
    path = tmp_path / "what-ifs.csv"
    path.write_text("name,stations.s2.buffer,stations.s3.units\nsmall,0,\nbig,4,2\n,2,1\n")
    points = csv_points(path)
    assert [p.name for p in points] == ["small", "big", "buffer=2, units=1"]
    assert points[0].overrides == ("stations.s2.buffer=0",)  # an empty cell leaves the field as it is
    assert points[1].origins == (f"{path}:3", f"{path}:3")
    cases = [
        ("", "empty"),
        ("name\nx\n", "no column of dotted paths"),
        ("a.b,a.b\n1,2\n", "each one different"),
        ("name,a.b\nx,1\nx,2\n", "'x' already used on line 2"),
        ("a.b\n1,2\n", ":2: 2 cells, the header has 1"),
        ("a.b\n", "no scenario rows"),
    ]
    for text, message in cases:
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            csv_points(path)
    with pytest.raises(InputError, match="no such file"):
        csv_points(tmp_path / "missing.csv")


def test_every_point_is_validated_before_anything_runs(tmp_path):
    line = write_line(tmp_path)
    base = load_spec(line)
    with pytest.raises(SpecError) as err:
        plan_sweep(base, grid_points(["stations.s2.buffer=-1,0,1", "stations.s3.units=0,1"]))
    assert [str(p) for p in err.value.problems] == [  # each bad value once, naming its axis
        "--grid stations.s2.buffer=-1,0,1: stations[1].buffer: should be greater than or equal to 0 (got -1)",
        "--grid stations.s3.units=0,1: stations[2].units: should be greater than or equal to 1 (got 0)",
    ]
    with pytest.raises(SpecError) as err:
        plan_sweep(base, grid_points(["stations.s9.units=1,2"]))
    assert [str(p) for p in err.value.problems] == [
        "--grid stations.s9.units=1,2: stations.s9.units: no station named 's9' (stations: s1, s2, s3)"
    ]
    csv = tmp_path / "s.csv"
    csv.write_text("name,stations.s1.units,warmup\nok,2,\nbad,zero,\nlong warm-up,1,500 h\n")
    with pytest.raises(SpecError) as err:
        plan_sweep(base, csv_points(csv))
    problems = [str(p) for p in err.value.problems]
    assert len(problems) == 2
    assert problems[0].startswith(f"{csv}:3: stations[0].units: should be a valid integer") and "'zero'" in problems[0]
    assert problems[1].startswith(f"{csv}:4: warmup: must be shorter than the horizon")

    store = tmp_path / "store"
    for args, message in [
        (["--grid", "stations.s9.units=1,2"], "--grid stations.s9.units=1,2: stations.s9.units: no station named 's9'"),
        (["--scenarios", str(csv)], f"{csv}:3: stations[0].units: should be a valid integer"),
        (["--grid", "stations.s1.units=1..0"], "A <= B"),
        (["--rank", "speed"], "--rank 'speed': unknown KPI"),
        (["--rank", "s9.oee"], "no station named 's9'"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "choose one"),
        (["-r", "0"], "replications must be a whole number >= 1"),
    ]:
        proc = run_cli("sweep", str(line), *args, "--store", str(store))
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not store.exists()  # nothing written

    dry = run_cli("sweep", str(line), "--grid", "stations.s2.buffer=0..2", "--dry-run", "--store", str(store))
    assert dry.returncode == 0 and len(dry.stdout.splitlines()) == 3 and "0 already stored, 3 to run" in dry.stderr
    assert not store.exists()


@pytest.mark.parametrize("sizes", [[5], [2, 3], [1, 1, 1, 1, 1]])
def test_any_split_of_replications_gives_the_same_run(tmp_path, sizes):
    spec = load_spec(write_line(tmp_path))
    whole = run(spec, replications=5, seed=3, name="p", overrides=("x=1",))
    first, logs = 0, []
    for size in sizes:
        logs.append(simulate_chunk(spec, 3, first, size, spec.horizon_hours, spec.warmup_hours))
        first += size
    parts = assemble(spec, "p", ("x=1",), logs)
    pd.testing.assert_frame_equal(parts.log.table, whole.log.table, check_exact=True)
    assert parts.log.meta == whole.log.meta and parts.settings == whole.settings
    pd.testing.assert_frame_equal(parts.kpis.per_replication, whole.kpis.per_replication, check_exact=True)
    assert parts.kpis.summary == whole.kpis.summary
    assert chunk_sizes(5, 2) == [3, 2] and chunk_sizes(2, 4) == [1, 1]


def test_a_local_dask_cluster_gives_the_in_process_results_bit_for_bit(tmp_path):
    spec = load_spec(write_line(tmp_path))
    many = plan_sweep(spec, grid_points(["stations.s2.buffer=0..2", "stations.s3.units=1,2"]), replications=3, seed=5)
    few = plan_sweep(spec, grid_points(["stations.s1.units=2"]), replications=5, seed=5)  # split in 4 chunks
    alone, local = RunStore(tmp_path / "in-process"), RunStore(tmp_path / "local")
    for sweep in (many, few):
        SweepRunner(sweep, alone, workers=0).run()
        runner = SweepRunner(sweep, local, workers=2)
        seen = []
        runner.run(progress=seen.append, on_backend=seen.append)
        assert runner.backend == "on a local Dask cluster of 2 worker processes" and runner.ran == len(sweep.points)
        fractions = [f for f in seen if isinstance(f, float)]
        assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert assert_same_runs(alone, local) == 7
    table = sweep_table(many, local, rank="lead_time_hours")
    assert list(table["lead_time_hours"]) == sorted(table["lead_time_hours"])  # best (shortest) first
    assert set(table["sweep_id"]) == {many.sweep_id}


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_an_interrupted_sweep_resumes_with_only_the_missing_points(tmp_path, how):
    line = write_line(tmp_path, horizon=3000.0)
    store_dir = tmp_path / "store"
    args = ["sweep", str(line), "--grid", "stations.s2.buffer=0..9", "-r", "2", "--store", str(store_dir), "--json"]
    if how == "sigkill":
        args += ["--workers", "0"]  # a crash of a sweep running in-process
    else:
        args += ["--workers", "2"]  # Ctrl-C reaches a local cluster's workers too
    proc = popen([str(BIN / "twin"), *args], tmp_path, tmp_path / "first.log")
    try:
        wait_for(lambda: stored_count(store_dir) >= 2, 120, "two stored points")
        children = _children(proc.pid)
        if how == "sigint":  # Ctrl-C in a terminal: SIGINT to the whole foreground group, workers included
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    log = (tmp_path / "first.log").read_text()
    if how == "sigint":
        assert code == 130, log
        assert "interrupted:" in log and "run the same command again" in log and "Traceback" not in log
        assert (store_dir / ".staging").is_dir() and not any((store_dir / ".staging").iterdir())
        psutil.wait_procs(children, timeout=30)
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]  # workers gone
    else:
        assert code == -signal.SIGKILL
    store = RunStore(store_dir)
    done = len(store.list())
    assert 2 <= done < 10, "interrupt earlier: the sweep had finished"
    for run_id in store.list()["run_id"]:
        read_run(store.path(run_id))  # whole runs only

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"{done} already stored, {10 - done} to run" in again.stderr
    report = json.loads(again.stdout)
    assert report["ran"] == 10 - done and report["reused"] == done and len(report["points"]) == 10
    assert not (store_dir / ".staging").exists() or not any((store_dir / ".staging").iterdir())

    reference = RunStore(tmp_path / "reference")
    base = load_spec(line)
    SweepRunner(plan_sweep(base, grid_points(["stations.s2.buffer=0..9"]), replications=2, seed=1), reference,
                workers=0).run()  # fmt: skip
    assert assert_same_runs(reference, RunStore(store_dir)) == 10


def test_sweep_summary_and_json(tmp_path):
    line = write_line(tmp_path)
    store = ("--store", str(tmp_path / "store"))
    first = run_cli(
        "sweep", str(line), "--grid", "stations.s2.buffer=0..3", "-r", "2", "--rank", "oee", "--json", *store
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    oee = [p["kpis"]["oee"]["mean"] for p in report["points"]]
    assert oee == sorted(oee, reverse=True) and [p["rank"] for p in report["points"]] == [1, 2, 3, 4]
    assert report["ran"] == 4 and report["reused"] == 0
    assert {p["assignments"]["stations.s2.buffer"] for p in report["points"]} == {"0", "1", "2", "3"}
    stored = RunStore(tmp_path / "store").list()
    assert set(stored["sweep_id"]) == {report["sweep_id"]} and set(stored["scenario"]) == {
        f"buffer={b}" for b in range(4)
    }

    table = run_cli("sweep", str(line), "--grid", "stations.s2.buffer=0..3", "-r", "2", "--top", "2", *store)
    assert table.returncode == 0 and "4 already stored, 0 to run" in table.stderr
    assert "batches/h ▼" in table.stdout and len([ln for ln in table.stdout.splitlines() if "buffer=" in ln]) == 2
    single = run_cli("sweep", str(line), "-r", "3", *store)  # no grid: one point, the spec as it is, in-process
    assert single.returncode == 0 and "running in this process" in single.stderr and "baseline" in single.stdout


def test_auto_starts_a_cluster_only_when_the_work_left_saves_more_than_its_start():
    two = Auto(cores=2, pays_s=10.0)
    assert two.pays(25.0) and not two.pays(15.0)  # 2 cores save half the work left: 12.5 s, 7.5 s
    assert Auto(cores=8, pays_s=10.0).pays(12.0) and not Auto(cores=1, pays_s=0.0).pays(1e9)


@pytest.mark.fast
def test_a_small_sweep_runs_in_process_and_never_imports_dask(tmp_path):
    line = write_line(tmp_path)
    args = ["sweep", str(line), "--grid", "stations.s2.buffer=0..2", "-r", "2", "--store", str(tmp_path / "s"), "--json"]
    modules, done = imported_modules(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "running in this process" in done.stderr and json.loads(done.stdout)["backend"] == "in this process"
    imported = {m.split(".")[0] for m in modules}
    assert "twin.engine" in modules and not imported & {"distributed", "dask"}


def test_a_sweep_moves_to_a_local_cluster_once_it_pays_with_the_same_results(tmp_path, monkeypatch):
    spec = load_spec(write_line(tmp_path))
    sweep = plan_sweep(spec, grid_points(["stations.s2.buffer=0..3"]), replications=2, seed=3)
    alone, mixed = RunStore(tmp_path / "in-process"), RunStore(tmp_path / "mixed")
    SweepRunner(sweep, alone, workers=0).run()
    monkeypatch.setenv("TWIN_DASK_PAYS_S", "0")  # any work left pays for a cluster (on 2 cores or more)
    runner, said = SweepRunner(sweep, mixed), []
    runner.run(on_backend=said.append)
    if Auto(available_cores(), 0.0).pays(1.0):
        assert said[0] == "in this process" and said[1].startswith("on a local Dask cluster of")
        assert runner.backend.startswith("in this process (1 point), then on a local Dask cluster of")
    else:  # a one-core machine never starts a cluster
        assert said == ["in this process"] and runner.backend == "in this process"
    assert assert_same_runs(alone, mixed) == 4


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_bad_dask_threshold_is_refused_before_anything_is_written(tmp_path, value):
    line = write_line(tmp_path)
    done = subprocess.run([str(BIN / "twin"), "sweep", str(line), "--store", str(tmp_path / "s")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TWIN_DASK_PAYS_S": value})  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "TWIN_DASK_PAYS_S" in done.stderr and not (tmp_path / "s").exists()
