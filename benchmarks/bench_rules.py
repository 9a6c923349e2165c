"""One simulated year of the built-in tablet line with every batch rule on: wall time and events per second.

    python benchmarks/bench_rules.py [--weeks 52] [--rounds 3] [--baseline REV]

The line (`osd-tablet`) campaigns three products on shift calendars, cleans by its rules on a shared
wash skid, checks hold times, scraps and rejects, and releases through a QC lab; its press and
blister line are rate-based (360,000 tablets/h, 3,000 tablets/min), so a year is a few thousand
batch steps, never millions of tablets. The figure is the median of the rounds; the KPIs of the
run are computed too and timed separately.

``--baseline REV`` (a git revision) also times the rules loop of that revision against this one, on
a year of each built-in line, in alternating rounds in fresh processes (CPU time of the simulation
alone), and prints the ratio of the medians: before/after figures in one run on one machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from baseline import ROOT, revision_tree, run_in

from twin.engine import simulate
from twin.kpis.report import compute_kpis
from twin.models import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=float, default=52.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision whose rules loop to time against this one")
    args = parser.parse_args()
    if args.baseline:
        compare(args.baseline, args.weeks, max(args.rounds, 5))
    spec = load_spec("osd-tablet")
    horizon = args.weeks * 168.0
    sim_times, kpi_times = [], []
    for seed in range(args.rounds):
        start = time.perf_counter()
        log = simulate(spec, replications=1, seed=seed, horizon=horizon, warmup=0.0)
        sim_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        report = compute_kpis(log)
        kpi_times.append(time.perf_counter() - start)
    seconds = statistics.median(sim_times)
    table = log.table
    events = len(table)
    counts = {
        "batches released": int((table["event"] == "release").sum()),
        "cleans": int(table["event"].isin(["clean", "major_clean"]).sum()),
        "changeovers": int((table["event"] == "setup").sum()),
        "hold-time violations": int((table["event"] == "hold_violation").sum()),
        "QC approvals": int((table["event"] == "approve").sum()),
        "off-shift periods": int((table["state"] == "off_shift").sum()),
    }
    print(f"osd-tablet, {args.weeks:g} weeks, all batch rules on ({args.rounds} rounds, median):")
    print(f"  simulation: {seconds:.2f} s wall, {events:,} events = {events / seconds:,.0f} events/s (target < 10 s)")
    print(f"  KPIs of the run: {statistics.median(kpi_times):.2f} s; line OEE {report.summary['oee']['mean']:.1%}")
    print("  " + ", ".join(f"{k}: {v:,}" for k, v in counts.items()))


_ONE_RUN = """
import sys, time
from twin.engine import simulate
from twin.models import load_spec
spec = load_spec(sys.argv[1])
simulate(spec, replications=1, seed=0, horizon=24.0, warmup=0.0)  # imports and first calls out of the timing
start = time.process_time()
log = simulate(spec, replications=1, seed=0, horizon=float(sys.argv[2]) * 168.0, warmup=0.0)
print(time.process_time() - start, len(log.table))
"""


def _cpu_seconds(tree: Path, model: str, weeks: float) -> tuple[float, int]:
    out = run_in(tree, _ONE_RUN, model, str(weeks)).split()
    return float(out[0]), int(out[1])


def compare(revision: str, weeks: float, rounds: int) -> None:
    """Time the rules loop of ``revision`` against this tree's, alternating rounds, for each built-in line."""
    with revision_tree(revision) as old:
        for model in ("osd-tablet", "sterile-fill-finish"):
            before, after = [], []
            for _ in range(rounds):
                before.append(_cpu_seconds(old, model, weeks))
                after.append(_cpu_seconds(ROOT, model, weeks))
            old, new = statistics.median(t for t, _ in before), statistics.median(t for t, _ in after)
            same = "same" if before[0][1] == after[0][1] else "DIFFERENT"
            print(f"{model}, {weeks:g} weeks: {revision} {old:.3f} s CPU, this tree {new:.3f} s CPU: "
                  f"{old / new:.2f}x faster ({rounds} alternating rounds, median; {same} event count)")  # fmt: skip


if __name__ == "__main__":
    main()
