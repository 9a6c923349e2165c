"""What the kernel's QC stage costs: designs per second with and without the QC lab, against SimPy (no test).

    python benchmarks/bench_kernel_qc.py            # 64 designs x 4 replications over 26 weeks
    python benchmarks/bench_kernel_qc.py --quick    # 16 designs x 2 replications over 8 weeks (seconds)

The line of ``tests/test_optimizer_qc.py`` (its weekday lab calendar; 2 analysts, a varied incubation, 15 %
out of specification, investigated); designs differ in the last buffer. Compiled calls, with and without the lab in
alternating rounds (``--rounds``, 5 by default): the median per design, as the machine's load makes single calls vary.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test's line and lab calendar

from test_optimizer_qc import LAB_SHIFTS, qc_line

from optimizers.evaluator import Evaluator
from twin.engine import simulate
from twin.spec.model import LineSpec

QC = {"analysts": 2, "test_time": {"dist": "exponential", "mean": 1.2}, "oos_probability": 0.15,
      "incubation": {"dist": "triangular", "low": 2, "mode": 4, "high": 12}, "oos_action": "investigate",
      "investigation": 5.0}  # fmt: skip


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="16 designs x 2 replications over 8 weeks")
    args.add_argument("--rounds", type=int, default=5, help="timed calls of each kernel, alternating (median)")
    parsed = args.parse_args()
    quick, rounds = parsed.quick, max(parsed.rounds, 1)
    designs, replications, weeks = (16, 2, 8) if quick else (64, 4, 26)
    spec = qc_line(QC, LAB_SHIFTS, horizon=weeks * 168.0)
    data = spec.model_dump(mode="json", exclude_none=True)
    data.pop("qc"), data.pop("calendars")
    buffers = np.array([[-1, b] for b in np.arange(designs) % 4])
    evaluators = {}
    for name, line in (("with QC", spec), ("without QC", LineSpec.from_dict(data))):
        evaluators[name] = Evaluator(line, seed=1, replications=replications, max_buffer=4, chunk=designs)
        evaluators[name].evaluate(buffers=buffers)  # compiles
    times: dict[str, list[float]] = {name: [] for name in evaluators}
    for _ in range(rounds):
        for name, ev in evaluators.items():
            t = time.perf_counter()
            ev.evaluate(buffers=buffers)
            times[name].append((time.perf_counter() - t) / designs)
    per = {name: float(np.median(ts)) for name, ts in times.items()}
    for name, value in per.items():
        print(f"kernel {name}: {value * 1000:.2f} ms per design ({replications} replications, {weeks} weeks; median of"
              f" {rounds}, {min(times[name]) * 1000:.2f} at best)")
    t = time.perf_counter()
    simulate(spec, seed=1, replications=replications)
    engine = time.perf_counter() - t
    print(f"SimPy with QC: {engine * 1000:.0f} ms per design; kernel {engine / per['with QC']:.0f}x faster")
    print("load:", Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "unknown")


if __name__ == "__main__":
    main()
