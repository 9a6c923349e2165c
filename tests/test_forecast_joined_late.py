"""The close-the-loop path in the normal case: a sync that joins a plant already running, then snapshot and forecast.

Real `twin` processes on loopback: `twin emulate` runs the `mini` line at 10 plant hours a second and
is started before `twin sync` connects, so the historian begins with batches under way whose release
(and start) the sync never saw. `twin snapshot` of that historian carries them as unknown, and
`twin forecast` accepts its sibling's file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from opcua_helpers import TWIN, TwinProcess, call, mini_plant, wait_until

from twin.snapshot import Snapshot


def twin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([TWIN, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def released(ep: str, root: Path) -> int:
    """The emulated PLC's release counter (a plain client read)."""
    import asyncio

    from connectors.opcua.uabase import ClientOptions, connect, namespace_index

    async def read() -> int:
        client = await connect(ClientOptions(ep, pki=root / "pki-reader", security="none"), "reader")
        try:
            ns = await namespace_index(client, "urn:twin:plc:mini")
            return int(await client.get_node(f"ns={ns};s=LINE_RELEASE_COUNT").read_value() or 0)
        finally:
            await client.disconnect()

    return asyncio.run(read())


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("joined")
    ep, emulate = mini_plant(root, "5000 h", seed=3, speed="36000")
    with TwinProcess(emulate, root, "emu") as emu:
        emu.wait_for("emulating mini")
        call(ep, "urn:twin:plc:mini", "PLC", "Start", pki=root / "pki-caller")  # the plant runs before the sync joins
        wait_until(lambda: released(ep, root) >= 8, timeout=120, what="8 batches released before the sync joins")
        sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s"]
        sync += ["--historian", "h.db", "--until", "40 h", "--json"]
        with TwinProcess(sync, root, "sync") as feed:
            if feed.proc.wait(300) != 0:
                raise RuntimeError(f"twin sync failed:\n{feed.log()}")
    return root


def test_a_snapshot_of_a_plant_joined_mid_run_carries_what_is_unknown_as_unknown(joined):
    done = twin("snapshot", "h.db", "--at", "0 h", "--out", "early.json", cwd=joined)  # where the data begin
    assert done.returncode == 0, done.stderr
    raw = json.loads((joined / "early.json").read_text())
    snap = Snapshot.load(joined / "early.json")
    live = {u.batch for u in snap.units if u.batch >= 0} | {b for w in snap.buffers.values() for b in w}
    assert live, "the plant was empty when the sync joined"
    # batches in the line when the sync joined: their release is unknown (null), and a batch being processed
    # began before the data (its elapsed time, 0 here, a lower bound)
    assert all(snap.batches[b].released is None and raw["batches"][str(b)]["released"] is None for b in live)
    processing = [u for u in snap.units if u.batch >= 0 and u.state == "processing"]
    assert all(u.started_before_data and u.elapsed == 0.0 for u in processing)
    assert "release time(s) unknown" in done.stdout  # the summary says so


def test_twin_forecast_accepts_the_snapshot_of_a_plant_joined_mid_run(joined):
    assert twin("snapshot", "h.db", "--at", "0 h", "--out", "early.json", cwd=joined).returncode == 0
    snap = Snapshot.load(joined / "early.json")
    live = sorted({u.batch for u in snap.units if u.batch >= 0} | {b for w in snap.buffers.values() for b in w})
    fc = twin("forecast", "line.yaml", "--state", "early.json", "--horizon", "24h", "-r", "20", "--json", cwd=joined)
    assert fc.returncode == 0, fc.stderr
    result = json.loads(fc.stdout)
    assert [b["batch"] for b in result["batches"]] == live  # every batch in the line, the unknown ones included
    assert all(b["label"] for b in result["batches"])  # named by the plant's own ids
    completed = result["totals"]["completed"]
    assert 5 <= completed["p5"] <= completed["p50"] <= completed["p95"] <= 40
    # and the forecast from where the historian ends (the sync's last state)
    assert twin("snapshot", "h.db", "--out", "end.json", cwd=joined).returncode == 0
    assert not any(u.started_before_data for u in Snapshot.load(joined / "end.json").units)  # 40 h on: all seen
    table = twin("forecast", "line.yaml", "--state", "end.json", "--horizon", "24h", "-r", "10", cwd=joined)
    assert table.returncode == 0 and "hours from the snapshot" in " ".join(table.stdout.split()), table.stderr


def test_the_place_in_the_plan_is_found_from_the_releases_seen(joined):
    # the sync joined somewhere in the plan (3 A, 2 B, repeated): the releases in the data place it, and the next
    # release the forecast makes is the product the plant released next; before enough releases, runs differ
    import numpy as np

    from connectors.opcua.logsource import historian_decoded
    from twin.forecast import plan_position
    from twin.snapshot import snapshot_from_log
    from twin.spec.loader import spec_from_data

    spec = spec_from_data(yaml.safe_load((joined / "line.yaml").read_text()), "line.yaml")
    plan = [c.product for c in spec.release.plan for _ in range(c.batches)]
    log = historian_decoded(joined / "h.db").log
    releases = log.table[log.table["event"] == "release"]
    assert len(releases) >= 10
    unique = 0
    for at in np.linspace(2.0, 35.0, 12):
        snap = snapshot_from_log(log, float(at))
        places = {plan_position(spec, snap, np.random.default_rng(i)) % len(plan) for i in range(20)}
        after = releases[releases["time"] > at]
        assert str(after["product"].iloc[0]) in {plan[p] for p in places}, at  # the truth is among the places
        if len(snap.releases_seen) >= len(plan):  # a whole round of the plan seen: one place only
            assert len(places) == 1, (at, places)
            unique += 1
    assert unique >= 6
    early = snapshot_from_log(log, float(releases["time"].iloc[0]) / 2)  # no release seen yet: any place
    anywhere = {plan_position(spec, early, np.random.default_rng(i)) for i in range(40)}
    assert early.releases_seen == [] and len(anywhere) > 1
