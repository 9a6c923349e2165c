"""Helpers of the run-store and sweep tests: a tiny line, bit-for-bit store comparison, real Dask processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from twin.eventlog import EventLog
from twin.store import RunStore

BIN = Path(sys.executable).parent
RUN_FILES = ("spec.yaml", "events.parquet", "kpis.json", "kpis_by_replication.parquet")

LINE_YAML = """\
name: tiny
horizon: {horizon} h
warmup: 20 h
release: {{mode: saturated}}
products:
  - {{name: A, batch_size: 1000}}
stations:
  - {{name: s1, process_time: {{dist: exponential, mean: 1 h}}}}
  - {{name: s2, process_time: {{dist: exponential, mean: 1.1 h}}, buffer: 1,
     failures: {{mtbf: {{dist: exponential, mean: 50 h}}, mttr: {{dist: exponential, mean: 2 h}}}}}}
  - {{name: s3, process_time: {{dist: exponential, mean: 0.9 h}}, buffer: 1}}
"""


def write_line(folder: Path, horizon: float = 400.0, name: str = "line.yaml") -> Path:
    """A three-station saturated line with failures; ``horizon`` sets how long a replication takes."""
    path = folder / name
    path.write_text(LINE_YAML.format(horizon=horizon), encoding="utf-8")
    return path


def runs_by_key(store: RunStore) -> dict[str, Path]:
    """Stored run folders by point key (each key once)."""
    frame = store.list()
    assert not frame["point_key"].duplicated().any(), "a point was stored twice"
    return {key: store.path(run_id) for key, run_id in zip(frame["point_key"], frame["run_id"], strict=True)}


def assert_same_runs(a: RunStore, b: RunStore) -> int:
    """Both stores hold the same points with bit-identical files and equal event logs; returns the count."""
    ra, rb = runs_by_key(a), runs_by_key(b)
    assert sorted(ra) == sorted(rb)
    for key, folder in ra.items():
        other = rb[key]
        for name in RUN_FILES:
            assert (folder / name).read_bytes() == (other / name).read_bytes(), f"{name} differs for point {key[:12]}"
        la, lb = EventLog.from_parquet(folder / "events.parquet"), EventLog.from_parquet(other / "events.parquet")
        pd.testing.assert_frame_equal(la.table, lb.table, check_exact=True)
        assert la.meta == lb.meta
    return len(ra)


def popen(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a process with its output in a log file, in its own session (so it can be stopped as a group)."""
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started by ``popen`` and everything it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored_count(store_dir: Path) -> int:
    runs = store_dir / "runs"
    return len(list(runs.iterdir())) if runs.is_dir() else 0


@contextmanager
def dask_processes(
    folder: Path, workers: int = 2, worker_args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A Dask scheduler and ``workers`` one-thread workers (each under a nanny), separate processes on loopback.

    Yields the scheduler address and the worker (nanny) processes.
    """
    scheduler_file = folder / "scheduler.json"
    scheduler = popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        folder, folder / "scheduler.log", env,
    )  # fmt: skip
    procs = [scheduler]
    try:
        wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, 60, "the Dask scheduler")
        address = json.loads(scheduler_file.read_text())["address"]
        nannies = [
            popen(
                [
                    str(BIN / "dask"),
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--death-timeout",
                    "60",
                    "--name",
                    f"w{i}",
                    *worker_args,
                ],
                folder,
                folder / f"worker{i}.log",
                env,
            )
            for i in range(workers)
        ]
        procs += nannies
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=90)
        yield address, nannies
    finally:
        for proc in reversed(procs):
            stop(proc)
