"""Debris after kill -9: `twin run --out DIR` killed at random moments, then the next write to the same place.

    python benchmarks/bench_debris.py [--tries 20] [--seed 1]

Each try starts `twin run osd-tablet --horizon "8 w" -r 3 --out DIR`, kills it with SIGKILL after a random
delay (half to 1.1 times what a whole run takes: the folder is written at the end), counts the temporary
folders left beside DIR, then runs the same command again (after removing DIR if the killed run had finished)
and counts what is left beside DIR after it.
The second count must be 0 every time.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TWIN = str(Path(sys.executable).parent / "twin")
COMMAND = ["run", "osd-tablet", "--horizon", "8 w", "-r", "3", "--out"]


def debris(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="twin-debris-") as tmp:
        root = Path(tmp)
        target = root / "run"
        start = time.monotonic()
        subprocess.run([TWIN, *COMMAND, str(target)], check=True, capture_output=True)
        whole = time.monotonic() - start
        shutil.rmtree(target)
        left_by_kill = finished = left_after = 0
        for _ in range(args.tries):
            proc = subprocess.Popen([TWIN, *COMMAND, str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5 * whole, 1.1 * whole))  # the write is near the end
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            left_by_kill += bool(debris(root))
            if target.exists():
                finished += 1
                shutil.rmtree(target)
            subprocess.run([TWIN, *COMMAND, str(target)], check=True, capture_output=True)
            left_after += len(debris(root))
            shutil.rmtree(target)
        print(f"a whole run: {whole:.1f} s; {args.tries} kill -9 at random moments: {finished} had finished, "
              f"{left_by_kill} left a temporary folder; debris after the next write to the same place: {left_after}")


if __name__ == "__main__":
    main()
