"""Commands that print confidence intervals, as a person runs them: ``twin run``, ``compare``, ``sweep``, ``runs show``
and ``runs diff`` on a small line, wall and CPU time of each real process.

    python benchmarks/bench_commands.py [--quick] [--rounds 5] [--baseline REV]

The work is small on purpose (a 3-station line, 2 replications of 200 h): what is timed is what a command costs
besides its simulation, its start and the libraries it loads. ``--baseline REV`` (a git revision) times the same
commands on that revision's code, alternating fresh processes, and prints the ratios of the medians: before/after
in one run on one machine. ``--quick``: 2 rounds (under a minute on a quiet machine).
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

from baseline import ROOT, revision_tree

LINE = """name: bench-line
horizon: 200 h
stations:
  - {name: s1, process_time: {dist: exponential, mean: 1 h}}
  - {name: s2, process_time: {dist: gamma, mean: 1.1 h, sd: 0.4 h}, buffer: 2}
  - {name: s3, process_time: {dist: exponential, mean: 0.9 h}, buffer: 2}
"""
SHORT = ["-r", "2"]
COMMANDS = {
    "twin run": ["run", "line.yaml", *SHORT, "--json"],
    "twin compare": ["compare", "line.yaml", *SHORT, "-s", "bigger: stations.s2.buffer=4", "--json"],
    "twin sweep": ["sweep", "line.yaml", "--grid", "stations.s2.buffer=1,3", *SHORT, "--workers", "0", "--store",
                   "sweep-{variant}-{round}"],  # a new store each time: every point runs
    "twin runs show": ["runs", "show", "{run_a}", "--store", "store-{variant}"],
    "twin runs diff": ["runs", "diff", "{run_a}", "{run_b}", "--store", "store-{variant}"],
}  # fmt: skip


def timed(tree: Path, folder: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``twin`` process on the code in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "120"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    code = "from twin.cli.entry import main; main()"
    subprocess.run([sys.executable, "-c", code, *args], cwd=folder, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds (under a minute)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="a git revision to time against this tree")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}")
    revision = revision_tree(args.baseline) if args.baseline else contextlib.nullcontext()
    with revision as old, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "line.yaml").write_text(LINE, encoding="utf-8")
        trees = {"this tree": ROOT} if old is None else {args.baseline: old, "this tree": ROOT}
        runs: dict[str, dict[str, str]] = {}
        for variant, tree in enumerate(trees.values()):  # a store of two runs per variant, for show and diff
            sweep = [a.replace("sweep-{variant}-{round}", f"store-{variant}") for a in COMMANDS["twin sweep"]]
            timed(tree, folder, sweep)
            ids = sorted(p.name for p in (folder / f"store-{variant}" / "runs").iterdir())
            runs[str(variant)] = {"run_a": ids[0], "run_b": ids[1], "variant": str(variant)}
        figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_ in range(rounds):  # alternating variants and commands
            for command, template in COMMANDS.items():
                for variant, (name, tree) in enumerate(trees.items()):
                    argv = [a.format(**runs[str(variant)], round=round_) for a in template]
                    figures.setdefault((command, name), []).append(timed(tree, folder, argv))
        for command in COMMANDS:
            line = f"{command:<16}"
            medians = {}
            for name in trees:
                wall = statistics.median(w for w, _ in figures[(command, name)])
                cpu = statistics.median(c for _, c in figures[(command, name)])
                medians[name] = cpu
                line += f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU"
            if old is not None:
                a, b = medians.values()
                line += f"  ({a / b:.2f}x CPU)"
            print(line)
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]} ({rounds} rounds, medians)")


if __name__ == "__main__":
    main()
