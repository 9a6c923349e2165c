"""Sweep throughput on Dask: scenarios per minute with 1 and 2 local workers, and the Dask overhead per task.

    python benchmarks/bench_sweep.py [--replications 5] [--rounds 3] [--catalog-runs 1000]

The sweep: 50 points of the built-in tablet line (``stations.compression.buffer=0..4`` ×
``stations.coating.buffer=0..9``), 5 replications each, every point stored in a fresh run store.
It runs in this process (no Dask), then on a local Dask cluster of 1 and of 2 worker processes,
in alternating rounds so that machine noise hits every variant. "end to end" includes starting
the cluster; "steady" counts from the moment the cluster is up. On a shared machine the best
round is the one least disturbed by other work: the figures are best of rounds (medians beside).

Each timed run also says how busy the machine was: the share of all cores in use by other
processes (from /proc/stat, less this benchmark's own CPU time, workers included), and the CPU
seconds per point that this benchmark spent once the backend was up (client, scheduler and
workers together; with the cluster's start in the table's last column).

The overhead per task is measured with 100 tiny points (a one-station line, 1 replication of
50 h): (time on a 1-worker cluster, without its start - time in this process) / 100. It covers
pickling the spec, scheduling, running the task in another process and sending the packed run
back. Then a store of ``--catalog-runs`` runs is listed (``RunStore.list``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GRID = ["stations.compression.buffer=0..4", "stations.coating.buffer=0..9"]
CORES = os.cpu_count() or 1


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (Linux)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def own_cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children (a local cluster's workers)."""
    usage = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(r.ru_utime + r.ru_stime for r in usage)


def live_cpu_seconds() -> float:
    """CPU seconds used so far by this process and its live children (the running workers)."""
    import psutil

    me = psutil.Process()
    processes = [me, *me.children(recursive=True)]
    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class Timing:
    total: float  # seconds, end to end
    steady: float  # seconds once the backend was up
    cpu: float  # CPU seconds of this benchmark (client and workers), cluster start included
    steady_cpu: float  # CPU seconds of this benchmark once the backend was up, to the last result
    others: float  # share of all cores used by other processes meanwhile


def timed_sweep(sweep, workers: int, folder: Path) -> Timing:  # type: ignore[no-untyped-def]
    """Run ``sweep`` into a fresh store on ``workers`` local workers (0: in this process)."""
    from twin.store import RunStore
    from twin.sweep import SweepRunner

    store = RunStore(folder / f"store-{workers}-{time.monotonic_ns()}")
    up: list[float] = []
    cpu: list[float] = []

    def on_backend(_: str) -> None:
        up.append(time.perf_counter())
        cpu.append(live_cpu_seconds())

    def progress(fraction: float) -> None:
        if fraction >= 1.0:
            cpu.append(live_cpu_seconds())

    runner = SweepRunner(sweep, store, workers=workers)
    busy0, all0, own0 = *cpu_jiffies(), own_cpu_seconds()
    start = time.perf_counter()
    runner.run(progress, on_backend)
    end = time.perf_counter()
    busy1, all1, own1 = *cpu_jiffies(), own_cpu_seconds()
    assert runner.ran == len(sweep.unique_points())
    ticks = os.sysconf("SC_CLK_TCK")
    others = max(0.0, (busy1 - busy0) / ticks - (own1 - own0)) / ((all1 - all0) / ticks)
    return Timing(end - start, end - (up[0] if up else start), own1 - own0, cpu[-1] - cpu[0], others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--catalog-runs", type=int, default=1000)
    args = parser.parse_args()

    from twin.experiment import run
    from twin.models import load_spec
    from twin.spec.model import LineSpec
    from twin.store import RunStore
    from twin.sweep import grid_points, plan_sweep

    print(f"cores: {CORES}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sweep = plan_sweep(load_spec("osd-tablet"), grid_points(GRID), replications=args.replications, seed=1)
    n = len(sweep.points)
    times: dict[int, list[Timing]] = {0: [], 1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(args.rounds):
            for workers in (0, 1, 2):
                t = timed_sweep(sweep, workers, folder)
                times[workers].append(t)
                print(
                    f"round {r + 1}, workers={workers}: {t.total:5.1f} s end to end, {t.steady:5.1f} s steady, "
                    f"{t.steady_cpu / n * 1000:4.0f} ms CPU a point; other work used {t.others:.0%} of the cores"
                )

        station = {"name": "m", "process_time": {"dist": "exponential", "mean": 1.0}}
        tiny = LineSpec.from_dict({"name": "tiny", "horizon": 50.0, "stations": [station]})
        tiny_sweep = plan_sweep(tiny, grid_points(["stations.m.process_time.mean=1..100"]), replications=1, seed=1)
        overhead = []
        for _ in range(args.rounds):
            alone = timed_sweep(tiny_sweep, 0, folder)
            dask = timed_sweep(tiny_sweep, 1, folder)
            overhead.append((dask.steady - alone.steady) / len(tiny_sweep.points))

        store = RunStore(folder / "catalog")
        result = run(tiny, replications=1, seed=1)
        for _ in range(args.catalog_runs):
            store.save(result)
        listing = []
        for _ in range(3):
            start = time.perf_counter()
            assert len(store.list()) == args.catalog_runs
            listing.append(time.perf_counter() - start)

    def rate(workers: int, field: str, pick=min) -> float:  # type: ignore[no-untyped-def]
        return n / pick(getattr(t, field) for t in times[workers]) * 60

    print(f"\n{n}-point sweep of osd-tablet, {args.replications} replications a point, {args.rounds} rounds "
          "(scenarios per minute, best round; median in brackets):")  # fmt: skip
    print(f"{'backend':<28}{'end to end':>20}{'steady':>20}{'CPU/point':>12}  (steady; start included)")
    for workers, label in (
        (0, "in-process (no Dask)"),
        (1, "local cluster, 1 worker"),
        (2, "local cluster, 2 workers"),
    ):
        cpu = statistics.median(t.steady_cpu for t in times[workers]) / n * 1000
        cpu_all = statistics.median(t.cpu for t in times[workers]) / n * 1000
        cells = [f"{rate(workers, f):.0f} [{rate(workers, f, statistics.median):.0f}]" for f in ("total", "steady")]
        print(f"{label:<28}{cells[0]:>20}{cells[1]:>20}{cpu:>9.0f} ms; {cpu_all:.0f} ms")
    for pick, name in ((min, "best rounds"), (statistics.median, "medians")):
        total = rate(2, "total", pick) / rate(1, "total", pick)
        steady = rate(2, "steady", pick) / rate(1, "steady", pick)
        print(f"speed-up 2 workers / 1 worker ({name}): {total:.2f}x end to end, {steady:.2f}x steady (target >= 1.7x)")
    print(
        f"Dask overhead per task (100 tiny points, 1 worker vs in-process): {statistics.median(overhead) * 1000:.1f} ms"
    )
    print(f"listing a store of {args.catalog_runs} runs (RunStore.list, DuckDB): {statistics.median(listing):.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
