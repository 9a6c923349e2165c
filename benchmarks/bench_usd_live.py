"""Benchmark of the live USD scene (issue 19): layer size and write time, plant change -> layer on disk.

    python benchmarks/bench_usd_live.py --quick            # under a minute
    python benchmarks/bench_usd_live.py --seconds 60 --png docs/screenshots/usd-live-top.png

1. Size and write time of live.usda for both built-in lines, their state mid-run (a real SimPy run
   applied row by row up to 250 h), 20 rewrites each.
2. Latency: an emulated plant (a quick line at real-time speed, plus 1,000 load-test tags at 10 Hz)
   followed by ``PlantSync`` with a live scene (``--usd-interval``), and a reader process
   (tests/usd_live_reader.py) that reloads the layer whenever the file is replaced. Latency of a
   state change = when the reader first saw it - when the plant made it (PLC.Start's wall clock plus
   the change's plant time; measured before the call, so figures err high by up to the call's duration,
   which is printed). The part this code adds, from the sync's receipt of the value to the reader
   seeing it on disk, is measured exactly (one clock). The reader polls every 10 ms.
3. Optionally a top view of the live scene as a PNG (drawn with Pillow from the composed stage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TWIN = str(Path(sys.executable).parent / "twin")


def layer_figures(rewrites: int, png: Path | None = None) -> dict[str, dict[str, float]]:
    from connectors.usd.live import LIVE_FILE, LiveScene
    from twin.experiment import run
    from twin.models import load_spec

    out = {}
    for name in ("osd-tablet", "sterile-fill-finish"):
        spec = load_spec(name)
        result = run(spec, replications=1, seed=1, horizon=400.0, warmup=0.0)
        table = result.log.table
        with tempfile.TemporaryDirectory() as folder:
            scene = LiveScene(spec, Path(folder) / "live", interval_s=3600)
            scene.line.apply_rows(table[(table["time"] <= 250.0) & (table["event"] != "end")])
            scene.line.set_kpis(result.kpis.summary)
            scene.start()
            times = []
            for _ in range(rewrites):
                began = time.perf_counter()
                scene.write_now()
                times.append(time.perf_counter() - began)
            scene.close()
            size = (Path(folder) / "live" / LIVE_FILE).stat().st_size
            if png is not None and name == "osd-tablet":
                top_view(Path(folder) / "live" / "scene.usda", png)
        units = sum(s.units for s in spec.stations)
        out[name] = {"units": units, "batches shown": len(scene.line.where), "live.usda KB": size / 1000,
                     "write p50 ms": 1000 * float(np.median(times)), "write max ms": 1000 * max(times)}
    return out


def latency(seconds: float, tags: int, rate: float, interval: float) -> dict[str, float]:
    import yaml

    from connectors.opcua.sync import PlantSync, SyncOptions
    from connectors.opcua.tagmap import default_tag_map, dump_tag_map, parse_tag_map
    from connectors.opcua.uabase import ClientOptions, free_port
    from connectors.usd.live import LiveScene, plant_feed
    from tests.opcua_helpers import call
    from tests.test_usd_live import QUICK_YAML
    from twin.spec.loader import spec_from_data

    work = Path(tempfile.mkdtemp(prefix="bench-usd-live-"))
    (work / "quick.yaml").write_text(QUICK_YAML)
    spec = spec_from_data(yaml.safe_load(QUICK_YAML), "quick.yaml")
    (work / "map.yaml").write_text(dump_tag_map(default_tag_map(spec)))
    ep = f"opc.tcp://127.0.0.1:{free_port()}"
    emu_args = [TWIN, "emulate", "quick.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none",
                "--allow-anonymous", "--speed", "1", "--paused", "--pki", "pki-e", "--bench-tags", str(tags),
                "--bench-rate", str(rate)]
    from connectors.opcua.security import Users

    Users.add(work / "users.yaml", "op", "operator", "pw")
    emu_args += ["--users", "users.yaml"]
    emu = subprocess.Popen(emu_args, cwd=work, stderr=open(work / "emu.log", "w"))  # noqa: SIM115
    deadline = time.monotonic() + 120
    while "emulating" not in (work / "emu.log").read_text():
        if time.monotonic() > deadline or emu.poll() is not None:
            raise RuntimeError((work / "emu.log").read_text())
        time.sleep(0.2)
    scene = LiveScene(spec, work / "live", interval_s=interval)
    scene.start()
    tag_map = parse_tag_map(default_tag_map(spec), "default", spec)
    names = tuple(f"BENCH_{i + 1:04d}" for i in range(tags))
    feed = plant_feed(scene, tag_map)
    state_tags = {unit.state for _, _, unit in tag_map.units()}
    receipts: list[tuple[int, float]] = []  # (source_us, wall) of each state value the sync received

    def on_value(tag: str, source_us: int, value: object, status: int) -> None:
        if tag in state_tags:
            receipts.append((source_us, time.time()))
        feed(tag, source_us, value, status)

    options = SyncOptions(client=ClientOptions(ep, pki=work / "pki-s", security="none"), historian=work / "h.db",
                          kpi_every=5, extra_tags=names, on_value=on_value)
    sync = PlantSync(spec, tag_map, options)
    reader = None
    figures: dict[str, float] = {}

    async def go() -> None:
        nonlocal reader
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        while sync.state != "connected":
            await asyncio.sleep(0.1)
        reader = subprocess.Popen([sys.executable, str(ROOT / "tests" / "usd_live_reader.py"), "live", "r.json",
                                   "--poll", "0.01"], cwd=work)
        await asyncio.sleep(2)
        started = time.time()
        await asyncio.to_thread(call, ep, "urn:twin:plc:quick", "PLC", "Start", pki=work / "pki-c")
        start_call = time.time() - started  # the run began within this window (a fresh client connects first)
        await asyncio.sleep(seconds)
        stop.set()
        await task
        scene.close()
        (work / "live" / "stop-reader").touch()
        reader.wait(60)
        read = json.loads((work / "r.json").read_text())
        lat = [wall - (started + t * 3600) for seen in read["units"].values() for t, _, wall in seen[1:]]
        lat_ms = 1000 * np.array(lat)
        origin = read["origin"]
        received = {round(us / 1e3): wall for us, wall in receipts}  # source ms -> when the sync had it
        receipt_ms, disk_ms = [], []
        for seen in read["units"].values():
            for t, _, wall in seen[1:]:
                got = received.get(round((origin + t * 3600) * 1e3))
                if got is not None:
                    receipt_ms.append(1000 * (got - (started + t * 3600)))
                    disk_ms.append(1000 * (wall - got))
        figures.update({"state changes seen": len(lat), "values received": sync.stats.received,
                        "rewrites": scene.sequence, "latency p50 ms": float(np.percentile(lat_ms, 50)),
                        "latency p99 ms": float(np.percentile(lat_ms, 99)), "latency max ms": float(lat_ms.max()),
                        "Start call took ms (latencies may be high by up to this)": 1000 * start_call,
                        "write p50 ms": 1000 * float(np.median(scene.write_seconds)),
                        "of which plant -> sync received p50 ms": _pct(receipt_ms, 50),
                        "of which received -> seen on disk p50 ms": _pct(disk_ms, 50),
                        "received -> seen on disk p99 ms": _pct(disk_ms, 99)})

    try:
        asyncio.run(go())
    finally:
        emu.terminate()
        emu.wait(30)
        if reader is not None and reader.poll() is None:
            reader.kill()
    figures["folder"] = str(work)  # type: ignore[assignment]
    return figures


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def top_view(scene: Path, png: Path, size: int = 1200) -> None:
    """A top view of the composed stage: every status pad in its state's colour, buffers, batches (Pillow)."""
    from PIL import Image, ImageDraw
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(scene))
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), [UsdGeom.Tokens.default_])
    shapes = []
    for prim in stage.Traverse():
        name = prim.GetName()
        if name in ("StatusPad", "Area", "Body", "Floor"):
            box = cache.ComputeWorldBound(prim).ComputeAlignedRange()
            color_attr = prim.GetAttribute("primvars:displayColor")
            color = tuple(color_attr.Get()[0]) if color_attr and color_attr.Get() else (0.7, 0.7, 0.7)
            if name == "Body" and not prim.GetParent().GetAttribute("twin:location").Get():
                continue
            label = ""
            if name == "StatusPad":
                unit = prim.GetParent()
                label = f"{unit.GetAttribute('twin:station').Get()} #{unit.GetAttribute('twin:unit').Get()}: "
                label += str(unit.GetAttribute("twin:state").Get() or "-")
            shapes.append((name, box.GetMin(), box.GetMax(), color, label))
    floor = next(s for s in shapes if s[0] == "Floor")
    (x0, y0), (x1, y1) = (floor[1][0], floor[1][1]), (floor[2][0], floor[2][1])
    scale = size / max(x1 - x0, y1 - y0)
    image = Image.new("RGB", (int((x1 - x0) * scale), int((y1 - y0) * scale)), "white")
    draw = ImageDraw.Draw(image)
    order = {"Floor": 0, "Area": 1, "StatusPad": 2, "Body": 3}
    for name, low, high, color, label in sorted(shapes, key=lambda s: order[s[0]]):
        box = [(low[0] - x0) * scale, (y1 - high[1]) * scale, (high[0] - x0) * scale, (y1 - low[1]) * scale]
        fill = tuple(int(255 * c) for c in color)
        if name == "Body":
            draw.ellipse(box, fill=fill, outline="black")
        else:
            draw.rectangle(box, fill=fill, outline="black" if name != "Floor" else None)
        if label:
            draw.text((box[0] + 4, box[3] + 3), label, fill="white")
    png.parent.mkdir(parents=True, exist_ok=True)
    image.save(png)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--png", type=Path, default=None, help="write a top view of the live scene here")
    args = parser.parse_args()
    seconds = 15.0 if args.quick else args.seconds
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}  cpus: {os.cpu_count()}")
    for line, figures in layer_figures(5 if args.quick else 20, args.png).items():
        print(line, json.dumps({k: round(v, 2) for k, v in figures.items()}))
    lat = latency(seconds, args.tags, args.rate, args.interval)
    folder = lat.pop("folder")
    print(f"latency ({args.tags} tags at {args.rate:g} Hz, --usd-interval {args.interval:g} s, {seconds:g} s):",
          json.dumps({k: round(v, 1) for k, v in lat.items()}))
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")
    if args.png:
        print(f"top view of osd-tablet's live scene at 250 h written to {args.png}")
    print(f"the plant's live scene: {folder}/live/scene.usda")


if __name__ == "__main__":
    main()
