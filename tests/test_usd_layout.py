"""The layout block, equipment assets, the state palette, time sampling and bad input of ``twin export-usd``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from connectors.usd.schema import register_schema

register_schema()

from pxr import Gf, Usd, UsdGeom  # noqa: E402

from connectors.usd.equipment import CATALOGUE, equipment_kind, write_asset  # noqa: E402
from connectors.usd.export import SceneSource, _export_atomically, export_scene  # noqa: E402
from connectors.usd.timeline import Grid, sample  # noqa: E402
from connectors.usd.validation import validate_scene  # noqa: E402
from twin import eventlog  # noqa: E402
from twin.errors import InputError, SpecError  # noqa: E402
from twin.models import load_spec  # noqa: E402
from twin.palette import STATE_COLORS, UNKNOWN_STATE_COLOR, state_color, state_hex  # noqa: E402
from twin.spec.loader import load_spec as load_spec_file  # noqa: E402
from twin.spec.model import LineSpec  # noqa: E402

LINE = """\
name: small
horizon: 100 h
products: [{name: A, batch_size: 1000}]
stations:
  - {name: mixing, equipment: blender, process_time: 1 h}
  - {name: coating, equipment: coater, units: 2, process_time: 2 h, buffer: 2}
"""


def _line_with(tmp_path: Path, layout: str, name: str = "line.yaml") -> Path:
    """The line with ``layout`` (a ``layout:`` block as text) under ``extensions:``."""
    path = tmp_path / name
    nested = "extensions:\n" + "".join(f"  {row}\n" for row in layout.splitlines()) if layout else ""
    path.write_text(LINE + nested, encoding="utf-8")
    return path


def _unit_prims(stage: Usd.Stage, station: str) -> list[Usd.Prim]:
    line = stage.GetDefaultPrim().GetChildren()[0]
    return sorted(line.GetChild(station).GetChildren(), key=lambda p: p.GetName())[1:]  # [0] is Buffer


# --- palette ---------------------------------------------------------------------------------------


def test_every_state_has_its_own_colour_and_unknown_states_a_fallback():
    assert set(eventlog.STATES) <= set(STATE_COLORS)
    colours = [STATE_COLORS[s] for s in eventlog.STATES]
    assert len(set(colours)) == len(colours)
    for name in ("cleaning", "waiting_cleaning", "off_shift", "waiting_operator"):  # batch-rule states (issue 3)
        assert state_color(name) != UNKNOWN_STATE_COLOR
    assert state_color("no_such_state") == UNKNOWN_STATE_COLOR
    assert state_hex("processing") == "#2e9e42"


# --- the layout block in the spec -------------------------------------------------------------------


def test_a_layout_block_validates_and_round_trips(tmp_path):
    path = _line_with(tmp_path, "layout:\n  aisle: 3\n  stations:\n    coating: {position: [10, 5, 0.5], rotation: 90}\n"
                                "  assets: {coater: my/coater.usd}\n")  # fmt: skip
    spec = load_spec_file(path)
    layout = spec.extension("layout")
    assert layout.stations["coating"].position == (10.0, 5.0, 0.5)
    assert layout.assets == {"coater": "my/coater.usd"}
    assert LineSpec.from_dict(spec.to_data()) == spec
    without = load_spec_file(_line_with(tmp_path, "", "plain.yaml"))
    assert without.extension("layout") is None and without != spec
    assert without.spec_hash == spec.spec_hash  # a 3-D layout changes no simulation (issue 21)
    assert "extensions" in LineSpec.model_json_schema()["properties"]


def test_layout_errors_name_the_file_line_and_field(tmp_path):
    path = _line_with(tmp_path, "layout:\n  stations:\n    coatin: {position: [1, 2]}\n    mixing: {position: [1]}\n")
    with pytest.raises(SpecError) as err:
        load_spec_file(path)
    text = str(err.value)
    assert f"{path}:11: extensions.layout.stations.mixing.position: should be [x, y] or [x, y, z] in metres" in text
    proc = run_cli(
        "validate", str(_line_with(tmp_path, "layout:\n  stations:\n    coatin: {position: [1, 2]}\n", "b.yaml"))
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "b.yaml:9: extensions.layout.stations: unknown station 'coatin' (did you mean 'coating'?); stations: mixing, coating"
        in proc.stderr
    )


# --- placement ---------------------------------------------------------------------------------------


def test_the_layout_block_places_stations_units_and_buffers(tmp_path):
    layout = "layout:\n  stations:\n    coating: {position: [100, 50], rotation: 90, units: [[0, -3], [0, 3]], buffer: [-6, 0]}\n"
    spec = load_spec_file(_line_with(tmp_path, layout), ["stations.coating.units=3"])
    stage = Usd.Stage.Open(str(export_scene([SceneSource("x", spec)], tmp_path / "placed.usda").path))
    assert validate_scene(stage) == []
    world = [
        UsdGeom.Xformable(p).ComputeLocalToWorldTransform(0).ExtractTranslation() for p in _unit_prims(stage, "coating")
    ]
    # rotation 90: station x (the flow) points north; the third unit continues the given spacing
    assert [tuple(round(c, 9) for c in w) for w in world] == [(103.0, 50.0, 0.0), (97.0, 50.0, 0.0), (91.0, 50.0, 0.0)]
    line = stage.GetDefaultPrim().GetChildren()[0]
    buffer = UsdGeom.Xformable(line.GetChild("coating").GetChild("Buffer")).ComputeLocalToWorldTransform(0)
    assert tuple(round(c, 9) for c in buffer.ExtractTranslation()) == (100.0, 44.0, 0.0)
    # the unplaced station keeps its automatic place: flow along +x, upstream of nothing in particular
    mixer = _unit_prims(stage, "mixing")[0]
    assert UsdGeom.Xformable(mixer).ComputeLocalToWorldTransform(0).ExtractTranslation()[1] == 0.0


def test_automatic_layout_keeps_flow_order_and_clearances():
    spec = load_spec("sterile-fill-finish")
    from connectors.usd.assets import choose_assets
    from connectors.usd.placement import place_line

    assets = choose_assets(spec)
    plan = place_line(spec, {s.name: assets[s.name].size for s in spec.stations}, {s.name: 2 for s in spec.stations})
    previous_end = -math.inf
    for station in spec.stations:
        st = plan.stations[station.name]
        buffer_start = st.to_line(st.slot_local(0))[0] - 0.8
        equipment_start, equipment_end = st.origin[0] - st.size[0] / 2, st.origin[0] + st.size[0] / 2
        assert previous_end < buffer_start < st.load_point(0)[0] - 0.6 < equipment_start  # no overlaps, in order
        previous_end = equipment_end
    lyo = plan.stations["lyophilization"]
    assert spec.station("lyophilization").units == 3
    for u in (1, 2):
        gap = abs(lyo.unit_origin(u)[1] - lyo.unit_origin(u - 1)[1]) - lyo.size[1]
        assert gap == pytest.approx(2.0)  # parallel units side by side, one aisle apart


# --- equipment assets -----------------------------------------------------------------------------------


def test_procedural_assets_are_valid_and_as_big_as_the_catalogue_says(tmp_path):
    for kind in CATALOGUE.values():
        path = tmp_path / kind.file_name
        write_asset(kind, path)
        stage = Usd.Stage.Open(str(path))
        assert validate_scene(stage) == [], kind.name
        root = stage.GetDefaultPrim()
        assert Usd.ModelAPI(root).GetKind() == "component"
        box = UsdGeom.BBoxCache(Usd.TimeCode.Default(), ["default"]).ComputeWorldBound(root).ComputeAlignedRange()
        assert tuple(box.GetSize()) == pytest.approx(kind.size, abs=1e-6), kind.name
        assert box.GetMin()[2] == pytest.approx(0.0, abs=1e-6)
        assert (box.GetMin()[0] + box.GetMax()[0]) == pytest.approx(0.0, abs=1e-6)
    assert equipment_kind("Press") is CATALOGUE["press"] and equipment_kind("spaceship").name == "generic"


def _write_user_asset(path: Path) -> None:
    """A 1 m cube modelled in centimetres, y up, away from its origin: what CAD exports often look like."""
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    root = UsdGeom.Xform.Define(stage, "/Coater")
    stage.SetDefaultPrim(root.GetPrim())
    cube = UsdGeom.Cube.Define(stage, "/Coater/Body")
    cube.CreateSizeAttr(100.0)
    cube.AddTranslateOp().Set(Gf.Vec3d(500, 50, -20))
    stage.Save()


def test_a_users_asset_replaces_the_procedural_one(tmp_path, monkeypatch):
    (tmp_path / "cad").mkdir()
    _write_user_asset(tmp_path / "cad" / "coater.usda")
    monkeypatch.chdir(tmp_path)  # relative asset paths are taken from the current directory
    spec = load_spec_file(_line_with(tmp_path, "layout:\n  assets: {coater: cad/coater.usda}\n"))
    report = export_scene([SceneSource("x", spec)], tmp_path / "out" / "scene.usdc")
    stage = Usd.Stage.Open(str(report.path))
    assert validate_scene(stage) == []
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), ["default"])
    for unit in _unit_prims(stage, "coating"):
        equipment = unit.GetChild("Equipment")
        assert [str(r.assetPath) for r in equipment.GetMetadata("references").GetAddedOrExplicitItems()] == [
            "../cad/coater.usda"
        ]
        box = cache.ComputeWorldBound(equipment).ComputeAlignedRange()
        origin = UsdGeom.Xformable(unit).ComputeLocalToWorldTransform(0).ExtractTranslation()
        assert tuple(box.GetSize()) == pytest.approx((1.0, 1.0, 1.0))  # centimetres turned into metres
        assert box.GetMin()[2] == pytest.approx(0.0, abs=1e-9)  # standing on the floor, z up
        assert (box.GetMidpoint()[0], box.GetMidpoint()[1]) == pytest.approx((origin[0], origin[1]))
    assert not (tmp_path / "out" / "twin_assets" / "coater.usda").exists()
    assert (tmp_path / "out" / "twin_assets" / "blender.usda").exists()


def test_user_assets_that_are_missing_or_not_usd_are_input_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.usda").write_text("this is not USD", encoding="utf-8")
    for layout, message in (
        ("layout:\n  assets: {coater: nowhere/coater.usd}\n", "extensions.layout.assets.coater: USD asset 'nowhere/coater.usd' does not exist"),
        ("layout:\n  stations:\n    mixing: {position: [0, 0], asset: notes.usda}\n", "extensions.layout.stations.mixing.asset: 'notes.usda' is not a readable USD file"),
    ):  # fmt: skip
        spec = load_spec_file(_line_with(tmp_path, layout))
        with pytest.raises(InputError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
            export_scene([SceneSource("x", spec)], tmp_path / "s.usdc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.yaml", "notes.usda"]


# --- time sampling ---------------------------------------------------------------------------------------


def test_sampling_on_the_grid():
    grid = Grid.over(0.0, 1.0, 0.25)  # codes 0, 15, 30, 45, 60 minutes
    assert grid.count == 5 and grid.codes(np.arange(5)).tolist() == [0, 15, 30, 45, 60]
    hours = np.array([0.0, 0.0, 0.1, 0.25, 0.3, 0.31, 0.75 + 1e-12, 2.0])
    values = np.array(["a", "b", "c", "d", "e", "f", "g", "h"])
    track = sample(grid, hours, values, "")
    # equal times: the last row wins; a change between grid times shows at the next; exactly on one: there
    assert track.k.tolist() == [0, 1, 2, 3] and track.values.tolist() == ["b", "d", "f", "g"]
    assert [track.at(i) for i in range(5)] == ["b", "d", "f", "g", "g"]
    window = Grid.over(0.5, 1.0, 0.25)  # rows before the window give its first value
    assert sample(window, hours, values, "").values.tolist() == ["f", "g"]
    assert sample(grid, np.array([0.5]), np.array([7]), 0).k.tolist() == [0, 2]


def test_a_failed_write_leaves_the_old_scene_and_no_temporary_file(tmp_path):
    out = tmp_path / "scene.usdc"
    out.write_bytes(b"the previous export")

    class BrokenLayer:
        def Export(self, path: str) -> bool:
            Path(path).write_bytes(b"half a scene")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _export_atomically(BrokenLayer(), out)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["scene.usdc"]


# --- the command line ----------------------------------------------------------------------------------------


def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(tmp_path):
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    broken = tmp_path / "broken-run"
    broken.mkdir()
    for name in ("spec.yaml", "events.parquet"):
        (broken / name).write_text("x", encoding="utf-8")
    (broken / "run.json").write_text("{not json", encoding="utf-8")
    missing_asset = _line_with(tmp_path, "layout:\n  assets: {coater: cad/none.usd}\n", "asset.yaml")
    unknown_station = _line_with(tmp_path, "layout:\n  stations:\n    painting: {position: [1, 2]}\n", "unknown.yaml")
    out = tmp_path / "scene.usdc"
    out.write_bytes(b"the previous export")
    cases = [
        ((str(not_a_run),), f"error: {not_a_run}: not a run folder (missing spec.yaml, events.parquet, run.json)"),
        ((str(broken),), f"error: {broken / 'run.json'}: not a run description"),
        ((str(missing_asset),), "error: extensions.layout.assets.coater: USD asset 'cad/none.usd' does not exist"),
        ((str(unknown_station),), f"{unknown_station}:9: extensions.layout.stations: unknown station 'painting'"),
        (
            ("osd-tablet", "sterile-fill-finish"),
            "error: osd-tablet, sterile-fill-finish: not a run folder; several sources must all be",
        ),
        (("osd-tablet", "--step", "fast"), "error: --step 'fast': expected a duration"),
    ]
    for args, message in cases:
        proc = run_cli("export-usd", *args, "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(message), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["not-a-run", "broken-run", "asset.yaml", "unknown.yaml", "scene.usdc"]
    )


def test_the_command_exports_and_checks_a_run(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("run", str(_line_with(tmp_path, "")), "-r", "1", "--out", str(run_dir), cwd=tmp_path).returncode == 0
    proc = run_cli("export-usd", str(run_dir), "--out", str(tmp_path / "s.usda"), "--step", "10 min", "--speed", "1 d",
                   "--check", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {tmp_path / 's.usda'} (") and "UsdValidation: no errors" in proc.stdout
    stage = Usd.Stage.Open(str(tmp_path / "s.usda"))
    assert stage.GetTimeCodesPerSecond() == 1440.0 and stage.GetEndTimeCode() == 6000.0
    assert json.loads(json.dumps(dict(stage.GetRootLayer().customLayerData["twin"])))["step"] == "10 min"
    default = run_cli("export-usd", "osd-tablet", cwd=tmp_path)  # default --out: LINE.usdc here
    assert default.returncode == 0 and (tmp_path / "osd-tablet.usdc").is_file()


def test_split_batches_appear_where_their_parent_was_and_scrap_is_not_good():
    """Batch-rule rows (scrap, split) on a hand-made log: counters and places follow them."""
    import pandas as pd

    from connectors.usd.timeline import build_timeline

    rows = [  # time, batch, station, unit, event, state, quantity, parent
        (0, 0, None, -1, "release", None, None, -1), (0, 0, "a", -1, "arrive", None, None, -1),
        (0, 0, "a", 0, "start", "processing", None, -1), (0, -1, "b", 0, "state", "starved", None, -1),
        (1, 0, "a", 0, "finish", None, 100.0, -1), (1, 0, "a", 0, "scrap", None, 10.0, -1),
        (1, 0, "a", 0, "leave", None, 90.0, -1), (1, 0, "b", -1, "arrive", None, None, -1),
        (1, -1, "a", 0, "state", "starved", None, -1),
        (2, 1, "b", -1, "split", None, 45.0, 0), (2, 2, "b", -1, "split", None, 45.0, 0),
        (3, 1, "b", 0, "start", "processing", None, -1),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["time", "batch", "station", "unit", "event", "state", "quantity", "parent"])
    table["product"] = np.where(table["batch"] >= 0, "P", None)
    table["replication"] = 0
    timeline = build_timeline(table, ["a", "b"], [1, 1], Grid.over(0.0, 4.0, 1.0), ("scrap",))
    assert [timeline.units[("a", 0)].good_count.at(k) for k in range(5)] == [0, 90, 90, 90, 90]
    assert [timeline.batches[0].location.at(k)[0] for k in range(3)] == ["unit", "buffer", "done"]
    assert timeline.batches[1].location.at(2) == ("buffer", "b", 0) and timeline.batches[2].location.at(2) == (
        "buffer",
        "b",
        1,
    )
    assert timeline.batches[1].location.at(3) == ("unit", "b", 0) and timeline.batches[2].location.at(3)[0] == "buffer"
    assert [timeline.buffers["b"].at(k) for k in range(5)] == [0, 1, 2, 1, 1]
