"""CLI start-up: ``twin --help``, ``version``, ``models`` and ``validate`` against ``python -c "import twin"``.

    python benchmarks/bench_cli.py [--rounds 15] [--before main]

Each command runs as a real process of this Python, with the code of this checkout ("after") and with
the code of git ref ``--before`` ("before", extracted to a temporary folder; ``--before ''`` skips it).
Rounds alternate the variants and commands, so that machine noise hits them all alike; the figures are
medians over rounds of the wall time and of the CPU time (user + system, the process's own) — on a
shared machine the CPU time is the steadier figure. Bytecode caches are written (by a warm-up run of
each) and used, as in an installed package, even where ``PYTHONDONTWRITEBYTECODE`` is set. "extra" is
a command's median less that of the bare ``import twin`` of the same variant: the goal is under 0.3 s
for each of the four commands.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["twin", "plant_models", "connectors", "optimizers", "dashboards"]
COMMANDS = {
    "import twin": ["-c", "import twin"],
    "twin --help": ["-c", "from twin.cli.entry import main; main()", "--help"],
    "twin version": ["-c", "from twin.cli.entry import main; main()", "version"],
    "twin models": ["-c", "from twin.cli.entry import main; main()", "models"],
    "twin validate": ["-c", "from twin.cli.entry import main; main()", "validate", "osd-tablet"],
}


def timed(code_root: Path, args: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one process running this Python with ``args`` on the code in ``code_root``."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "COLUMNS": "120"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules load from .pyc (written by the warm-up run)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL, cwd=code_root)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def extract(ref: str, into: Path) -> Path:
    """The packages of git ``ref`` in a folder of their own."""
    archive = subprocess.run(["git", "archive", ref, *PACKAGES], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", default="main", help="git ref of the 'before' code ('' for none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"after": ROOT}
        if args.before:
            variants = {f"before ({args.before})": extract(args.before, Path(tmp)), **variants}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for root in variants.values():  # one warm-up of each (file cache, .pyc)
            for command in COMMANDS.values():
                timed(root, command)
        for i in range(args.rounds):
            order = list(variants.items()) if i % 2 == 0 else list(variants.items())[::-1]
            for variant, root in order:
                for name, command in COMMANDS.items():
                    times.setdefault((variant, name), []).append(timed(root, command))
        print(f"median of {args.rounds} alternating rounds, seconds (wall / CPU); extra = less `import twin`")
        print(f"{'variant':<16} {'command':<15} {'wall':>7} {'cpu':>7} {'extra wall':>11} {'extra cpu':>10}")
        for variant in variants:
            base = [statistics.median(x[k] for x in times[(variant, "import twin")]) for k in (0, 1)]
            for name in COMMANDS:
                wall, cpu = (statistics.median(x[k] for x in times[(variant, name)]) for k in (0, 1))
                print(f"{variant:<16} {name:<15} {wall:7.3f} {cpu:7.3f} {wall - base[0]:11.3f} {cpu - base[1]:10.3f}")


if __name__ == "__main__":
    main()
