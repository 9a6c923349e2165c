"""A reader of a live USD scene, run as its own process by the tests and the benchmark.

    python tests/usd_live_reader.py DIR RESULT.json [--validate N] [--poll 0.02]

It opens DIR/scene.usda as a stage, watches DIR/live.usda and, each time the file is replaced,
calls ``Sdf.Layer.Reload`` on it and reads every unit's recent state changes from the composed
stage. It stops when DIR/stop-reader exists and writes RESULT.json: per unit the changes seen
(plant hours, state, wall clock when first seen), the plant origin (Unix seconds), the rewrites
seen, and the problems of both validators (``pxr.UsdValidation``, the Omniverse asset validator
where installed) on the composed stage at the first N rewrites.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--validate", type=int, default=0)
    parser.add_argument("--poll", type=float, default=0.02)
    args = parser.parse_args()
    from pxr import Sdf, Usd

    from connectors.usd.schema import register_schema
    from connectors.usd.validation import omniverse_validator_available, validate_omniverse, validate_scene

    register_schema()
    folder: Path = args.folder
    live_path, stop = folder / "live.usda", folder / "stop-reader"
    stage = Usd.Stage.Open(str(folder / "scene.usda"))
    layer = Sdf.Layer.Find(str(live_path))
    units = [p for p in stage.Traverse() if p.HasAttribute("twin:recentStates")]
    line = stage.GetDefaultPrim().GetChildren()[0]
    seen: dict[str, list[tuple[float, str, float]]] = {str(p.GetPath()): [] for p in units}
    sequences: list[int] = []
    problems: list[str] = []
    validated = 0
    origin = None
    stamp = None
    while not stop.exists():
        try:
            st = os.stat(live_path)
        except FileNotFoundError:
            time.sleep(args.poll)
            continue
        now_stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if now_stamp == stamp:
            time.sleep(args.poll)
            continue
        stamp = now_stamp
        layer.Reload()
        wall = time.time()
        sequences.append(int(line.GetAttribute("twin:sequence").Get() or 0))
        attr = line.GetAttribute("twin:originUnixSeconds")
        if attr and attr.HasValue():
            origin = float(attr.Get())
        for prim in units:
            states = list(prim.GetAttribute("twin:recentStates").Get() or [])
            times = list(prim.GetAttribute("twin:recentTimes").Get() or [])
            mine = seen[str(prim.GetPath())]
            last = mine[-1][0] if mine else float("-inf")
            for t, state in zip(times, states, strict=True):
                if t > last:
                    mine.append((t, str(state), wall))
        if validated < args.validate:
            validated += 1
            problems += [f"[rewrite {sequences[-1]}] {p}" for p in validate_scene(stage)]
            if omniverse_validator_available():
                problems += [f"[rewrite {sequences[-1]}] {p}" for p in validate_omniverse(folder / "scene.usda")]
    args.result.write_text(json.dumps({"units": seen, "origin": origin, "sequences": sequences,
                                       "validated": validated, "problems": problems}))


if __name__ == "__main__":
    main()
