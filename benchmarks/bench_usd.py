"""USD export speed and size: a four-week run of the tablet line at one sample a minute.

    python benchmarks/bench_usd.py            # prints one line per figure

Simulates ``osd-tablet`` for four weeks (one replication, seed 1), writes the run folder, then
exports it as .usdc and .usda (median of 5 rounds after a warm-up, run folder already read), and
times the whole command ``twin export-usd RUN --out F`` in a fresh process (Python start, reading
the run folder and writing included). A twelve-week run shows how the export scales. Target:
under 3 s for the .usdc export of the four-week run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connectors.usd.export import export_scene, load_source
from twin.experiment import run
from twin.models import load_spec
from twin.runfolder import write_run

ROUNDS = 5


def _animated_attributes(path: Path) -> int:
    from pxr import Usd

    stage = Usd.Stage.Open(str(path))
    return sum(1 for prim in stage.Traverse() for attr in prim.GetAttributes() if attr.GetNumTimeSamples() > 0)


def bench(weeks: int, folder: Path) -> None:
    spec = load_spec("osd-tablet")
    result = run(spec, replications=1, seed=1, horizon=weeks * 168.0, warmup=0.0)
    run_dir = write_run(result, folder / f"run-{weeks}w")
    began = time.perf_counter()
    source = load_source(run_dir)
    read_s = time.perf_counter() - began
    print(f"osd-tablet, {weeks} weeks: {len(result.log)} event rows; reading the run folder {read_s:.2f} s")
    for fmt in ("usdc", "usda"):
        out = folder / f"line-{weeks}w.{fmt}"
        export_scene([source], out)  # warm-up: imports pxr, writes the assets
        times, report = [], None
        for _ in range(ROUNDS):
            report = export_scene([source], out)
            times.append(report.seconds)
        assert report is not None
        minutes = round(report.end_code - report.start_code) + 1
        dense = _animated_attributes(out) * minutes
        print(
            f"  .{fmt}: export {statistics.median(times):.3f} s (median of {ROUNDS}, min {min(times):.3f} s), "
            f"{report.bytes / 1e6:.2f} MB, {report.samples:,} time samples stored for {minutes:,} one-minute "
            f"time codes ({dense:,} if every animated attribute were stored every minute), "
            f"{report.units} units, {report.batches} batches"
        )
    twin = Path(sys.executable).parent / "twin"
    out = folder / f"cli-{weeks}w.usdc"
    began = time.perf_counter()
    subprocess.run([str(twin), "export-usd", str(run_dir), "--out", str(out)], check=True, capture_output=True)
    print(f"  twin export-usd {run_dir.name} --out {out.name}: {time.perf_counter() - began:.2f} s wall, fresh process")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for weeks in (4, 12):
            bench(weeks, Path(tmp))


if __name__ == "__main__":
    main()
