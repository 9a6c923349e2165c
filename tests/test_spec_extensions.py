"""Plug-in blocks under ``extensions``: validated by their plug-in, reported with file and line, outside spec_hash."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import run_cli

from twin.errors import SpecError
from twin.spec.extensions import ExtensionDeprecation, installed, model_of
from twin.spec.loader import load_spec
from twin.spec.model import LineSpec

LINE = """\
name: small
horizon: 60 h
products: [{name: A, batch_size: 100}]
stations:
  - {name: mixing, equipment: blender, process_time: 1 h}
  - {name: coating, equipment: coater, process_time: 2 h, buffer: 2}
"""

LAYOUT = """\
extensions:
  layout:
    aisle: 3
    stations:
      coating: {position: [10, 5], rotation: 90}
    assets: {coater: cad/coater.usd}
  optimize:
    vary: [{path: stations.*.buffer, range: 0..4}]
"""


def _write(tmp_path: Path, text: str, name: str = "line.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_plugins_register_their_blocks_through_entry_points():
    assert {"layout", "optimize"} <= set(installed())
    assert model_of("layout").__module__ == "connectors.usd.layout"
    assert model_of("optimize").__module__ == "optimizers.spec"
    assert "layout" not in LineSpec.model_fields and "optimize" not in LineSpec.model_fields


def test_plugin_blocks_are_validated_by_their_plugin_and_round_trip(tmp_path):
    spec = load_spec(_write(tmp_path, LINE + LAYOUT))
    layout = spec.extension("layout")
    assert type(layout) is model_of("layout") and layout.stations["coating"].position == (10.0, 5.0)
    assert spec.extension("optimize").vary[0].range == "0..4"
    assert spec.extension("nothing") is None
    data = spec.to_data()
    assert data["extensions"]["layout"]["aisle"] == 3 and "rotation" in data["extensions"]["layout"]["stations"]["coating"]
    assert LineSpec.from_dict(data) == spec


def test_moving_a_3d_asset_or_changing_the_search_keeps_the_hash_a_simulation_field_does_not(tmp_path):
    spec = load_spec(_write(tmp_path, LINE + LAYOUT))
    moved = load_spec(_write(tmp_path, LINE + LAYOUT.replace("[10, 5]", "[40, -2]").replace("0..4", "1..9"), "b.yaml"))
    plain = load_spec(_write(tmp_path, LINE, "c.yaml"))
    assert moved != spec and moved.extension("layout") != spec.extension("layout")
    assert spec.spec_hash == moved.spec_hash == plain.spec_hash
    slower = load_spec(_write(tmp_path, LINE.replace("2 h, buffer", "3 h, buffer") + LAYOUT, "d.yaml"))
    assert slower.spec_hash != spec.spec_hash


def test_problems_in_a_block_name_the_file_line_and_field(tmp_path):
    bad = LINE + LAYOUT.replace("coating: {position: [10, 5]", "coatin: {position: [10]").replace("aisle: 3", "aisle: -1")
    path = _write(tmp_path, bad)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert f"{path}:9: extensions.layout.aisle: should be greater than 0 (got -1)" in text
    assert f"{path}:11: extensions.layout.stations.coatin.position:" in text
    typo = LINE + LAYOUT.replace("    aisle: 3", "    aisel: 3").replace("  optimize:", "  optimise:")
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, typo, "typo.yaml"))
    text = str(err.value)
    assert "typo.yaml:9: extensions.layout.aisel: unknown field 'aisel'; did you mean 'aisle'?" in text
    assert "typo.yaml:13: extensions.optimise: no plug-in reads an extension 'optimise' (did you mean 'optimize'?)" in text


def test_the_cli_reports_a_bad_block_in_one_line_and_exit_code_2(tmp_path):
    path = _write(tmp_path, LINE + "extensions:\n  layout: {aisle: many}\n")
    done = run_cli("validate", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"{path}:8: extensions.layout.aisle: should be a valid number, unable to parse string as a number (got 'many')"


def test_an_old_top_level_block_still_loads_with_a_one_line_warning(tmp_path):
    old = LINE + "layout:\n  aisle: 3\n  stations:\n    coating: {position: [10, 5], rotation: 90}\n"
    path = _write(tmp_path, old)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = load_spec(path)
    assert [w.category for w in caught] == [ExtensionDeprecation]
    assert spec.extension("layout").aisle == 3
    assert spec.spec_hash == load_spec(_write(tmp_path, LINE, "plain.yaml")).spec_hash
    with pytest.raises(SpecError, match=r"zero.yaml:8: extensions.layout.aisle: should be greater than 0"):
        load_spec(_write(tmp_path, old.replace("aisle: 3", "aisle: 0"), "zero.yaml"))  # its lines move with it
    done = run_cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (f"warning: {path}: a top-level 'layout:' block is deprecated: "
                                   "write it as 'extensions: {layout: ...}'")  # fmt: skip
    both = old + "extensions:\n  layout: {aisle: 4}\n"
    with pytest.raises(SpecError, match="unknown field 'layout'"):
        load_spec(_write(tmp_path, both, "both.yaml"))


def test_a_sweep_does_not_simulate_again_when_only_a_plugin_block_changed(tmp_path):
    store = tmp_path / "store"
    path = _write(tmp_path, LINE + LAYOUT)
    args = ("sweep", str(path), "--grid", "stations.coating.buffer=1,2", "-r", "2", "--workers", "0", "--json",
            "--store", str(store))  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["ran"] == 2
    path.write_text(LINE + LAYOUT.replace("[10, 5]", "[40, -2]").replace("0..4", "0..9"), encoding="utf-8")
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["ran"] == 0 and report["reused"] == 2
    assert {p["run_id"] for p in report["points"]} == {p["run_id"] for p in json.loads(first.stdout)["points"]}
    path.write_text(LINE.replace("1 h}", "90 min}") + LAYOUT, encoding="utf-8")  # a simulation field: runs again
    changed = run_cli(*args)
    assert changed.returncode == 0 and json.loads(changed.stdout)["ran"] == 2


def test_the_schema_for_editors_describes_each_installed_block():
    done = run_cli("schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    extensions = schema["properties"]["extensions"]
    assert set(extensions["properties"]) == set(installed()) and extensions["additionalProperties"] is False
    assert "aisle" in extensions["properties"]["layout"]["properties"]
    ref = extensions["properties"]["optimize"]["properties"]["vary"]["items"]["$ref"]
    assert ref.removeprefix("#/$defs/") in schema["$defs"]  # every reference resolves


def test_runs_diff_reads_an_old_top_level_block_as_its_extension(tmp_path):
    from twin.store.diff import spec_changes

    new = load_spec(_write(tmp_path, LINE + LAYOUT)).to_data()
    old = {k: v for k, v in new.items() if k != "extensions"} | dict(new["extensions"])  # as stored before
    assert "layout" in old and spec_changes(old, new) == []
    moved = json.loads(json.dumps(new))
    moved["extensions"]["layout"]["aisle"] = 5
    assert spec_changes(old, moved) == [("extensions.layout.aisle", 3, 5)]
