"""One simulated year of the built-in tablet line with every batch rule on: wall time and events per second.

    python benchmarks/bench_rules.py [--weeks 52] [--rounds 3]

The line (`osd-tablet`) campaigns three products on shift calendars, cleans by its rules on a shared
wash skid, checks hold times, scraps and rejects, and releases through a QC lab; its press and
blister line are rate-based (360,000 tablets/h, 3,000 tablets/min), so a year is a few thousand
batch steps, never millions of tablets. The figure is the median of the rounds; the KPIs of the
run are computed too and timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time

from twin.engine import simulate
from twin.kpis.report import compute_kpis
from twin.models import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=float, default=52.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
