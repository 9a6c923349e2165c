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
from opcua_helpers import LINE_YAML, TWIN, TwinProcess, call, endpoint

from twin.snapshot import Snapshot


def twin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([TWIN, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from connectors.opcua.tagmap import default_tag_map, dump_tag_map
    from twin.spec.loader import spec_from_data

    root = tmp_path_factory.mktemp("joined")
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    (root / "line.yaml").write_text(LINE_YAML.replace("horizon: 300 h", "horizon: 5000 h"))
    (root / "map.yaml").write_text(dump_tag_map(default_tag_map(spec)))
    from connectors.opcua.security import Users

    Users.add(root / "users.yaml", "op", "operator", "pw")
    ep = endpoint()
    emulate = ["emulate", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--users"]
    emulate += ["users.yaml", "--allow-anonymous", "--seed", "3", "--speed", "36000", "--paused", "--pki", "pki-emu"]
    with TwinProcess(emulate, root, "emu") as emu:
        emu.wait_for("emulating mini")
        call(ep, "urn:twin:plc:mini", "PLC", "Start", pki=root / "pki-caller")  # the plant runs before the sync joins
        sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s"]
        sync += ["--historian", "h.db", "--until", "40 h", "--json"]
        with TwinProcess(sync, root, "sync") as feed:
            if feed.proc.wait(300) != 0:
                raise RuntimeError(f"twin sync failed:\n{feed.log()}")
    return root


def test_a_snapshot_of_a_plant_joined_mid_run_carries_what_is_unknown_as_unknown(joined):
    done = twin("snapshot", "h.db", "--at", "0.2 h", "--out", "early.json", cwd=joined)
    assert done.returncode == 0, done.stderr
    raw = json.loads((joined / "early.json").read_text())
    snap = Snapshot.load(joined / "early.json")
    on_units = [u for u in snap.units if u.batch >= 0]
    assert on_units, "the plant was idle when the sync joined"
    # batches under way when the sync joined: their release is unknown (null) and their processing began before
    # the data, its elapsed time a lower bound
    joined_with = [u for u in on_units if u.started_before_data]
    assert joined_with and all(u.elapsed <= 0.2 + 1e-9 for u in joined_with)
    assert all(snap.batches[u.batch].released is None for u in joined_with)
    assert all(raw["batches"][str(u.batch)]["released"] is None for u in joined_with)
    assert "release time(s) unknown" in done.stdout  # the summary says so


def test_twin_forecast_accepts_the_snapshot_of_a_plant_joined_mid_run(joined):
    assert twin("snapshot", "h.db", "--at", "0.2 h", "--out", "early.json", cwd=joined).returncode == 0
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
    table = twin("forecast", "line.yaml", "--state", "end.json", "--horizon", "24h", "-r", "10", cwd=joined)
    assert table.returncode == 0 and "hours from the snapshot" in " ".join(table.stdout.split()), table.stderr
