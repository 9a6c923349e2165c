"""Calibration: seconds per calibration of each built-in line from its own simulated log, and ``twin calibrate`` as a
person runs it (a first time, and again).

    python benchmarks/bench_calibrate.py [--quick] [--rounds 3] [--baseline REV]

In process: each line is simulated for ``--hours`` (several seeds), then calibrated from each log with every
family tried (the CLI's default), without the KPI comparison; the figure is the median CPU time of a calibration
once JAX has compiled its likelihoods (the first calibration, compilation included, is printed apart).

The command: ``twin calibrate LINE --from RUN -r 0`` in fresh processes, wall and CPU time. The first uses an empty
compilation cache (``TWIN_JAX_CACHE`` in a temporary folder, as on a new machine); the later ones find the
compiled likelihoods there.

``--baseline REV`` (a git revision) times the same in that revision and in this tree, alternating fresh
processes, and prints the ratios of the medians: before/after in one run on one machine. ``--quick``: one line,
fewer seeds and rounds (under a minute on a quiet machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import ROOT, revision_tree, run_in

MODELS = ("osd-tablet", "sterile-fill-finish")

_IN_PROCESS = """
import os, sys, time, statistics
os.environ["TWIN_JAX_CACHE"] = "off"  # the first calibration compiles, in both trees
from twin.calibrate import calibrate
from twin.engine import simulate
from twin.models import load_spec
spec, seeds, hours = load_spec(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
logs = [simulate(spec, seed=s, horizon=hours) for s in range(seeds + 1)]
start = time.process_time()
calibrate(spec, logs[0], replications=0)
first = time.process_time() - start
times = []
for log in logs[1:]:
    start = time.process_time()
    result = calibrate(spec, log, replications=0)
    times.append(time.process_time() - start)
print(first, statistics.median(times), len(result.report.parameters), len(logs[1].table))
"""


def in_process(tree: Path, model: str, seeds: int, hours: float) -> tuple[float, float, int, int]:
    """(first calibration s, median of the others s, parameters, rows of a log), CPU time, in a fresh process."""
    out = run_in(tree, _IN_PROCESS, model, str(seeds), str(hours)).split()
    return float(out[0]), float(out[1]), int(out[2]), int(out[3])


def command(tree: Path, folder: Path, model: str, cache: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``twin calibrate`` process on the code in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TWIN_JAX_CACHE": cache, "COLUMNS": "120"}
    code = "from twin.cli.entry import main; main()"
    args = ["calibrate", model, "--from", str(folder / "run"), "-r", "0", "--out", str(folder / "calibrated.yaml")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], cwd=folder, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (folder / "calibrated.yaml").unlink()
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one line, 2 seeds, 1 round (under a minute)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=4, help="calibrations timed per line and round")
    parser.add_argument("--hours", type=float, default=2000.0, help="hours of each simulated log")
    parser.add_argument("--baseline", help="a git revision to time against this tree")
    args = parser.parse_args()
    models, rounds, seeds = (MODELS[1:], 1, 2) if args.quick else (MODELS, args.rounds, args.seeds)
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}" if Path("/proc/loadavg").exists() else "")
    revision = revision_tree(args.baseline) if args.baseline else contextlib.nullcontext()
    with revision as old, tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT} if old is None else {args.baseline: old, "this tree": ROOT}
        for model in models:
            figures: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in trees}
            for _ in range(rounds):  # alternating fresh processes
                for name, tree in trees.items():
                    figures[name].append(in_process(tree, model, seeds, args.hours))
            for name, runs in figures.items():
                first, median = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
                _, _, parameters, rows = runs[0]
                print(f"{model} ({parameters} values, {rows:,} rows a log), {name}: {median:.3f} s CPU a calibration "
                      f"(median of {rounds} x {seeds}); the first, compiling: {first:.2f} s")  # fmt: skip
            if old is not None:
                a, b = (statistics.median(r[1] for r in figures[n]) for n in trees)
                print(f"{model}: {args.baseline} -> this tree: {a:.3f} s -> {b:.3f} s ({a / b:.2f}x)")
        model = models[0]
        folder = Path(tmp)
        code = "from twin.cli.entry import main; main()"
        subprocess.run([sys.executable, "-c", code, "run", model, "--horizon", f"{args.hours:g} h", "-r", "1",
                        "--out", str(folder / "run")], cwd=folder, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        cache = str(folder / "jax-cache")
        cold = command(ROOT, folder, model, cache)
        print(f"twin calibrate {model}, this tree, empty compilation cache: {cold[0]:.2f} s wall, {cold[1]:.2f} s CPU")
        timed: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                timed[name].append(command(tree, folder, model, cache if tree == ROOT else "off"))
        for name, runs in timed.items():
            wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            what = "again (cache filled)" if name == "this tree" else "every time (no cache)"
            print(f"twin calibrate {model}, {name}, {what}: {wall:.2f} s wall, {cpu:.2f} s CPU (median of {rounds})")
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}" if Path("/proc/loadavg").exists() else "")


if __name__ == "__main__":
    main()
