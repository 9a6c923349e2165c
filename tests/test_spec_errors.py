"""Bad input: one clear line per problem naming the file, the field path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from twin.errors import SpecError
from twin.spec.loader import load_spec

GOOD = """\
name: two-station
horizon: 1000 h
warmup: 100 h
products:
  - {name: A, batch_size: 300000}
stations:
  - name: m1
    process_time: {dist: exponential, mean: 1 h}
  - name: m2
    process_time: {dist: exponential, mean: 1 h}
    buffer: 2
"""


def problems(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    path = tmp_path / "line.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    buffer: 2", "    bufer: 2", ":11: stations[1].bufer: unknown field 'bufer'; did you mean 'buffer'?"),
        ("    buffer: 2", "    buffer: two", ":11: stations[1].buffer: should be a valid integer"),
        ("    buffer: 2", "    buffer: -1", ":11: stations[1].buffer: should be greater than or equal to 0 (got -1)"),
        (
            "mean: 1 h}\n    buffer",
            "mean: -1 h}\n    buffer",
            ":10: stations[1].process_time.mean: must be a positive duration",
        ),
        (
            "mean: 1 h}\n    buffer",
            "mean: 0}\n    buffer",
            ":10: stations[1].process_time.mean: must be a positive duration (got 0)",
        ),
        (
            "mean: 1 h}\n    buffer",
            "mean: 1 parsec}\n    buffer",
            "stations[1].process_time.mean: unknown time unit 'parsec'",
        ),
        (
            "{dist: exponential, mean: 1 h}\n  - name: m2",
            "{dist: expo, mean: 1 h}\n  - name: m2",
            ":8: stations[0].process_time: unknown distribution 'expo'; expected one of: constant, exponential",
        ),
        (
            "    buffer: 2",
            "    buffer: 2\n    setup: {A->C: 2 h}",
            ":12: stations[1].setup: unknown product 'C' in setup (products: A)",
        ),
        ("    buffer: 2", "    buffer: 2\n    process_time: 2 h", ":12: stations[1].process_time: duplicate key"),
        ("horizon: 1000 h", "horizon: 0 h", ":2: horizon: must be a positive duration (got '0 h')"),
        ("warmup: 100 h", "warmup: 2000 h", ":3: warmup: must be shorter than the horizon"),
        ("  - name: m2", "  - name: m1", "stations[1].name: duplicate station name 'm1'"),
        ("  - name: m2", "  - name: m.2", ":9: stations[1].name: should be a name of letters"),
        (
            "name: two-station",
            "name: two-station\nrelease: {mode: plan, plan: [{product: Z, batches: 2}]}",
            "release.plan: unknown product 'Z' in plan (products: A)",
        ),
        (
            "name: two-station",
            "name: two-station\nrelease: {mode: interarrival}",
            "release: mode 'interarrival' needs an 'interarrival' distribution",
        ),
        (
            "    process_time: {dist: exponential, mean: 1 h}\n    buffer",
            "    process_time: {A: 1 h, B: 2 h}\n    buffer",
            "stations[1].process_time: unknown product 'B' in process_time",
        ),
        (
            "{dist: exponential, mean: 1 h}\n  - name: m2",
            "{dist: uniform, low: 2, high: 1}\n  - name: m2",
            "stations[0].process_time: low (2.0) must be below high (1.0)",
        ),
    ],
)
def test_each_bad_field_is_named_with_its_line(tmp_path, old, new, expected):
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "line.yaml")) for p in found)


def test_all_problems_of_a_file_are_reported_at_once(tmp_path):
    text = GOOD.replace("    buffer: 2", "    buffer: -3\n    units: 0").replace("horizon: 1000 h", "horizon: soon")
    text = text.replace("{dist: exponential, mean: 1 h}\n  - name: m2", "{dist: gamma, mean: 1 h}\n  - name: m2")
    found = problems(tmp_path, text)
    paths = [p.split(": ")[1] for p in found]
    assert {"horizon", "stations[0].process_time.sd", "stations[1].buffer", "stations[1].units"} <= set(paths), found


def test_malformed_yaml_and_missing_or_empty_files(tmp_path):
    assert "malformed YAML" in problems(tmp_path, "name: x\nstations: [\n")[0]
    assert problems(tmp_path, "")[0].endswith("expected a mapping of spec fields at top level (got an empty file)")
    assert problems(tmp_path, "- a\n- b\n")[0].endswith("(got list)")
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_override_problems_name_the_override(tmp_path):
    found = problems(
        tmp_path,
        GOOD,
        ("stations.m9.buffer=4", "stations.m2.buffer=-1", "stations.m1.process_time.mean=0", "horizon"),
    )
    assert "--set stations.m9.buffer=4: stations.m9.buffer: no station named 'm9' (stations: m1, m2)" in found
    assert any(p.startswith("--set stations.m2.buffer=-1: stations[1].buffer: should be greater") for p in found)
    assert any(p.startswith("--set stations.m1.process_time.mean=0: stations[0].process_time.mean") for p in found)
    assert "--set horizon: expected PATH=VALUE, e.g. stations.m2.buffer=4" in found


def test_overrides_address_stations_by_name_and_may_add_fields(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(GOOD, encoding="utf-8")
    spec = load_spec(path, ["stations.m1.buffer=3", "stations.m2.units=2", "stations.m2.buffer=null",
                            "stations.m1.process_time={dist: gamma, mean: 2 h, sd: 30 min}"])  # fmt: skip
    assert spec.station("m1").buffer == 3 and spec.station("m2").units == 2 and spec.station("m2").buffer is None
    assert spec.station("m1").process_time.mean_hours("h") == 2.0
    assert spec.spec_hash != load_spec(path).spec_hash


def test_cli_reports_bad_input_with_exit_code_2_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("    buffer: 2", "    buffer: -1\n    units: 0"), encoding="utf-8")
    for args in (["run", str(bad)], ["validate", str(bad)], ["compare", str(bad), "-s", "x: stations.m1.units=2"]):
        result = run_cli(*args)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 2
        assert all(line.startswith(f"{bad}:") for line in lines)
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    cases = [
        (["run", str(tmp_path / "missing.yaml")], "no such file or built-in model"),
        (["run", str(good), "--set", "stations.zz.units=2"], "no station named 'zz'"),
        (["run", str(good), "--horizon", "ten weeks"], "--horizon 'ten weeks'"),
        (["run", str(good), "--replications", "0"], "replications must be a whole number >= 1"),
        (["compare", str(good), "-s", "no colon"], 'expected "NAME: path=value'),
        (["run", str(good), "--seed", "-4"], "seed must be a whole number >= 0"),
        (["run", str(good), "--frobnicate"], "No such option"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
