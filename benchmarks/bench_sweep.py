"""Sweep throughput on Dask: scenarios per minute with 1 and 2 local workers, and the Dask overhead per task.

    python benchmarks/bench_sweep.py [--replications 5] [--rounds 2]

The sweep: 50 points of the built-in tablet line (``stations.compression.buffer=0..4`` ×
``stations.coating.buffer=0..9``), 5 replications each, every point stored in a fresh run store.
It runs in this process (no Dask), then on a local Dask cluster of 1 and of 2 worker processes,
in alternating rounds so that machine noise hits every variant; figures are medians over rounds.
"end to end" includes starting the cluster; "steady" counts from the moment the cluster is up.

The overhead per task is measured with 100 tiny points (a one-station line, 1 replication of
50 h): (time on a 1-worker cluster, without its start - time in this process) / 100. It covers
pickling the spec, scheduling, running the task in another process and sending the run (event
log and KPIs) back. Then a store of ``--catalog-runs`` runs is listed (``RunStore.list``).

How busy the machine was: the load average before and after, and the share of the two cores
in use during the benchmark (from /proc/stat) next to the share this benchmark used itself.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

GRID = ["stations.compression.buffer=0..4", "stations.coating.buffer=0..9"]


def timed_sweep(sweep, workers: int, folder: Path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds end to end, seconds once the backend was up) of running ``sweep`` into a fresh store."""
    from twin.store import RunStore
    from twin.sweep import SweepRunner

    store = RunStore(folder / f"store-{workers}-{time.monotonic_ns()}")
    up: list[float] = []
    runner = SweepRunner(sweep, store, workers=workers)
    start = time.perf_counter()
    runner.run(on_backend=lambda _: up.append(time.perf_counter()))
    end = time.perf_counter()
    assert runner.ran == len(sweep.unique_points())
    return end - start, end - (up[0] if up else start)


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def own_cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children (the cluster's workers)."""
    return sum(
        r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                          resource.getrusage(resource.RUSAGE_CHILDREN))
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--catalog-runs", type=int, default=1000)
    args = parser.parse_args()
    busy0, total0, own0, wall0 = *cpu_jiffies(), own_cpu_seconds(), time.perf_counter()

    from twin.models import load_spec
    from twin.spec.model import LineSpec
    from twin.sweep import grid_points, plan_sweep

    print(f"cores: {os.cpu_count()}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sweep = plan_sweep(load_spec("osd-tablet"), grid_points(GRID), replications=args.replications, seed=1)
    n = len(sweep.points)
    times: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(args.rounds):
            for workers in (0, 1, 2):
                times[workers].append(timed_sweep(sweep, workers, folder))
                total, steady = times[workers][-1]
                print(f"round {r + 1}, workers={workers}: {total:.1f} s end to end, {steady:.1f} s steady")

        station = {"name": "m", "process_time": {"dist": "exponential", "mean": 1.0}}
        tiny = LineSpec.from_dict({"name": "tiny", "horizon": 50.0, "stations": [station]})
        tiny_sweep = plan_sweep(tiny, grid_points(["stations.m.process_time.mean=1..100"]), replications=1, seed=1)
        overhead = []
        for _ in range(args.rounds):
            alone, _ = timed_sweep(tiny_sweep, 0, folder)
            _, dask = timed_sweep(tiny_sweep, 1, folder)
            overhead.append((dask - alone) / len(tiny_sweep.points))

        from twin.experiment import run
        from twin.store import RunStore

        store = RunStore(folder / "catalog")
        result = run(tiny, replications=1, seed=1)
        for _ in range(args.catalog_runs):
            store.save(result)
        listing = []
        for _ in range(3):
            start = time.perf_counter()
            assert len(store.list()) == args.catalog_runs
            listing.append(time.perf_counter() - start)
    busy1, total1, own1, wall1 = *cpu_jiffies(), own_cpu_seconds(), time.perf_counter()

    def per_minute(workers: int, index: int) -> float:
        return n / statistics.median(t[index] for t in times[workers]) * 60

    print(
        f"\n{n}-point sweep of osd-tablet, {args.replications} replications a point, medians of {args.rounds} rounds:"
    )
    print(f"{'backend':<32}{'end to end':>14}{'steady':>14}   (scenarios per minute)")
    for workers, label in (
        (0, "in-process (no Dask)"),
        (1, "local cluster, 1 worker"),
        (2, "local cluster, 2 workers"),
    ):
        print(f"{label:<32}{per_minute(workers, 0):>14.1f}{per_minute(workers, 1):>14.1f}")
    print(f"speed-up 2 workers / 1 worker: {per_minute(2, 0) / per_minute(1, 0):.2f}x end to end, "
          f"{per_minute(2, 1) / per_minute(1, 1):.2f}x steady (target >= 1.7x)")  # fmt: skip
    print(
        f"Dask overhead per task (100 tiny points, 1 worker vs in-process): {statistics.median(overhead) * 1000:.1f} ms"
    )
    print(f"listing a store of {args.catalog_runs} runs (RunStore.list, DuckDB): {statistics.median(listing):.2f} s")
    cores = os.cpu_count() or 1
    machine = (busy1 - busy0) / (total1 - total0) * 100
    own = (own1 - own0) / ((wall1 - wall0) * cores) * 100
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"CPU in use during the benchmark: {machine:.0f}% of {cores} cores, {own:.0f}% by the benchmark itself, "
          f"{max(machine - own, 0):.0f}% by other work")  # fmt: skip


if __name__ == "__main__":
    main()
