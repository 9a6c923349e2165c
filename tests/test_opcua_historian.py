"""The historian: concurrent readers, durability under kill -9, retention, queries and exports, bad values at run time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_cli
from opcua_helpers import LINE_YAML, TwinProcess, endpoint, wait_until

from connectors.opcua.blocking import BackgroundServer
from connectors.opcua.emulator import PlantEmulator
from connectors.opcua.historian import Historian, HistorianWriter, to_us
from connectors.opcua.sync import PlantSync, SyncOptions
from connectors.opcua.tagmap import default_state_codes, default_tag_map, dump_tag_map, parse_tag_map
from connectors.opcua.uabase import ClientOptions, ServerOptions
from twin.errors import InputError
from twin.spec.loader import spec_from_data

H = 3_600_000_000


def test_readers_read_while_the_writer_writes(tmp_path: Path):
    writer = HistorianWriter(tmp_path / "h.db", flush_s=0.01)
    tag = writer.historian.register_tags({"T": "test"})["T"]
    seen: list[int] = []

    def read() -> None:
        reader = Historian(tmp_path / "h.db", readonly=True)
        while len(seen) < 200:
            seen.append(reader.count())
            time.sleep(0.002)

    thread = threading.Thread(target=read)
    thread.start()
    for i in range(20_000):
        writer.put(tag, 1_000 * i, None, 1_000 * i, i, 0)
        if i % 1000 == 0:
            time.sleep(0.01)
    thread.join()
    writer.close()
    assert seen == sorted(seen) and seen[-1] > 0  # readers never blocked, never saw data vanish
    assert writer.acknowledged == 20_000 == Historian(tmp_path / "h.db", readonly=True).count()


def test_retention_queries_and_exports(tmp_path: Path):
    h = Historian(tmp_path / "h.db")
    ids = h.register_tags({"A": "a", "B": "b"})
    t0 = to_us("2025-03-01T00:00:00Z")
    h.append([(ids["A"], t0 + i * H, None, t0 + i * H, float(i), 0) for i in range(240)])  # 10 days, hourly
    h.append(
        [(ids["B"], t0 + i * H, None, t0 + i * H, "on" if i % 2 else "off", 0x80000000 * (i == 3)) for i in range(10)]
    )
    assert h.enforce_retention(keep_hours=48) == 191 + 10  # before hour 239 - 48: A keeps 191..239, B goes
    got = h.query(["A"], start="2025-03-10T00:00:00Z", end="2025-03-10T05:00:00Z")
    assert got["value"].tolist() == [216.0, 217.0, 218.0, 219.0, 220.0, 221.0]
    assert str(got["source_time"].iloc[0]) == "2025-03-10 00:00:00+00:00"
    assert h.latest(["A"])["value"].tolist() == [239.0]

    h.append([(ids["B"], t0 + 300 * H + i, None, 0, v, 0) for i, v in enumerate(["x", "y"])])
    h.close()
    r = run_cli(
        "history", str(tmp_path / "h.db"), "--tag", "A", "--start", "2025-03-10T22:00", "--out", str(tmp_path / "a.csv")
    )
    assert r.returncode == 0 and "2 samples written" in r.stdout
    csv = pd.read_csv(tmp_path / "a.csv")
    assert csv["value"].tolist() == [238.0, 239.0] and csv["source_time"].iloc[0] == "2025-03-10T22:00:00+00:00"
    r = run_cli("history", str(tmp_path / "h.db"), "--out", str(tmp_path / "all.parquet"))
    parquet = pd.read_parquet(tmp_path / "all.parquet")
    assert r.returncode == 0 and len(parquet) == 49 + 2 and set(parquet["tag"]) == {"A", "B"}
    r = run_cli("history", str(tmp_path / "h.db"), "--list")
    assert r.returncode == 0 and "A" in r.stdout
    r = run_cli("history", str(tmp_path / "h.db"), "--gaps")
    assert r.returncode == 0 and r.stdout.strip() == "no gaps"
    r = run_cli("history", str(tmp_path / "h.db"), "--tag", "C")
    assert r.returncode == 2 and "no tag(s) C" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(InputError, match=r"export to \.csv or \.parquet"):
        Historian(tmp_path / "h.db", readonly=True).export(tmp_path / "x.xlsx")
    with pytest.raises(InputError, match="no such historian"):
        Historian(tmp_path / "nothing.db", readonly=True)


def test_acknowledged_values_survive_a_kill_9_of_the_sync(tmp_path: Path):
    (tmp_path / "line.yaml").write_text(LINE_YAML)
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    (tmp_path / "map.yaml").write_text(dump_tag_map(default_tag_map(spec)))
    ep = endpoint()
    emu = TwinProcess(
        [
            "emulate",
            "line.yaml",
            "--endpoint",
            ep,
            "--map",
            "map.yaml",
            "--speed",
            "3600",
            "--security",
            "none",
            "--allow-anonymous",
            "--pki",
            "pki-emu",
            "--bench-tags",
            "50",
            "--bench-rate",
            "20",
        ],
        tmp_path,
        "emu",
    )
    with emu:
        emu.wait_for("emulating mini")
        args = [
            "sync",
            "line.yaml",
            "--endpoint",
            ep,
            "--map",
            "map.yaml",
            "--security",
            "none",
            "--pki",
            "pki-sync",
            "--historian",
            "h.db",
            "--kpi-every",
            "0.5",
        ] + [f"--extra-tag=BENCH_{i:04d}" for i in range(1, 51)]
        feed = TwinProcess(args, tmp_path, "sync")
        feed.wait_for("subscribed to 85 tags")
        reader = Historian(tmp_path / "h.db", readonly=True)
        acknowledged = wait_until(lambda: (n := reader.count()) > 3000 and n, what="values stored")
        feed.kill()  # SIGKILL: no chance to flush or close anything
        reader.close()
        db = sqlite3.connect(tmp_path / "h.db")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        after = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        db.close()
        assert after >= acknowledged
        origin = Historian(tmp_path / "h.db", readonly=True).meta()["origin_us"]

        feed = TwinProcess(args, tmp_path, "sync2")  # the same historian: same clock, the time away is a gap
        feed.wait_for("subscribed to 85 tags")
        wait_until(lambda: Historian(tmp_path / "h.db", readonly=True).count() > after + 500, what="more values")
        assert feed.stop() == 0
        emu.stop()
    h = Historian(tmp_path / "h.db", readonly=True)
    assert h.meta()["origin_us"] == origin and "sync restarted" in h.gaps()["reason"].tolist()
    bench = h.query(["BENCH_0007"])
    assert bench["value"].is_monotonic_increasing and bench["value"].is_unique  # repeats of the restart dropped
    beats = h.query(["PLC_HEARTBEAT"])["value"].to_numpy()
    assert len(beats) > 4 and (np.diff(beats) == 1).all()  # the seconds the sync was dead: fetched from history
    assert h.view()["acknowledged"] > 0 and len(h.kpis()) >= 1
    r = run_cli("history", str(tmp_path / "h.db"), "--gaps")
    assert r.returncode == 0 and "sync restarted" in r.stdout


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply")  # OEE of units never seen processing
def test_values_the_map_cannot_read_are_logged_counted_and_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    plant_layout = default_tag_map(spec)
    plant_layout["states"] = {(99 if s == "processing" else c): s for c, s in default_state_codes().items()}
    sync_map = default_tag_map(spec)  # does not know the plant's code 99
    ep = endpoint()
    options = ServerOptions(endpoint=ep, pki=tmp_path / "pki", security=("none",), allow_anonymous=True)

    def make() -> PlantEmulator:
        return PlantEmulator(
            spec, parse_tag_map(plant_layout, "plant", spec), options, speed=None, seed=2, horizon=100.0, paused=True
        )

    background = BackgroundServer(make)
    with background as emu:
        sync = PlantSync(
            spec,
            parse_tag_map(sync_map, "map.yaml", spec),
            SyncOptions(
                ClientOptions(ep, pki=tmp_path / "c", security="none"), tmp_path / "h.db", until=100.0, kpi_every=0.5
            ),
        )

        async def go():
            task = asyncio.create_task(sync.run(asyncio.Event()))
            await asyncio.to_thread(wait_until, lambda: sync.state == "connected", 30)
            background.call(lambda: emu.run_.start(time.monotonic()))
            return await asyncio.wait_for(task, 60)

        result = asyncio.run(go())
    bad = result.decoded.bad_values
    assert set(bad) == {"MIX_U1_STATE", "FILL_U1_STATE", "FILL_U2_STATE", "PACK_U1_STATE"} and min(bad.values()) > 5
    assert (result.decoded.log.table["event"] == "finish").sum() > 50  # the feed went on: counters still count
    states = Historian(tmp_path / "h.db", readonly=True).query(["MIX_U1_STATE"])
    assert (states["value"] == 99).sum() == bad["MIX_U1_STATE"]  # stored as received
    assert "bad values" in caplog.text and "MIX_U1_STATE" in caplog.text
