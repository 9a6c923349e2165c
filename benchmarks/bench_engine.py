"""Engine speed and memory: the twin against a bare hand-written SimPy model of the same line.

    python benchmarks/bench_engine.py [--batches 100000] [--rounds 3]

A saturated 10-station serial line (exponential times, mean 1 h, two buffer places between
stations) runs ``--batches`` batches through the twin engine, event log included, and through a
bare SimPy model written the usual way (a process per station, stores between them, the same
pre-drawn random numbers). Rounds alternate between the two so that machine noise hits both; the
figure is the ratio of the medians. Then a run of about one million events is made in a fresh
process and its peak memory (max RSS) is printed next to that of the process before the run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import simpy

STATIONS, MEAN, BUFFER = 10, 1.0, 2


def twin_line(batches: int):
    from twin.spec.limits import MAX_HOURS
    from twin.spec.model import LineSpec

    return LineSpec.from_dict(
        {
            "name": "bench",
            "horizon": MAX_HOURS,  # the plan ends the run first
            "release": {"mode": "plan", "plan": [{"product": "batch", "batches": batches}]},
            "stations": [
                {
                    "name": f"s{j}",
                    "process_time": {"dist": "exponential", "mean": MEAN},
                    **({"buffer": BUFFER} if j else {}),
                }
                for j in range(STATIONS)
            ],
        }
    )


def run_twin(batches: int, seed: int) -> tuple[float, int]:
    from twin.engine import simulate

    spec = twin_line(batches)
    start = time.process_time()
    log = simulate(spec, seed=seed)
    return time.process_time() - start, len(log.table)


class _Buffer(simpy.Store):
    """A bare BAS buffer: a store that also hands over to a waiting station when it has no places."""

    def __init__(self, env: simpy.Environment, places: int):
        simpy.resources.base.BaseResource.__init__(self, env, places)
        self.items = []

    def _do_put(self, event):
        if len(self.items) < self._capacity + len(self.get_queue):
            self.items.append(event.item)
            event.succeed()

    def _do_get(self, event):
        if self.items:
            event.succeed(self.items.pop(0))
        elif self.put_queue:
            self._trigger_put(None)


def run_bare(batches: int, seed: int) -> float:
    start = time.process_time()
    env = simpy.Environment()
    buffers = [None] + [_Buffer(env, BUFFER) for _ in range(STATIONS - 1)]
    done = env.event()

    def station(j: int):
        draws = np.random.default_rng([seed, j]).exponential(MEAN, batches).tolist()
        for n in range(batches):
            batch = n if j == 0 else (yield buffers[j].get())
            yield env.timeout(draws[n])
            if j < STATIONS - 1:
                yield buffers[j + 1].put(batch)
        if j == STATIONS - 1:
            done.succeed()

    for j in range(STATIONS):
        env.process(station(j))
    env.run(until=done)
    return time.process_time() - start


def peak_memory(batches: int) -> None:
    # VmHWM (peak resident memory) starts afresh at exec; ru_maxrss would inherit this process's peak
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from bench_engine import twin_line, vm_hwm_mb
from twin.engine import simulate
from twin.kpis.report import compute_kpis
spec = twin_line({batches})
before = vm_hwm_mb()
log = simulate(spec, seed=1)
simulated = vm_hwm_mb()
compute_kpis(log)
print(len(log.table), before, simulated, vm_hwm_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    events, before, simulated, peak = int(out[0]), float(out[1]), float(out[2]), float(out[3])
    print(
        f"memory: {events:,} events: peak RSS {simulated:.0f} MB after the run, {peak:.0f} MB after its KPIs "
        f"({before:.0f} MB of it is Python and the libraries before the run); target < 500 MB"
    )


def vm_hwm_mb() -> float:
    """Peak resident memory of this process in MB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    peak_memory(batches=23_000)  # first, in a fresh process, before this one grows
    run_twin(1000, 0)  # warm imports and caches
    twin_times, bare_times = [], []
    events = 0
    for r in range(args.rounds):
        seconds, events = run_twin(args.batches, seed=r)
        twin_times.append(seconds)
        bare_times.append(run_bare(args.batches, seed=r))
        print(f"round {r + 1}: twin {twin_times[-1]:.2f} s, bare SimPy {bare_times[-1]:.2f} s", flush=True)
    twin_s, bare_s = statistics.median(twin_times), statistics.median(bare_times)
    steps = STATIONS * args.batches
    print(
        f"line: {STATIONS} stations, {args.batches:,} batches = {steps:,} batch-station steps; twin log {events:,} rows"
    )
    print(f"twin engine (with event log): {twin_s:.2f} s = {steps / twin_s:,.0f} steps/s")
    print(f"bare SimPy:                   {bare_s:.2f} s = {steps / bare_s:,.0f} steps/s")
    print(f"ratio twin / bare: {twin_s / bare_s:.2f}x (CPU time; target <= 1.15x, issue 20)")


if __name__ == "__main__":
    main()
