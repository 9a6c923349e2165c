"""USD scenes of real runs, read back: states, colours, batches, buffers and counters match the event log.

Each test opens the written file with ``pxr.Usd`` (in this process, or in a fresh one) and compares
what the scene says at sampled time codes with what the event log says at those times.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from connectors.usd.schema import SCHEMA_DIR, register_schema

register_schema()  # before any stage is opened in this process

from pxr import Gf, Usd, UsdGeom  # noqa: E402

from connectors.usd.equipment import equipment_kind  # noqa: E402
from connectors.usd.export import SceneSource, export_scene, load_source  # noqa: E402
from connectors.usd.validation import validate_scene  # noqa: E402
from twin.eventlog import state_intervals  # noqa: E402
from twin.experiment import run  # noqa: E402
from twin.models import load_spec  # noqa: E402
from twin.palette import state_color  # noqa: E402
from twin.runfolder import write_run  # noqa: E402

TOL = 1e-9
HORIZON = 14 * 24.0  # two weeks


@pytest.fixture(scope="module")
def osd_run(tmp_path_factory):
    """Two replications of two weeks of the tablet line, as a run folder."""
    spec = load_spec("osd-tablet")
    result = run(spec, replications=2, seed=11, horizon=HORIZON, warmup=24.0)
    return write_run(result, tmp_path_factory.mktemp("runs") / "osd")


@pytest.fixture(scope="module")
def scenes(osd_run, tmp_path_factory):
    """The run exported as .usdc and .usda, replication 1, one sample a minute."""
    folder = tmp_path_factory.mktemp("scene")
    source = load_source(osd_run)
    paths = {}
    for fmt in ("usdc", "usda"):
        paths[fmt] = export_scene([source], folder / f"osd.{fmt}", replication=1).path
    return source, paths


def _line(stage: Usd.Stage) -> Usd.Prim:
    return stage.GetDefaultPrim().GetChildren()[0]


def _units(line: Usd.Prim) -> dict[tuple[str, int], Usd.Prim]:
    return {
        (p.GetAttribute("twin:station").Get(), p.GetAttribute("twin:unit").Get()): p
        for p in Usd.PrimRange(line)
        if p.HasAPI("TwinUnitAPI")
    }


def _expected_states(table, replication: int) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """Per unit: interval starts (hours) and states, from twin.eventlog.state_intervals."""
    iv = state_intervals(table)
    iv = iv[iv["replication"] == replication]
    out = {}
    for (station, unit), group in iv.groupby(["station", "unit"], observed=True, sort=False):
        out[(str(station), int(unit))] = (group["start"].to_numpy(), group["state"].astype(str).to_numpy())
    return out


def _state_at(starts: np.ndarray, states: np.ndarray, hours: float) -> str:
    i = int(np.searchsorted(starts, hours + TOL, side="right")) - 1
    return states[i] if i >= 0 else ""


def _sample_codes(stage: Usd.Stage, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    start, end = int(stage.GetStartTimeCode()), int(stage.GetEndTimeCode())
    return sorted({start, end, *rng.integers(start, end + 1, n).tolist()})


# --- the stage: conventions, provenance, validity ------------------------------------------------


@pytest.mark.parametrize("fmt", ["usdc", "usda"])
def test_stage_conventions_and_provenance(scenes, fmt):
    source, paths = scenes
    stage = Usd.Stage.Open(str(paths[fmt]))
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    world = stage.GetDefaultPrim()
    assert world.GetPath() == "/World"
    assert Usd.ModelAPI(world).GetKind() == "group"
    line = _line(stage)
    assert Usd.ModelAPI(line).GetKind() == "assembly"
    units = _units(line)
    assert len(units) == sum(s.units for s in source.spec.stations)  # one prim per equipment unit
    for prim in units.values():  # kinds are contiguous: every unit is a model of the hierarchy
        assert Usd.ModelAPI(prim).GetKind() == "component" and prim.IsModel()
    end = source.log.end_times()[1]
    assert stage.GetStartTimeCode() == 0.0
    assert stage.GetEndTimeCode() == pytest.approx(end * 60.0)
    assert stage.GetTimeCodesPerSecond() == 60.0
    twin = stage.GetRootLayer().customLayerData["twin"]
    info = json.loads((Path(source.label) / "run.json").read_text())
    assert twin["runId"] == info["run_id"] and len(twin["runId"]) == 32
    assert twin["specHash"] == source.spec.spec_hash == info["spec_hash"]
    assert twin["seed"] == 11 and twin["replication"] == 1
    assert twin["version"] == info["twin_version"]
    assert twin["timeCodes"] == "minutes of simulated time since the start of the run"


@pytest.mark.parametrize("fmt", ["usdc", "usda"])
def test_usd_validation_finds_no_errors(scenes, fmt):
    _, paths = scenes
    assert validate_scene(paths[fmt]) == []


def test_the_validators_do_find_errors():
    stage = Usd.Stage.CreateInMemory()  # no metersPerUnit, no upAxis, no default prim
    UsdGeom.Xform.Define(stage, "/World")
    problems = validate_scene(stage)
    assert any("MissingDefaultPrim" in p for p in problems)
    assert any("MissingMetersPerUnitMetadata" in p for p in problems)
    assert any("MissingUpAxisMetadata" in p for p in problems)


def test_twin_api_schemas_are_registered(scenes):
    _, paths = scenes
    stage = Usd.Stage.Open(str(paths["usdc"]))
    definition = Usd.SchemaRegistry().FindAppliedAPIPrimDefinition("TwinUnitAPI")
    assert definition is not None and "twin:state" in definition.GetPropertyNames()
    unit = _units(_line(stage))[("coating", 0)]
    assert "TwinUnitAPI" in unit.GetAppliedSchemas()
    assert unit.GetAttribute("twin:state").GetTypeName() == "token"
    assert unit.GetAttribute("twin:goodCount").GetTypeName() == "int64"


# --- states and colours ----------------------------------------------------------------------------


def test_every_unit_state_and_colour_matches_the_event_log(scenes):
    source, paths = scenes
    stage = Usd.Stage.Open(str(paths["usdc"]))
    units = _units(_line(stage))
    expected = _expected_states(source.log.table, 1)
    assert set(units) == set(expected)
    checked = 0
    for code in _sample_codes(stage, 400, seed=1):
        for key, prim in units.items():
            want = _state_at(*expected[key], code / 60.0)
            assert prim.GetAttribute("twin:state").Get(code) == want, (key, code)
            color = UsdGeom.Gprim(prim.GetChild("StatusPad")).GetDisplayColorAttr().Get(code)[0]
            assert tuple(color) == pytest.approx(state_color(want), abs=1e-6)
            checked += 1
    assert checked > 3000


def test_state_at_every_minute_equals_dense_sampling(scenes):
    """Samples are stored where values change; resolving every minute gives the one-a-minute sampling."""
    source, paths = scenes
    stage = Usd.Stage.Open(str(paths["usda"]))
    unit = _units(_line(stage))[("coating", 0)]
    starts, states = _expected_states(source.log.table, 1)[("coating", 0)]
    codes = np.arange(int(stage.GetStartTimeCode()), int(stage.GetEndTimeCode()) + 1)
    state_attr = unit.GetAttribute("twin:state")
    got = [state_attr.Get(float(c)) for c in codes]
    idx = np.searchsorted(starts, codes / 60.0 + TOL, side="right") - 1
    assert got == states[idx].tolist()
    stored = len(state_attr.GetTimeSamples())
    assert stored < len(codes) / 20  # far fewer samples than minutes, same values


def test_counters_match_the_event_log(scenes):
    source, paths = scenes
    stage = Usd.Stage.Open(str(paths["usdc"]))
    table = source.log.table
    table = table[table["replication"] == 1]
    for (station, unit), prim in _units(_line(stage)).items():
        rows = table[(table["station"] == station) & (table["unit"] == unit)]
        finish = rows[rows["event"] == "finish"]
        lost = rows[rows["event"].isin(["scrap", "reject"])]
        for code in _sample_codes(stage, 40, seed=2):
            done = finish[finish["time"] <= code / 60.0 + TOL]
            lost_by_then = lost[lost["time"] <= code / 60.0 + TOL]["quantity"].sum()
            assert prim.GetAttribute("twin:batchesDone").Get(code) == len(done)
            assert prim.GetAttribute("twin:goodCount").Get(code) == round(done["quantity"].sum() - lost_by_then)
            taken = rows[rows["event"].isin(["setup", "start", "leave"]) & (rows["time"] <= code / 60.0 + TOL)]
            last = taken.iloc[-1] if len(taken) else None
            on_unit = -1 if last is None or last["event"] == "leave" else int(last["batch"])
            assert prim.GetAttribute("twin:batch").Get(code) == on_unit


# --- batches and buffers ---------------------------------------------------------------------------


def _where(table, stations: list[str], hours: float) -> dict[int, tuple]:
    """Where the log says each batch is at ``hours``: its last location row at or before then."""
    where: dict[int, tuple] = {}
    rows = table[(table["batch"] >= 0) & (table["time"] <= hours + TOL)]
    for event, batch, station, unit in zip(rows["event"].astype(str), rows["batch"], rows["station"].astype(object),
                                           rows["unit"], strict=True):  # fmt: skip
        if event == "release":
            where[int(batch)] = ("queued",)
        elif event == "arrive":
            where[int(batch)] = ("buffer", station)
        elif event in ("setup", "start", "finish", "fail", "repair") and unit >= 0:
            where[int(batch)] = ("unit", station, int(unit))
        elif event == "leave" and station == stations[-1]:
            where[int(batch)] = ("done",)
    return where


def _inside_xy(point: Gf.Vec3d, prim: Usd.Prim, code: float) -> bool:
    box = UsdGeom.BBoxCache(Usd.TimeCode(code), ["default"]).ComputeWorldBound(prim).ComputeAlignedRange()
    return all(box.GetMin()[i] - 1e-6 <= point[i] <= box.GetMax()[i] + 1e-6 for i in (0, 1))


def test_batch_positions_and_buffer_fill_match_the_event_log(scenes):
    source, paths = scenes
    stage = Usd.Stage.Open(str(paths["usdc"]))
    line = _line(stage)
    stations = source.log.meta.stations
    table = source.log.table[source.log.table["replication"] == 1]
    batches = {p.GetAttribute("twin:batch").Get(): p for p in line.GetChild("Batches").GetChildren()}
    station_prims = {
        p.GetAttribute("twin:station").Get(): p for p in line.GetChildren() if p.HasAttribute("twin:station")
    }
    units = _units(line)
    seen = {"buffer": 0, "unit": 0, "done": 0, "queued": 0}
    for code in _sample_codes(stage, 60, seed=3):
        where = _where(table, stations, code / 60.0)
        fill = dict.fromkeys(stations, 0)
        for batch, loc in where.items():
            prim = batches[batch]
            visible = UsdGeom.Imageable(prim).ComputeVisibility(code) != UsdGeom.Tokens.invisible
            position = UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(code).ExtractTranslation()
            seen[loc[0]] += 1
            if loc[0] == "done":
                assert not visible, (batch, code)
                continue
            assert visible, (batch, code, loc)
            if loc[0] == "buffer":
                fill[loc[1]] += 1
                area = station_prims[loc[1]].GetChild("Buffer").GetChild("Area")
                assert _inside_xy(position, area, code), (batch, code, loc)
                assert prim.GetAttribute("twin:location").Get(code) == f"{loc[1]}/buffer"
            elif loc[0] == "unit":
                unit = units[(loc[1], loc[2])]
                load_point = unit.GetAttribute("twin:loadPoint").Get()
                assert (Gf.Vec3d(position) - Gf.Vec3d(load_point)).GetLength() < 1e-6, (batch, code, loc)
                assert prim.GetAttribute("twin:location").Get(code) == f"{loc[1]}/{loc[2]}"
            else:
                assert _inside_xy(position, line.GetChild("Queue").GetChild("Area"), code)
        for batch, prim in batches.items():  # not yet released: hidden
            if batch not in where:
                assert UsdGeom.Imageable(prim).ComputeVisibility(code) == UsdGeom.Tokens.invisible
        for station, count in fill.items():
            assert station_prims[station].GetChild("Buffer").GetAttribute("twin:fill").Get(code) == count
    assert seen["buffer"] > 50 and seen["unit"] > 100 and seen["done"] > 50


def test_load_points_stand_next_to_their_equipment(scenes):
    _, paths = scenes
    stage = Usd.Stage.Open(str(paths["usdc"]))
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), ["default"])
    for key, unit in _units(_line(stage)).items():
        box = cache.ComputeWorldBound(unit.GetChild("Equipment")).ComputeAlignedRange()
        point = unit.GetAttribute("twin:loadPoint").Get()
        gap = box.GetMin()[0] - point[0]  # upstream of the equipment, along the flow
        assert 0.5 < gap < 1.5 and box.GetMin()[1] <= point[1] <= box.GetMax()[1], key


# --- a fresh process, both formats ------------------------------------------------------------------

READER = """
import json, sys
from pxr import Usd
stage = Usd.Stage.Open(sys.argv[1])
line = stage.GetDefaultPrim().GetChildren()[0]
units = sorted((p for p in Usd.PrimRange(line) if p.HasAttribute("twin:state")), key=lambda p: str(p.GetPath()))
start, end = int(stage.GetStartTimeCode()), int(stage.GetEndTimeCode())
codes = list(range(start, end + 1, 37))
states = {str(p.GetPath()): [p.GetAttribute("twin:state").Get(c) for c in codes] for p in units}
moved = sum(1 for b in line.GetChild("Batches").GetChildren()
            for c in codes[::10] if b.GetAttribute("xformOp:translate").Get(c) is not None)
print(json.dumps({"codes": codes, "states": states, "moved": moved, "applied": units[0].GetAppliedSchemas()}))
"""


def test_a_fresh_process_steps_through_both_formats(scenes):
    """Plain ``pxr`` in a new process; with PXR_PLUGINPATH_NAME it also knows the twin schemas."""
    source, paths = scenes
    results = {}
    for fmt, path in paths.items():
        for plugin_path in ("", str(SCHEMA_DIR)):
            env = {k: v for k, v in os.environ.items() if k != "PXR_PLUGINPATH_NAME"}
            if plugin_path:
                env["PXR_PLUGINPATH_NAME"] = plugin_path
            proc = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True,
                                  timeout=120, env=env)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            results[(fmt, bool(plugin_path))] = json.loads(proc.stdout)
    assert results[("usda", True)]["applied"] == results[("usdc", True)]["applied"] == ["TwinUnitAPI"]
    assert results[("usda", False)]["applied"] == []  # an unknown schema is only a name: the scene still opens
    data = results[("usdc", True)]
    for other in results.values():
        assert (other["codes"], other["states"], other["moved"]) == (data["codes"], data["states"], data["moved"])
    assert data["moved"] > 0
    expected = _expected_states(source.log.table, 1)
    stage = Usd.Stage.Open(str(paths["usdc"]))
    by_path = {str(p.GetPath()): key for key, p in _units(_line(stage)).items()}
    for path, states in data["states"].items():
        starts, values = expected[by_path[path]]
        assert states == [_state_at(starts, values, c / 60.0) for c in data["codes"]]


# --- windows, scenarios, static layouts ----------------------------------------------------------------


def test_a_window_and_a_coarser_step(osd_run, tmp_path):
    source = load_source(osd_run)
    report = export_scene([source], tmp_path / "w.usdc", start_hours=100.0, end_hours=200.0, step_hours=0.25)
    stage = Usd.Stage.Open(str(report.path))
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (6000.0, 12000.0)
    expected = _expected_states(source.log.table, 0)
    for key, prim in _units(_line(stage)).items():
        samples = prim.GetAttribute("twin:state").GetTimeSamples()
        assert samples[0] == 6000.0 and samples[-1] <= 12000.0
        assert all((c - 6000.0) % 15.0 == 0 for c in samples)  # on the 15-minute grid
        for code in range(6000, 12001, 15):
            assert prim.GetAttribute("twin:state").Get(code) == _state_at(*expected[key], code / 60.0)


def test_two_runs_become_scenario_variants(osd_run, tmp_path):
    spec = load_spec("osd-tablet", ["stations.coating.units=2"])
    result = run(spec, replications=1, seed=11, horizon=HORIZON, warmup=24.0, name="second coater")
    other = write_run(result, tmp_path / "coater2")
    report = export_scene([load_source(osd_run), load_source(other)], tmp_path / "both.usdc")
    assert report.variants == ["baseline", "second_coater"]
    stage = Usd.Stage.Open(str(report.path))
    line = _line(stage)
    variants = line.GetVariantSets().GetVariantSet("scenario")
    assert variants.GetVariantNames() == ["baseline", "second_coater"]
    twin = stage.GetRootLayer().customLayerData["twin"]
    assert set(twin["scenarios"]) == {"baseline", "second_coater"}
    for name, log, coaters in (("baseline", load_source(osd_run).log, 1), ("second_coater", result.log, 2)):
        variants.SetVariantSelection(name)
        units = _units(line)
        assert sum(1 for s, _ in units if s == "coating") == coaters
        expected = _expected_states(log.table, 0)
        for code in _sample_codes(stage, 50, seed=4):
            for key, prim in units.items():
                assert prim.GetAttribute("twin:state").Get(code) == _state_at(*expected[key], code / 60.0)
    assert validate_scene(stage) == []  # every variant


def test_the_static_layout_of_a_spec(tmp_path):
    report = export_scene([SceneSource("sterile-fill-finish", load_spec("sterile-fill-finish"))], tmp_path / "s.usda")
    stage = Usd.Stage.Open(str(report.path))
    assert validate_scene(stage) == []
    units = _units(_line(stage))
    assert sum(1 for s, _ in units if s == "lyophilization") == 3
    for prim in units.values():
        assert prim.GetAttribute("twin:state").GetNumTimeSamples() == 0
    assert not stage.HasAuthoredTimeCodeRange()
    lyos = sorted((p for (s, _), p in units.items() if s == "lyophilization"), key=lambda p: p.GetName())
    cache = UsdGeom.BBoxCache(Usd.TimeCode.Default(), ["default"])
    boxes = [cache.ComputeWorldBound(p.GetChild("Equipment")).ComputeAlignedRange() for p in lyos]
    assert tuple(boxes[0].GetSize()) == pytest.approx(equipment_kind("lyophilizer").size)
    for a, b in itertools.pairwise(boxes):  # side by side across the flow, not overlapping
        assert a.GetMin()[1] > b.GetMax()[1] and a.GetMin()[0] == pytest.approx(b.GetMin()[0])
    assert (tmp_path / "twin_assets" / "lyophilizer.usda").is_file()
