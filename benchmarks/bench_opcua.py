"""OPC-UA throughput, loss and latency on loopback.

    python benchmarks/bench_opcua.py [--tags 1000] [--rate 10] [--seconds 30] [--security none]

1. Plant feed: ``twin emulate`` (its own process) changes ``--tags`` counters ``--rate`` times a second
   each (source timestamp = wall clock); the sync (this process: subscription, repeat check,
   historian writer thread) stores them. Printed: changes/s the emulator made and the historian
   stored, values lost (gaps in each counter's sequence), latency from source timestamp to the
   historian's commit (p50, p99, max), CPU of both processes.
2. Twin server: ``twin serve`` (its own process) publishes a line of 500 units every 0.1 s; one
   subscriber (this process) monitors 1,000 variables that change at every publish (each unit's
   StateCurrentTime and StateDurations.processing). Printed: changes/s delivered, the server's CPU.

The machine's load average is printed before and after: the machine is shared, figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TWIN = str(Path(sys.executable).parent / "twin")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start(args: list[str], cwd: Path, ready: str, log_name: str) -> subprocess.Popen[bytes]:
    log = open(cwd / log_name, "w")  # noqa: SIM115
    proc = subprocess.Popen([TWIN, *args], cwd=cwd, stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while ready not in (cwd / log_name).read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{args[0]} did not start:\n{(cwd / log_name).read_text()}")
        time.sleep(0.2)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(60)


def plant_feed(work: Path, tags: int, rate: float, seconds: float, security: str) -> dict[str, float]:
    from connectors.opcua.historian import Historian
    from connectors.opcua.sync import PlantSync, SyncOptions
    from connectors.opcua.tagmap import default_tag_map, parse_tag_map
    from connectors.opcua.uabase import ClientOptions, free_port
    from twin.spec.loader import spec_from_data

    line = {"name": "bench", "horizon": "100 w", "stations": [{"name": "s1", "process_time": "1 h"}]}
    (work / "line.yaml").write_text(yaml.safe_dump(line))
    spec = spec_from_data(line, "line.yaml")
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    emu = start(
        [
            "emulate",
            "line.yaml",
            "--endpoint",
            endpoint,
            "--speed",
            "1",
            "--bench-tags",
            str(tags),
            "--bench-rate",
            str(rate),
            "--pki",
            "pki-emu",
            "--allow-anonymous",
            "--security",
            security,
        ],
        work,
        "emulating",
        "emu.log",
    )
    names = tuple(f"BENCH_{i + 1:04d}" for i in range(tags))
    if security != "none":
        from connectors.opcua.security import Pki

        Pki(work / "pki-sync").ensure(f"urn:twin:sync:{os.uname().nodename}", "twin sync", server=False)
        Pki(work / "pki-emu").trust(work / "pki-sync" / "own" / "cert.der")
        Pki(work / "pki-sync").trust(work / "pki-emu" / "own" / "cert.der")
    options = SyncOptions(
        client=ClientOptions(endpoint, pki=work / "pki-sync", security=security),
        historian=work / "h.db",
        kpi_every=3600,
        extra_tags=names,
        measure_latency=True,
    )
    sync = PlantSync(spec, parse_tag_map(default_tag_map(spec), "default", spec), options)
    figures: dict[str, float] = {}

    async def run() -> None:
        stop_event = asyncio.Event()
        task = asyncio.create_task(sync.run(stop_event))
        while sync.state != "connected":
            await asyncio.sleep(0.1)
        await asyncio.sleep(5)  # warm-up
        cpu0, emu_cpu0, wall0 = time.process_time(), cpu_seconds(emu.pid), time.monotonic()
        t0_us, lat0 = int(time.time() * 1e6), len(sync.writer.latencies_us)
        bench_ids = {sync.tag_ids[n] for n in names}  # wall-clock source times (the line's tags carry the plant clock)
        await asyncio.sleep(seconds)
        cpu1, emu_cpu1, wall1 = time.process_time(), cpu_seconds(emu.pid), time.monotonic()
        t1_us, lat1 = int(time.time() * 1e6), len(sync.writer.latencies_us)
        await asyncio.sleep(2)  # what is in flight lands
        stop_event.set()
        await task
        measured = zip(sync.writer.latency_tags[lat0:lat1], sync.writer.latencies_us[lat0:lat1], strict=True)
        latencies = np.array([lat for tag, lat in measured if tag in bench_ids]) / 1000
        h = Historian(work / "h.db", readonly=True)
        df = h.query(list(names), start=t0_us / 1e6, end=t1_us / 1e6, raw_times=True)
        receipt = (df["received_us"] - df["source_us"]).to_numpy() / 1000
        lost = 0
        for _, values in df.groupby("tag")["value"]:
            v = np.sort(values.to_numpy(dtype=np.int64))
            lost += int(v[-1] - v[0] + 1 - len(np.unique(v)))
        window = (t1_us - t0_us) / 1e6
        figures.update(
            {
                "emulator changes/s (made)": len(df) / window + lost / window,
                "stored changes/s": len(df) / window,
                "lost values": lost,
                "latency p50 ms": float(np.percentile(latencies, 50)),
                "latency p99 ms": float(np.percentile(latencies, 99)),
                "latency max ms": float(latencies.max()),
                "  of which to receipt p50 ms": float(np.percentile(receipt, 50)),
                "  of which to receipt p99 ms": float(np.percentile(receipt, 99)),
                "sync CPU %": 100 * (cpu1 - cpu0) / (wall1 - wall0),
                "emulator CPU %": 100 * (emu_cpu1 - emu_cpu0) / (wall1 - wall0),
                "duplicates dropped": sync.stats.duplicates,
            }
        )

    gc.collect()
    gc.freeze()  # as `twin sync` does before it starts (connectors.opcua.cli.run_until_signal)
    try:
        asyncio.run(run())
    finally:
        gc.unfreeze()
        stop(emu)
    return figures


def twin_server(work: Path, units: int, seconds: float) -> dict[str, float]:
    from asyncua import Client, ua

    from connectors.opcua.uabase import free_port

    line = {
        "name": "big",
        "horizon": "100 w",
        "stations": [{"name": "s1", "units": units, "process_time": {"dist": "exponential", "mean": "10 h"}}],
    }
    (work / "big.yaml").write_text(yaml.safe_dump(line))
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    server = start(
        [
            "serve",
            "big.yaml",
            "--endpoint",
            endpoint,
            "--speed",
            "60",
            "--publish-interval",
            "0.1",
            "--security",
            "none",
            "--allow-anonymous",
            "--pki",
            "pki-serve",
        ],
        work,
        "serving",
        "serve.log",
    )
    counts = {"n": 0}

    async def run() -> dict[str, float]:
        from connectors.opcua.sync import Feed

        async with Client(endpoint, watchdog_intervall=10) as client:
            ns = await client.get_namespace_index("urn:twin:big")
            ids = [
                f"big.s1.Unit{u + 1}.{v}"
                for u in range(units)
                for v in ("StateCurrentTime", "StateDurations.processing")
            ]
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=100,
                RequestedLifetimeCount=10000,
                RequestedMaxKeepAliveCount=100,
                MaxNotificationsPerPublish=0,
                PublishingEnabled=True,
                Priority=0,
            )
            ticks: set[object] = set()  # the server stamps every value of one publish with the same source time

            def on_values(items: list[tuple[int, ua.DataValue]]) -> None:
                counts["n"] += len(items)
                ticks.update(dv.SourceTimestamp for _, dv in items)

            feed = Feed(client, params, on_values)
            await feed.init()
            for i in range(0, len(ids), 500):
                requests = [
                    feed._make_monitored_item_request(
                        client.get_node(ua.NodeId(n, ns)),
                        ua.AttributeIds.Value,
                        None,
                        100,
                        ua.MonitoringMode.Reporting,
                        0.0,
                    )
                    for n in ids[i : i + 500]
                ]
                await feed.create_monitored_items(requests)
            await asyncio.sleep(5)
            n0, cpu0, wall0, t0 = counts["n"], cpu_seconds(server.pid), time.monotonic(), len(ticks)
            await asyncio.sleep(seconds)
            n1, cpu1, wall1, t1 = counts["n"], cpu_seconds(server.pid), time.monotonic(), len(ticks)
            return {
                "variables monitored": len(ids),
                "delivered changes/s": (n1 - n0) / (wall1 - wall0),
                "target changes/s": len(ids) * 10,
                "server publishes/s": (t1 - t0) / (wall1 - wall0),
                "changes per publish": (n1 - n0) / max(t1 - t0, 1),
                "server CPU %": 100 * (cpu1 - cpu0) / (wall1 - wall0),
                "subscriber CPU % (this process)": float("nan"),
            }

    try:
        cpu_before = time.process_time()
        wall_before = time.monotonic()
        figures = asyncio.run(run())
        figures["subscriber CPU % (this process)"] = (
            100 * (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
        )
    finally:
        stop(server)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--security", default="none", choices=["none", "sign", "sign-encrypt"])
    parser.add_argument("--units", type=int, default=500, help="units of the served line (2 variables each)")
    parser.add_argument("--only", choices=["feed", "server"], default=None)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only != "server":
            print(
                f"\n1. plant feed: {args.tags} tags at {args.rate:g} Hz, emulator -> sync -> historian "
                f"({args.seconds:g} s, security {args.security})"
            )
            for key, value in plant_feed(work, args.tags, args.rate, args.seconds, args.security).items():
                print(f"   {key:32s} {value:10.1f}")
        if args.only != "feed":
            print(f"\n2. twin server: {2 * args.units} variables at 10 Hz to one subscriber ({args.seconds:g} s)")
            for key, value in twin_server(work, args.units, args.seconds).items():
                print(f"   {key:32s} {value:10.1f}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
