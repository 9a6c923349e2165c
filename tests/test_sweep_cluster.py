"""Sweeps on a Dask cluster of separate processes on loopback: `dask scheduler` and two `dask worker`s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import run_cli
from distributed import Client
from store_helpers import BIN, assert_same_runs, dask_processes, popen, stop, wait_for, write_line

from twin.models import load_spec
from twin.store import RunStore
from twin.sweep import SweepRunner, grid_points, plan_sweep

GRID = ["--grid", "stations.s2.buffer=0..5", "--grid", "stations.s3.units=1,2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    with dask_processes(folder, workers=2) as (address, _nannies):
        yield address, folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same sweep run in-process."""
    folder = tmp_path_factory.mktemp("reference")
    line = write_line(folder, horizon=2000.0)
    axes = [GRID[1], GRID[3]]
    store = RunStore(folder / "store")
    SweepRunner(plan_sweep(load_spec(line), grid_points(axes), replications=2, seed=1), store, workers=0).run()
    return line, store


def test_a_sweep_on_a_separate_cluster_equals_the_in_process_one(cluster, reference, tmp_path):
    address, _ = cluster
    line, expected = reference
    store_dir = tmp_path / "store"
    proc = run_cli("sweep", str(line), *GRID, "-r", "2", "--scheduler", address, "--store", str(store_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"running on the Dask cluster at {address} (2 worker threads)" in proc.stderr
    assert json.loads(proc.stdout)["ran"] == 12
    assert assert_same_runs(expected, RunStore(store_dir)) == 12


def test_a_worker_killed_mid_sweep_is_replaced_and_the_sweep_completes_equal(cluster, reference, tmp_path):
    address, folder = cluster
    line, expected = reference
    store_dir = tmp_path / "store"
    sweep = popen(
        [str(BIN / "twin"), "sweep", str(line), *GRID, "-r", "2", "--scheduler", address, "--store", str(store_dir),
         "--json"],
        tmp_path, tmp_path / "sweep.log",
    )  # fmt: skip
    try:
        with Client(address, set_as_default=False) as client:
            # a worker in the middle of a task of this sweep
            busy = wait_for(lambda: [w for w, keys in client.processing().items() if keys], 120, "a busy worker")
            victim = busy[0]
            task = client.processing()[victim]
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            assert sweep.wait(timeout=240) == 0, (tmp_path / "sweep.log").read_text()
            # the nanny started a new worker process in place of the one killed
            client.wait_for_workers(2, timeout=60)
            pids = set(client.run(os.getpid).values())
            assert pid not in pids and len(pids) == 2
    finally:
        stop(sweep)
    log = (tmp_path / "sweep.log").read_text()
    report = json.loads(log[log.index("\n{") + 1 : log.rindex("}") + 1])
    assert report["ran"] == 12
    assert task and time.monotonic() > killed_at
    assert assert_same_runs(expected, RunStore(store_dir)) == 12
    logs = "".join(p.read_text() for p in folder.glob("worker*.log"))
    assert "Worker process" in logs and "was killed by signal 9" in logs  # the nanny saw its worker die


def test_a_scheduler_that_is_not_there_is_bad_input(tmp_path):
    line = write_line(tmp_path)
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    proc = subprocess.run(
        [str(BIN / "twin"), "sweep", str(line), "--grid", "stations.s2.buffer=0,1", "--scheduler", "tcp://127.0.0.1:9",
         "--store", str(tmp_path / "store")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        "error: --scheduler tcp://127.0.0.1:9: cannot connect to a Dask scheduler (Timed out"
    )
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "store" / "runs").exists()


def test_workers_running_another_twin_version_are_refused(tmp_path):
    """Bit-identical results need the same engine: a worker that runs another twin is bad input."""
    preload = tmp_path / "other_twin.py"
    preload.write_text("import twin\ntwin.__version__ = '0.0.1-other'\n")
    line = write_line(tmp_path)
    with dask_processes(tmp_path, workers=1, worker_args=("--preload", str(preload))) as (address, _):
        proc = run_cli("sweep", str(line), "--grid", "stations.s2.buffer=0,1", "--scheduler", address,
                       "--store", str(tmp_path / "store"))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "runs twin 0.0.1-other, this is twin 0.1.0; every worker needs the same version" in proc.stderr
    assert not (tmp_path / "store" / "runs").exists()


def test_a_point_that_takes_down_workers_too_often_fails_clearly(tmp_path):
    """With Dask allowing no failure, a killed worker fails its point: the sweep says which, keeps what it stored."""
    line = write_line(tmp_path, horizon=2000.0)
    store_dir = tmp_path / "store"
    strict = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    with (
        dask_processes(tmp_path, workers=2, env=strict) as (address, _),
        Client(address, set_as_default=False) as client,
    ):
        sweep = popen([str(BIN / "twin"), "sweep", str(line), *GRID, "-r", "2", "--scheduler", address,
                       "--store", str(store_dir)], tmp_path, tmp_path / "sweep.log")  # fmt: skip
        try:
            busy = wait_for(lambda: [w for w, keys in client.processing().items() if keys], 120, "a busy worker")
            os.kill(client.run(os.getpid, workers=[busy[0]])[busy[0]], signal.SIGKILL)
            code = sweep.wait(timeout=240)
        finally:
            stop(sweep)
    log = (tmp_path / "sweep.log").read_text()
    assert code == 1, log
    assert "error: point '" in log and "failed: KilledWorker" in log and "the same command runs the rest" in log
    assert "Traceback" not in log
    stored = RunStore(store_dir).list()
    assert f"{len(stored)} of 12 points stored" in log
