"""Forecasts from a snapshot of each built-in line: seconds per forecast, as the Forecast page and the shadow twin
make them.

    python benchmarks/bench_forecast.py [--runs 50] [--rounds 5] [--baseline REV]

Nine weeks of each line is the plant; a snapshot of it at week 8 is where the forecast starts; it runs
``--runs`` replications one week ahead and builds what a person reads: the count and release intervals, each
live batch's leave and release times, and the KPIs of the forecast runs. The figure is the median of the
rounds, CPU time of the forecast alone (the run and the snapshot are made before the timing).

``--baseline REV`` (a git revision) times the same forecasts in that revision and in this tree, in alternating
rounds in fresh processes, and prints the ratio of the medians: before/after in one run on one machine.
"""

from __future__ import annotations

import argparse
import statistics

from baseline import ROOT, revision_tree, run_in

MODELS = ("osd-tablet", "sterile-fill-finish")

_ONE = """
import sys, time
from twin.engine import simulate
from twin.forecast import forecast
from twin.models import load_spec
from twin.snapshot import snapshot_from_log
spec, runs, rounds = load_spec(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
snap = snapshot_from_log(simulate(spec, seed=7, horizon=9 * 168.0, warmup=0.0), at=8 * 168.0)
forecast(spec, snap, 24.0, replications=2, seed=1)  # imports and first calls out of the timing
times = []
for r in range(rounds):
    start = time.process_time()
    fc = forecast(spec, snap, 168.0, replications=runs, seed=r)
    fc.intervals(), fc.batches(), fc.kpis.summary
    times.append(time.process_time() - start)
print(sorted(times)[len(times) // 2], len(fc.log.table), len(fc.batches()))
"""


def _seconds(tree, model: str, runs: int, rounds: int) -> tuple[float, int, int]:
    out = run_in(tree, _ONE, model, str(runs), str(rounds)).split()
    return float(out[0]), int(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="replications per forecast (the CLI's default)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="a git revision whose forecasts to time against this tree's")
    args = parser.parse_args()
    for model in MODELS:
        seconds, rows, batches = _seconds(ROOT, model, args.runs, args.rounds)
        print(f"{model}: a one-week forecast of {args.runs} runs from week 8 ({batches} live batches, {rows:,} rows): "
              f"{seconds:.3f} s CPU ({args.rounds} rounds, median)")  # fmt: skip
    if not args.baseline:
        return
    with revision_tree(args.baseline) as old:
        for model in MODELS:
            before, after = [], []
            for _ in range(args.rounds):  # alternating fresh processes, one forecast timed in each
                before.append(_seconds(old, model, args.runs, 1)[0])
                after.append(_seconds(ROOT, model, args.runs, 1)[0])
            a, b = statistics.median(before), statistics.median(after)
            print(f"{model}: {args.baseline} {a:.3f} s, this tree {b:.3f} s: {a / b:.2f}x faster "
                  f"({args.rounds} alternating rounds, median)")  # fmt: skip


if __name__ == "__main__":
    main()
