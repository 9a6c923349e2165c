"""The live USD scene (issue 19): `twin sync/serve --live-usd`, plant run folders in USD, state materials.

Real processes on loopback: an emulated plant, `twin sync --live-usd` following it, and a reader process
that reloads the live sublayer (tests/usd_live_reader.py) the way a viewer does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pxr import Sdf, Usd

from connectors.usd.live import LiveScene
from connectors.usd.validation import omniverse_validator_available, validate_omniverse, validate_scene
from tests.conftest import run_cli
from tests.opcua_helpers import TwinProcess, call, endpoint, wait_until
from twin.experiment import run
from twin.models import load_spec
from twin.snapshot import snapshot_from_log
from twin.spec.loader import spec_from_data

QUICK_YAML = """\
name: quick
time_unit: min
horizon: 600 min
warmup: 0 min
products:
  - {name: A, batch_size: 100}
  - {name: B, batch_size: 50}
release:
  mode: plan
  repeat: true
  plan: [{product: A, batches: 2}, {product: B, batches: 1}]
stations:
  - name: mix
    process_time: {dist: uniform, low: 4 s, high: 8 s}
    failures: {mtbf: {dist: exponential, mean: 15 s}, mttr: {dist: exponential, mean: 4 s}}
  - name: fill
    units: 2
    buffer: 2
    process_time: {dist: uniform, low: 6 s, high: 14 s}
  - name: pack
    buffer: 1
    process_time: {dist: uniform, low: 3 s, high: 6 s}
"""
"""A line whose states change every few seconds at real-time speed (so that source times are wall times)."""

READER = Path(__file__).resolve().parent / "usd_live_reader.py"
INTERVAL = 0.5
LATENCY_CAP_S = 30.0  # generous: only a hang exceeds it (the figures are in docs/usd-live.md)


def _state_changes(table, station: str, unit: int) -> list[tuple[float, str]]:
    rows = table[(table["station"] == station) & (table["unit"] == unit) & table["state"].notna()]
    out: list[tuple[float, str]] = []
    for t, state in zip(rows["time"], rows["state"].astype(str), strict=True):
        if not out or out[-1][1] != state:
            out.append((float(t), state))
    return out


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Emulator (paused, real time) -> `twin sync --live-usd live --out plant-run` -> a reader process; the plant
    runs ~25 s after PLC.Start. Returns the folder, the reader's result, the emulator's own run and Start's wall time."""
    from connectors.opcua.tagmap import default_tag_map, dump_tag_map

    root = tmp_path_factory.mktemp("live-sync")
    (root / "quick.yaml").write_text(QUICK_YAML)
    spec = spec_from_data(__import__("yaml").safe_load(QUICK_YAML), "quick.yaml")
    (root / "map.yaml").write_text(dump_tag_map(default_tag_map(spec)))
    from connectors.opcua.security import Users

    Users.add(root / "users.yaml", "op", "operator", "pw")
    ep = endpoint()
    emulate = ["emulate", "quick.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--users",
               "users.yaml", "--allow-anonymous", "--speed", "1", "--paused", "--pki", "pki-e", "--out", "emu-run"]
    sync = ["sync", "quick.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s",
            "--historian", "h.db", "--live-usd", "live", "--usd-interval", str(INTERVAL), "--kpi-every", "2",
            "--out", "plant-run"]
    with TwinProcess(emulate, root, "emu") as emu:
        emu.wait_for("emulating quick")
        with TwinProcess(sync, root, "sync") as feed:
            feed.wait_for("subscribed to")
            reader = subprocess.Popen([sys.executable, str(READER), "live", "reader.json", "--validate", "4"], cwd=root)
            try:
                time.sleep(1.0)  # the reader has opened the stage
                started = time.time()  # before the call: latencies come out slightly high, never low
                call(ep, "urn:twin:plc:quick", "PLC", "Start", pki=root / "pki-caller")
                time.sleep(25)
                assert feed.stop() == 0, feed.log()
                (root / "live" / "stop-reader").touch()
                assert reader.wait(120) == 0
            finally:
                if reader.poll() is None:
                    reader.kill()
        assert emu.stop() == 0, emu.log()
    return {"root": root, "read": json.loads((root / "reader.json").read_text()), "started": started}


@pytest.mark.slow
def test_reader_sees_every_state_change_in_order_and_soon(synced: dict) -> None:
    from twin.runfolder import read_run

    read, root = synced["read"], synced["root"]
    emulated = read_run(root / "emu-run").log.table
    assert len(read["sequences"]) >= 5, "the reader saw few rewrites"
    assert read["sequences"] == sorted(read["sequences"])
    latencies = []
    checked = 0
    for path, seen in read["units"].items():
        station, unit = path.split("/")[-2], int(path.split("_")[-1])
        truth = _state_changes(emulated, station, unit)
        got = [(t, s) for t, s, _ in seen]  # plant hours, like the event log's times
        assert got, f"{path}: no state seen"
        # the first state seen is the state at the feed's start; from there every change, in order, same time
        start = max(i for i, (t, _) in enumerate(truth) if t <= got[0][0] + 1e-6)
        expected = truth[start : start + len(got)]
        assert [s for _, s in got] == [s for _, s in expected], path
        assert [t for t, _ in got[1:]] == pytest.approx([t for t, _ in expected[1:]], abs=1e-6), path
        # nothing the emulator changed before the sync stopped is missing (the last second may be in flight)
        last_seen = got[-1][0]
        missing = [c for c in truth[start + len(got):] if c[0] < last_seen]
        assert not missing, f"{path}: changes not seen: {missing}"
        checked += len(got) - 1
        latencies += [wall - (synced["started"] + t * 3600) for t, _, wall in seen[1:]]
    assert checked >= 5, "too few state changes to judge"
    assert max(latencies) < INTERVAL + LATENCY_CAP_S


def test_live_stage_passes_both_validators_at_several_rewrites(synced: dict) -> None:
    read = synced["read"]
    assert read["validated"] == 4
    assert read["problems"] == []
    stage = Usd.Stage.Open(str(synced["root"] / "live" / "scene.usda"))
    assert validate_scene(stage) == []
    assert stage.GetMetadata("metersPerUnit") == 1.0 and stage.GetMetadata("upAxis") == "Z"
    line = stage.GetDefaultPrim().GetChild("quick")
    assert line.GetAttribute("twin:kpi:oee").Get() is not None  # the sync's KPI snapshots reach the scene
    unit = line.GetChild("fill").GetChild("unit_0")
    state = unit.GetAttribute("twin:state").Get()
    assert state
    from twin.palette import state_color

    pad_color = tuple(unit.GetChild("StatusPad").GetAttribute("primvars:displayColor").Get()[0])
    look = unit.GetChild("StatusLook").GetChild("Surface").GetAttribute("inputs:diffuseColor").Get()
    assert pad_color == pytest.approx(state_color(state)) and tuple(look) == pytest.approx(state_color(state))


@pytest.mark.skipif(not omniverse_validator_available(), reason="omniverse-asset-validator is not installed")
def test_the_omniverse_validator_ran(synced: dict) -> None:
    assert validate_omniverse(synced["root"] / "live" / "scene.usda") == []


def test_a_plant_run_folder_exports_to_usd(synced: dict) -> None:
    root = synced["root"]
    assert json.loads((root / "plant-run" / "run.json").read_text())["seed"] is None
    done = run_cli("export-usd", "plant-run", "--out", "plant.usdc", "--step", "1 s", "--check", cwd=root)
    assert done.returncode == 0, done.stderr + done.stdout
    layer = Sdf.Layer.FindOrOpen(str(root / "plant.usdc"))
    assert layer.customLayerData["twin"]["seed"] == -1  # no seed: a plant's run
    stage = Usd.Stage.Open(layer)
    states = stage.GetPrimAtPath("/World/quick/fill/unit_0").GetAttribute("twin:state").GetTimeSamples()
    assert len(states) > 2


SPLIT_MERGE = {
    "name": "rules", "horizon": 60.0, "warmup": 0.0, "products": [{"name": "A", "batch_size": 100}],
    "release": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": 1}]},
    "stations": [{"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0}, "split": 2},
                 {"name": "s2", "process_time": {"dist": "exponential", "mean": 0.5}, "buffer": 3},
                 {"name": "s3", "process_time": {"dist": "exponential", "mean": 1.0}, "merge": 2}],
}  # fmt: skip


@pytest.mark.parametrize(("model", "at"), [("osd-tablet", 250.0), ("sterile-fill-finish", 250.0), ("split-merge", 37.3)])
def test_line_state_from_rows_agrees_with_the_snapshot_of_the_same_run(tmp_path: Path, model: str, at: float) -> None:
    """Applied row by row, the live state ends where ``twin.snapshot`` says the run is (a real SimPy run)."""
    from twin.spec.model import LineSpec

    spec = LineSpec.from_dict(SPLIT_MERGE) if model == "split-merge" else load_spec(model)
    result = run(spec, replications=1, seed=3, horizon=max(at + 50.0, 60.0), warmup=0.0)
    table = result.log.table
    scene = LiveScene(spec, tmp_path / "live", interval_s=0.05)
    scene.line.apply_rows(table[(table["time"] <= at) & (table["event"] != "end")])
    snap = snapshot_from_log(result.log, at)
    for unit in snap.units:
        now = scene.line.units[(unit.station, unit.unit)]
        assert now.state == unit.state, (unit.station, unit.unit)
        assert now.since == pytest.approx(unit.since)
        assert (now.batch or "-1") == str(unit.batch)
    for station, batches in snap.buffers.items():
        assert scene.line.buffers[station] == [str(b) for b in batches], station


def test_serve_keeps_a_live_scene(tmp_path: Path) -> None:
    (tmp_path / "quick.yaml").write_text(QUICK_YAML)
    args = ["serve", "quick.yaml", "--endpoint", endpoint(), "--security", "none", "--allow-anonymous", "--pki", "pki",
            "--speed", "30", "--live-usd", "live", "--usd-interval", "0.2"]
    with TwinProcess(args, tmp_path, "serve") as serve:
        serve.wait_for("serving quick")
        live = tmp_path / "live" / "live.usda"

        def rewrites() -> int:
            return int(Sdf.Layer.OpenAsAnonymous(str(live)).customLayerData["twin"]["sequence"])

        wait_until(lambda: rewrites() >= 5, timeout=120, what="five rewrites of live.usda")
        assert serve.stop() == 0, serve.log()
    stage = Usd.Stage.Open(str(tmp_path / "live" / "scene.usda"))
    assert validate_scene(stage) == []
    batches = stage.GetPrimAtPath("/World/quick/Batches").GetChildren()
    assert batches and all(b.GetAttribute("twin:location").Get() for b in batches)
    states = {stage.GetPrimAtPath(f"/World/quick/{s}/unit_0").GetAttribute("twin:state").Get() for s in ("mix", "pack")}
    assert "" not in states


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--usd-interval", "0", "--usd-interval 0: must be a positive number of seconds"),
     ("--live-usd", "afile", "--live-usd afile: is a file; give a folder")],
)
def test_bad_live_options_exit_2_with_one_line(tmp_path: Path, option: str, value: str, message: str) -> None:
    (tmp_path / "afile").write_text("x")
    args = ["serve", "osd-tablet", "--endpoint", endpoint(), "--security", "none", "--allow-anonymous", "--pki", "pki"]
    args += ["--live-usd", "live"] if option != "--live-usd" else []
    done = run_cli(*args, option, value, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "live").exists()


def test_state_materials_follow_the_state_in_an_exported_run(tmp_path: Path) -> None:
    done = run_cli("run", "osd-tablet", "--horizon", "400 h", "--out", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_cli("export-usd", "r", "--from", "336 h", "--out", "s.usdc", "--check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stage = Usd.Stage.Open(str(tmp_path / "s.usdc"))
    from pxr import UsdShade

    pad = stage.GetPrimAtPath("/World/osd_tablet/coating/unit_0/StatusPad")
    material, _ = UsdShade.MaterialBindingAPI(pad).ComputeBoundMaterial()
    shader = UsdShade.Shader(material.GetPrim().GetChild("Surface"))
    assert shader.GetIdAttr().Get() == "UsdPreviewSurface"
    colors = pad.GetAttribute("primvars:displayColor")
    diffuse = shader.GetInput("diffuseColor").GetAttr()
    codes = diffuse.GetTimeSamples()
    assert len(codes) > 2
    for code in codes:
        assert tuple(diffuse.Get(code)) == pytest.approx(tuple(colors.Get(code)[0]))
    if omniverse_validator_available():
        assert validate_omniverse(tmp_path / "s.usdc") == []


def _validate_views(scene: Path) -> list[str]:
    """Both validators' problems on the composed stage, once per ``view`` (plant, twin)."""
    stage = Usd.Stage.Open(str(scene))
    views = stage.GetDefaultPrim().GetChildren()[0].GetVariantSets().GetVariantSet("view")
    problems = []
    with Usd.EditContext(stage, stage.GetSessionLayer()):
        for name in views.GetVariantNames():
            views.SetVariantSelection(name)
            problems += [f"[{name}] {p}" for p in validate_scene(stage)]
    if omniverse_validator_available():
        problems += validate_omniverse(scene)  # it checks every variant itself
    return problems


def test_shadow_mode_shows_the_twin_drift_and_forecast_ghosts(tmp_path: Path) -> None:
    from tests.opcua_helpers import mini_plant

    ep, emulate = mini_plant(tmp_path, "2000 h", seed=5, speed="36000")  # 10 plant hours a second
    sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s",
            "--historian", "h.db", "--until", "200 h", "--warmup", "20 h", "--shadow", "--seed", "5",
            "--forecast-every", "40 h", "--forecast-horizon", "24 h", "--kpi-every", "0.5",
            "--live-usd", "live", "--usd-interval", "0.2"]
    with TwinProcess(emulate, tmp_path, "emu") as emu:
        emu.wait_for("emulating mini")
        with TwinProcess(sync, tmp_path, "sync") as feed:
            feed.wait_for("subscribed to")
            call(ep, "urn:twin:plc:mini", "PLC", "Start", pki=tmp_path / "pki-caller")
            assert feed.proc.wait(300) == 0, feed.log()
    scene = tmp_path / "live" / "scene.usda"
    assert _validate_views(scene) == []
    stage = Usd.Stage.Open(str(scene))
    line = stage.GetPrimAtPath("/World/mini")
    views = line.GetVariantSets().GetVariantSet("view")
    assert views.GetVariantNames() == ["plant", "twin"] and views.GetVariantSelection() == "plant"
    plant_states = [stage.GetPrimAtPath(f"/World/mini/{s}/unit_0").GetAttribute("twin:state").Get()
                    for s in ("mix", "fill", "pack")]
    assert line.GetAttribute("twin:drift:oee").Get() is not None
    flag = stage.GetPrimAtPath("/World/mini/fill/DriftFlag")
    assert flag.GetAttribute("twin:drift:oeeRelative").Get() is not None
    ghosts = [b for b in stage.GetPrimAtPath("/World/mini/Batches").GetChildren()
              if b.GetAttribute("twin:forecast:leaveP50")]
    assert ghosts, "no batch carries a forecast"
    for ghost in ghosts:
        p5, p50, p95 = (ghost.GetAttribute(f"twin:forecast:leave{q}").Get() for q in ("P5", "P50", "P95"))
        assert p50 == -1 or p5 <= p50 <= p95 or p95 == -1
    views.SetVariantSelection("twin")
    twin_states = [stage.GetPrimAtPath(f"/World/mini/{s}/unit_0").GetAttribute("twin:state").Get()
                   for s in ("mix", "fill", "pack")]
    assert all(twin_states) and all(plant_states)
    assert line.GetAttribute("twin:kpi:oee").Get() is not None  # the twin's KPIs in the twin view


@pytest.fixture(scope="module")
def osd_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("osd")
    done = run_cli("run", "osd-tablet", "--horizon", "400 h", "-r", "1", "--out", "r", cwd=root)
    assert done.returncode == 0, done.stderr
    done = run_cli("snapshot", "r", "--at", "370 h", "--out", "now.json", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def test_forecast_scenarios_from_now_as_usd_variants(osd_run: Path) -> None:
    done = run_cli("forecast", "osd-tablet", "--state", "now.json", "--horizon", "24 h", "-r", "8", "--json",
                   "-s", "coater2: stations.coating.units=2", "--usd", "f.usdc", cwd=osd_run)
    assert done.returncode == 0, done.stderr
    assert "wrote f.usdc" in done.stderr and json.loads(done.stdout)["line"] == "osd-tablet"
    scene = osd_run / "f.usdc"
    assert validate_scene(scene) == []
    if omniverse_validator_available():
        assert validate_omniverse(scene) == []
    stage = Usd.Stage.Open(str(scene))
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (370 * 60.0, 394 * 60.0)
    variants = stage.GetPrimAtPath("/World/osd_tablet").GetVariantSets().GetVariantSet("scenario")
    assert variants.GetVariantNames() == ["as_is", "coater2"]
    counts = {}
    for name in ("as_is", "coater2"):
        variants.SetVariantSelection(name)
        counts[name] = len([c for c in stage.GetPrimAtPath("/World/osd_tablet/coating").GetChildren()
                            if c.GetName().startswith("unit_")])
        ghosts = [b for b in stage.GetPrimAtPath("/World/osd_tablet/Batches").GetChildren()
                  if b.GetAttribute("twin:forecast:leaveP50")]
        assert ghosts, name
        for ghost in ghosts:
            p5, p50, p95 = (ghost.GetAttribute(f"twin:forecast:leave{q}").Get() for q in ("P5", "P50", "P95"))
            assert p95 == -1 or 370 <= p5 <= p50 <= p95 <= 394
    assert counts == {"as_is": 1, "coater2": 2}


def test_forecast_scenarios_need_usd_and_a_usd_name(osd_run: Path) -> None:
    done = run_cli("forecast", "osd-tablet", "--state", "now.json", "--horizon", "24 h", "-s", "x: stations.coating.units=2",
                   cwd=osd_run)
    assert done.returncode == 2 and "add --usd" in done.stderr
    done = run_cli("forecast", "osd-tablet", "--state", "now.json", "--horizon", "24 h", "--usd", "f.txt", cwd=osd_run)
    assert done.returncode == 2 and "--usd f.txt: a USD scene ends in .usda" in done.stderr
    assert not (osd_run / "f.txt").exists()


def test_scenario_variants_of_runs_keep_their_materials_valid(osd_run: Path) -> None:
    """Material connections inside a variant are authored without the variant selection (USD refuses them)."""
    done = run_cli("run", "osd-tablet", "--horizon", "400 h", "-r", "1", "--set", "stations.coating.units=2",
                   "--out", "r2", cwd=osd_run)
    assert done.returncode == 0, done.stderr
    done = run_cli("export-usd", "r", "r2", "--from", "340 h", "--out", "two.usdc", "--check", cwd=osd_run)
    assert done.returncode == 0, done.stderr + done.stdout
