"""Soak: does a plant twin's tick stay flat as its history grows? Tick time, lag, RSS and historian size
against simulated time and stored rows.

    python benchmarks/bench_soak.py --quick                  # about a minute: the three parts, small
    python benchmarks/bench_soak.py --rows 20000000          # the dense feed up to 20 M stored samples
    python benchmarks/bench_soak.py --emulator-seconds 600   # the emulator part for 10 minutes
    python benchmarks/bench_soak.py --only view              # the view over a plant year, first week vs last

1. Dense synthetic feed (this process): a line of 50 stations whose map has 300 tags (state, batch,
   good-units and scrap counters, finished batches, alarm per unit), every tag sampled at 1 Hz of
   plant time (a PLC that publishes each tag every second, changed or not). Stages grow the historian
   to ``--rows`` stored samples (written in bulk, decoded once, as a sync catching up would), then run
   ``--ticks`` service ticks of 5 s of feed each (1,500 samples: what a real sync gets between two KPI
   refreshes) through the sync's own view (``PlantView.tick``: incremental decode, KPIs, compact KPI row).
   Printed per stage: stored rows, plant days, median and max tick, RSS, historian MB, MB per plant day,
   and one Live page refresh (its reads of the historian and its figures, in this process).
2. Emulator (real processes): ``twin emulate osd-tablet`` running ``--plant-hours`` (a year; --quick: a
   month) in about ``--emulator-seconds`` of wall time, feeding ``twin sync --shadow --metrics-port`` with
   the shipped map; /metrics is read every 5 s, and a Live page refresh timed. Printed: plant hours,
   stored values, tick, lag, RSS of the sync, historian MB, Live page refresh, against wall time.
3. The view alone (this process, ``--only view``): the emulator's tag values of the same run written
   into a historian every ``--view-every`` plant hours, each followed by the sync's ``PlantView.tick``,
   without and with the shadow twin; the mean tick of the first simulated week against the last week's.

The machine's load average is printed before and after: the machine is shared, figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TWIN = str(Path(sys.executable).parent / "twin")
T0 = 1_700_000_000_000_000
STATIONS = 50  # x 6 tags = 300 tags
BATCH_S = 7200  # plant seconds a unit takes per batch (finished-batches counter steps)


def rss_mb(pid: int | None = None) -> float:
    text = Path(f"/proc/{pid or 'self'}/status").read_text()
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("VmRSS"))) / 1024


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def dense_line():
    from connectors.opcua.tagmap import parse_tag_map
    from twin.spec.model import LineSpec

    spec = LineSpec.from_dict(
        {
            "name": "dense",
            "horizon": 24.0,
            "products": [{"name": "A", "batch_size": 10000}],
            "stations": [{"name": f"s{i:02d}", "process_time": 2.0} for i in range(STATIONS)],
        }
    )
    units = {
        f"s{i:02d}": [
            {
                "state": f"S{i}_STATE",
                "batch": f"S{i}_BATCH",
                "count": {"tag": f"S{i}_GOOD", "wrap": 2**32},
                "scrap": {"tag": f"S{i}_SCRAP", "wrap": 2**32},
                "done": {"tag": f"S{i}_DONE", "wrap": 2**16},
                "alarm": f"S{i}_ALARM",
            }
        ]
        for i in range(STATIONS)
    }
    tags = parse_tag_map({"namespace": "urn:dense", "states": {1: "processing", 3: "down", 4: "starved"},
                          "stations": units}, "dense", spec)  # fmt: skip
    return spec, tags


def dense_rows(ids: dict[str, int], start_s: int, seconds: int) -> list[tuple]:
    """Every tag's sample for each plant second in [start_s, start_s + seconds)."""
    t = np.arange(start_s, start_s + seconds, dtype=np.int64)
    us = T0 + t * 1_000_000
    rows: list[tuple] = []
    for i in range(STATIONS):
        phase = t + i * 97
        batch = phase // BATCH_S
        in_batch = phase % BATCH_S
        alarm = (phase % 36000) < 900  # a quarter-hour breakdown every 10 h
        state = np.where(alarm, 3, np.where(in_batch < 6600, 1, 4))
        good = batch * 6600 + np.minimum(in_batch, 6600)  # rises through each batch, one unit a second
        scrap = batch * 10 + (in_batch >= 6600) * 10
        columns = (
            (ids[f"S{i}_STATE"], state.tolist()),
            (ids[f"S{i}_BATCH"], [f"B{b}" for b in batch.tolist()]),
            (ids[f"S{i}_GOOD"], (good % 2**32).tolist()),
            (ids[f"S{i}_SCRAP"], (scrap % 2**32).tolist()),
            (ids[f"S{i}_DONE"], (batch % 2**16).tolist()),
            (ids[f"S{i}_ALARM"], alarm.tolist()),
        )
        for tag_id, values in columns:
            rows += [(tag_id, u, None, u, v, 0) for u, v in zip(us.tolist(), values, strict=True)]
    return rows


def dense(work: Path, stages: list[int], ticks: int) -> None:
    from connectors.opcua.historian import Historian
    from connectors.opcua.observer import PlantView

    spec, tags = dense_line()
    h = Historian(work / "dense.db")
    ids = h.register_tags(tags.all_tags())
    options = SimpleNamespace(warmup=0.0, shadow=False, until=None, seed=1, forecast_every=None)
    from connectors.opcua.tagmap import tag_map_text

    h.set_meta(line=spec.name, origin_us=T0, tag_map=tag_map_text(tags), state="connected")
    view = PlantView(spec, tags, T0, options, str(work / "dense.db"))
    per_second = len(ids)
    plant_s, stored = 0, 0
    print(f"dense feed: {len(ids)} tags at 1 Hz of plant time; ticks of 5 s of feed ({5 * per_second} samples)")
    print(f"{'stored rows':>12} {'plant days':>10} {'catch-up s':>10} {'tick p50 s':>10} {'tick max s':>10} "
          f"{'RSS MB':>7} {'hist. MB':>8} {'MB/plant day':>12} {'Live s':>6}")  # fmt: skip
    first = None
    for target in stages:
        started = time.perf_counter()
        while stored < target:  # bulk: 10 minutes of feed at a time, decoded as a sync catching up would
            seconds = min(600, max((target - stored) // per_second, 5))
            rows = dense_rows(ids, plant_s, seconds)
            h.append(rows)
            plant_s += seconds
            stored += len(rows)
            view.tick(T0 + plant_s * 1_000_000, {"received": stored})
        catch_up = time.perf_counter() - started
        times = []
        for _ in range(ticks):
            rows = dense_rows(ids, plant_s, 5)
            h.append(rows)
            plant_s += 5
            stored += len(rows)
            snap = view.tick(T0 + plant_s * 1_000_000, {"received": stored})
            h.add_kpis(snap["plant_hours"], snap)
            times.append(snap["tick_s"])
        p50 = float(np.median(times))
        first = first or p50
        mb = h.size_bytes() / 1e6
        days = plant_s / 86400
        print(f"{stored:>12,} {days:>10.2f} {catch_up:>10.1f} {p50:>10.3f} {max(times):>10.3f} {rss_mb():>7.0f} "
              f"{mb:>8.0f} {mb / days:>12.0f} {live_refresh_s(work / 'dense.db'):>6.3f}")  # fmt: skip
    print(f"tick p50, last stage / first stage: {p50 / first:.2f}")
    # compaction of everything the checkpoint covers: counters to per-minute aggregates, state changes kept
    h.save_checkpoint(view.observer.key, *view.observer.checkpoint())
    used_before, rows_before = used_mb(h), h.count()
    started = time.perf_counter()
    deleted = h.compact(keep_raw_hours=0.0)
    took = time.perf_counter() - started
    used_after = used_mb(h)
    days = plant_s / 86400
    print(f"compacted (keep raw 0 h) in {took:.1f} s: {rows_before:,} -> {h.count():,} samples ({deleted:,} deleted), "
          f"{used_before:.1f} -> {used_after:.1f} MB used: {used_before / days:.0f} -> {used_after / days:.0f} MB "
          "per plant day")
    view.close()
    h.close()


def used_mb(h) -> float:
    """Pages in use (the file keeps freed pages for reuse until a VACUUM)."""
    pragmas = ("page_count", "freelist_count", "page_size")
    pages, free, size = (h.db.execute(f"PRAGMA {p}").fetchone()[0] for p in pragmas)
    return (pages - free) * size / 1e6


def live_refresh_s(path: Path) -> float:
    """Seconds one refresh of the dashboard's Live page takes to read the historian and build its figures (with
    the free-form window: the KPIs since a week before the plant's clock)."""
    from datetime import UTC, datetime, timedelta

    from connectors.opcua.historian import Historian
    from dashboards.historians import HistorianAccess
    from dashboards.pages import live

    ctx = SimpleNamespace(historians=HistorianAccess(files=(path,)))
    h = Historian(path, readonly=True)
    meta = h.meta()
    h.close()
    since = None  # the free-form window too: the KPIs since a week before the plant's clock
    if meta.get("plant_us"):
        week_ago = datetime.fromtimestamp(float(meta["plant_us"]) / 1e6, tz=UTC) - timedelta(days=7)
        since = week_ago.replace(tzinfo=None).isoformat(sep=" ", timespec="minutes")
    started = time.perf_counter()
    data = live._read(ctx, str(path), since)
    live.units_figure(live.unit_states(data))
    live.history_figure(data["kpis"])
    live._kpi_table(data)
    live._status(data)
    return time.perf_counter() - started


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    return {ln.split()[0]: float(ln.split()[1]) for ln in lines if ln and not ln.startswith("#")}


def start_plc(ep: str, namespace: str, pki: Path) -> None:
    """Call PLC.Start as an operator."""
    import asyncio

    from connectors.opcua.uabase import ClientOptions, connect, namespace_index

    async def go() -> None:
        client = await connect(ClientOptions(ep, pki=pki, security="none", user="op", password="pw"), "caller")
        try:
            ns = await namespace_index(client, namespace)
            await client.get_node(f"ns={ns};s=PLC").call_method(f"{ns}:Start")
        finally:
            await client.disconnect()

    asyncio.run(go())


def wait_for(path: Path, text: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while text not in path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(path.read_text())
        time.sleep(0.3)


def emulator(work: Path, seconds: float, model: str, plant_hours: float, shadow: bool = True) -> None:
    from connectors.opcua.security import Users
    from connectors.opcua.uabase import free_port

    ep, port = f"opc.tcp://127.0.0.1:{free_port()}", free_port()
    Users.add(work / "users.yaml", "op", "operator", "pw")
    emu_log, sync_log = open(work / "emu.log", "w"), open(work / "sync.log", "w")  # noqa: SIM115
    speed = round(plant_hours * 3600 / seconds)  # the plant's time passes in about the wall time measured
    emu = subprocess.Popen([TWIN, "emulate", model, "--endpoint", ep, "--speed", str(speed), "--security", "none",
                            "--allow-anonymous", "--users", "users.yaml", "--pki", "pki-e", "--paused",
                            "--horizon", f"{plant_hours} h"], cwd=work, stderr=emu_log)  # fmt: skip
    wait_for(work / "emu.log", "emulating", emu)
    sync = subprocess.Popen([TWIN, "sync", model, "--endpoint", ep, "--security", "none", "--pki", "pki-s",
                             "--historian", "h.db", *(["--shadow"] if shadow else []), "--metrics-port", str(port)],
                            cwd=work, stderr=sync_log, stdout=subprocess.DEVNULL)  # fmt: skip
    wait_for(work / "sync.log", "subscribed to", sync)
    start_plc(ep, f"urn:twin:plc:{model}", work / "pki-c")
    print(f"emulator: {model}, {plant_hours:g} plant h at --speed {speed} -> twin sync{' --shadow' * shadow}, "
          "/metrics every 5 s")
    print(f"{'wall s':>7} {'plant h':>8} {'stored':>10} {'tick s':>7} {'lag s':>9} {'RSS MB':>7} {'hist. MB':>8} "
          f"{'Live s':>6}")  # fmt: skip
    started = time.monotonic()
    ticks: list[tuple[float, float]] = []  # (plant hours, tick seconds) of each /metrics read
    try:
        while time.monotonic() - started < seconds:
            time.sleep(5)
            try:
                m = metrics(port)
            except OSError:
                continue
            if "twin_sync_tick_seconds" not in m:
                continue
            ticks.append((m["twin_sync_plant_hours"], m["twin_sync_tick_seconds"]))
            print(f"{time.monotonic() - started:>7.0f} {m['twin_sync_plant_hours']:>8.1f} "
                  f"{m['twin_sync_values_stored_total']:>10,.0f} {m['twin_sync_tick_seconds']:>7.3f} "
                  f"{m.get('twin_sync_lag_seconds', float('nan')):>9.0f} {rss_mb(sync.pid):>7.0f} "
                  f"{m['twin_sync_historian_bytes'] / 1e6:>8.1f} {live_refresh_s(work / 'h.db'):>6.3f}",
                  flush=True)  # fmt: skip
    finally:
        for proc in (sync, emu):
            proc.terminate()
            proc.wait(60)
    if len(ticks) >= 4:  # flat: the mean tick of the first quarter of the run against the last quarter's
        quarter = len(ticks) // 4
        first, last = (float(np.mean([t for _, t in part])) for part in (ticks[:quarter], ticks[-quarter:]))
        print(f"tick mean: {first:.3f} s over the first quarter ({ticks[quarter - 1][0]:.0f} plant h), "
              f"{last:.3f} s over the last ({ticks[-quarter][0]:.0f}-{ticks[-1][0]:.0f} plant h): "
              f"ratio {last / first:.2f}")  # fmt: skip


def view_ticks(work: Path, model: str, plant_hours: float, every: float, shadow: bool) -> None:
    """The sync's view alone (this process): the emulator's tag values of a ``plant_hours`` run of ``model``
    written into a historian ``every`` plant hours, each followed by a ``PlantView.tick``; the mean tick of the
    first simulated week against the last week's (no other process competes, no wall-clock pacing)."""
    from connectors.opcua.emulator import PlantEmulator
    from connectors.opcua.historian import Historian
    from connectors.opcua.observer import PlantView
    from connectors.opcua.plantlog import US_PER_HOUR
    from connectors.opcua.tagmap import default_tag_map, parse_tag_map
    from connectors.opcua.uabase import ServerOptions
    from twin.engine import simulate
    from twin.models import load_spec

    spec = load_spec(model)
    tags = parse_tag_map(default_tag_map(spec), "map", spec)
    emu = PlantEmulator(spec, tags, ServerOptions(), speed=None, seed=1)
    run = simulate(spec, seed=1, horizon=plant_hours)
    first = {"batch": "", "product": "", "alarm": False}  # a tag's value before the run (counters, states: 0)
    samples = [(tag, T0, first.get(role.rsplit(".", 1)[-1], 0)) for tag, role in tags.all_tags().items()]
    for change in emu.live.apply(run.table[run.table["event"] != "end"]):
        samples += [(tag, T0 + round(change.time * US_PER_HOUR), v) for tag, v in emu._values(change)]
    h = Historian(work / f"view-{shadow}.db")
    ids = h.register_tags(tags.all_tags())
    options = SimpleNamespace(warmup=0.0, shadow=shadow, until=None, seed=1, forecast_every=None)
    view = PlantView(spec, tags, T0, options, str(work / f"view-{shadow}.db"))
    times = np.array([t for _, t, _ in samples])
    ticks, done, t = [], 0, 0.0  # per tick: plant hours, tick s, RSS MB, shadow rows held, historian MB, Live s
    while t < plant_hours:
        t = min(t + every, plant_hours)
        end_us = T0 + round(t * US_PER_HOUR)
        upto = int(np.searchsorted(times, end_us, side="right"))
        h.append([(ids[tag], ts, None, ts, v, 0) for tag, ts, v in samples[done:upto]])
        done = upto
        snap = view.tick(end_us, {})
        h.add_kpis(snap["plant_hours"], snap)
        h.set_meta(origin_us=T0, plant_us=end_us, line=spec.name, state="connected")
        edge = t <= 168 or t > plant_hours - 168  # the Live page timed in the first and the last week
        live = live_refresh_s(work / f"view-{shadow}.db") if edge else float("nan")
        held = view.shadow.retained() if view.shadow is not None else 0
        ticks.append((t, view.tick_s, rss_mb(), held, h.size_bytes() / 1e6, live))
    table = np.array(ticks)
    week, last = table[table[:, 0] <= 168], table[table[:, 0] > plant_hours - 168]
    print(f"view{' --shadow' if shadow else ''}: {model}, {plant_hours:g} plant h, a tick every {every:g} plant h "
          f"({len(ticks)} ticks, {len(samples):,} samples, {view.plant_kpis.rows:,} plant rows)")  # fmt: skip
    names = ("tick s (mean)", "RSS MB (mean)", "shadow rows held (max)", "historian MB (end of week)",
             "Live refresh s (max)")  # fmt: skip
    for i, name in enumerate(names, start=1):
        pick = {3: np.max, 4: lambda x: x[-1], 5: np.nanmax}.get(i, np.mean)
        a, b = float(pick(week[:, i])), float(pick(last[:, i]))
        print(f"  {name:<28} first week {a:>9.4f}  last week {b:>9.4f}  ratio {b / a if a else float('nan'):.2f}")
    growth = (last[-1, 4] - week[-1, 4]) / ((last[-1, 0] - week[-1, 0]) / 24)
    print(f"  historian growth {growth * 1000:.0f} kB per plant day (samples and one KPI row per tick)")
    view.close()
    h.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the three parts, small: about a minute")
    parser.add_argument("--rows", type=int, default=10_000_000, help="stored samples the dense feed grows to")
    parser.add_argument("--ticks", type=int, default=20, help="service ticks measured per stage")
    parser.add_argument("--emulator-seconds", type=float, default=120.0)
    parser.add_argument("--model", default="osd-tablet")
    parser.add_argument("--only", choices=("dense", "emulator", "view"), help="run one part")
    parser.add_argument("--view-every", type=float, default=6.0, help="plant hours between the view part's ticks")
    parser.add_argument("--no-shadow", action="store_true", help="the emulator part's sync without --shadow")
    parser.add_argument("--plant-hours", type=float, default=8760.0, help="plant time the emulator runs (a year)")
    args = parser.parse_args()
    rows, seconds, ticks = (600_000, 20.0, 10) if args.quick else (args.rows, args.emulator_seconds, args.ticks)
    plant_hours = 720.0 if args.quick else args.plant_hours
    stages = sorted({10_000, *np.geomspace(100_000, rows, 4).astype(int).tolist()})
    import dashboards.pages.live  # noqa: F401  (imported before any refresh is timed)

    print(f"load average {load()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="twin-soak-") as folder:
        if args.only in (None, "dense"):
            dense(Path(folder), stages, ticks)
            print()
        if args.only in (None, "emulator"):
            emulator(Path(folder), seconds, args.model, plant_hours, shadow=not args.no_shadow)
            print()
        if args.only in (None, "view"):
            for shadow in (False, True):
                view_ticks(Path(folder), args.model, plant_hours, args.view_every * (4 if args.quick else 1), shadow)
    print(f"load average {load()}")


if __name__ == "__main__":
    main()
