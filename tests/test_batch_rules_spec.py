"""Bad input in the batch-rule fields: field path, line and what was expected; exit code 2."""

from __future__ import annotations

import json

from conftest import run_cli

BASE = """\
name: rules
horizon: 200 h
products: [{name: A, batch_size: 10, mass_kg: 100}, {name: B, batch_size: 10, mass_kg: 100}]
skids: [{name: cip-1}]
calendars:
  day: {shifts: [{days: [mon, tue, wed, thu, fri], start: "06:00", end: "14:00"}]}
operators:
  - {name: crew, headcount: 2, calendar: day, qualified: [m1, m2]}
stations:
  - name: m1
    process_time: 1 h
    operators: {count: 1}
    setup: {A->B: {time: 2 h, major_clean: true}}
    cleaning: {minor: 30 min, major: 3 h, skid: cip-1, due: {batches: 5}}
  - name: m2
    process_time: 1 h
"""


def run(tmp_path, text: str, *args: str):
    path = tmp_path / "line.yaml"
    path.write_text(text, encoding="utf-8")
    return path, run_cli("validate", str(path), *args)


def test_the_base_spec_is_valid(tmp_path):
    _, result = run(tmp_path, BASE)
    assert result.returncode == 0, result.stderr


def check(tmp_path, old: str, new: str, expected: list[str]) -> None:
    assert old in BASE
    path, result = run(tmp_path, BASE.replace(old, new, 1))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    for line in expected:
        assert f"{path}:{line}" in result.stderr, result.stderr


def test_a_changeover_naming_an_unknown_product(tmp_path):
    check(tmp_path, "A->B: {", "A->Z: {", ["13: stations[0].setup: unknown product 'Z' in setup (products: A, B)"])


def test_a_cleaning_rule_with_a_negative_interval(tmp_path):
    check(tmp_path, "due: {batches: 5}", "due: {batches: -5, hours: -2 h}", [
        "14: stations[0].cleaning.due.batches: should be greater than or equal to 1 (got -5)",
        "14: stations[0].cleaning.due.hours: must be a positive duration (got '-2 h')",
    ])  # fmt: skip
    check(tmp_path, "minor: 30 min", "minor: -30 min", ["14: stations[0].cleaning.minor.value: must be a positive"])


def test_a_skid_no_station_uses(tmp_path):
    check(tmp_path, "skids: [{name: cip-1}]", "skids: [{name: cip-1}, {name: cip-2}]",
          ["4: skids[1].name: skid 'cip-2' is used by no station"])  # fmt: skip
    check(
        tmp_path, "skid: cip-1", "skid: cip-9", ["14: stations[0].cleaning.skid: unknown skid 'cip-9' (skids: cip-1)"]
    )


def test_a_shift_calendar_that_never_covers_a_station_that_needs_operators(tmp_path):
    check(tmp_path, 'day: {shifts: [{days: [mon, tue, wed, thu, fri], start: "06:00", end: "14:00"}]}',
          "day: {shifts: []}",
          ["6: calendars.day.shifts: needs at least one shift (a calendar without shifts never works)"])  # fmt: skip
    check(
        tmp_path, "qualified: [m1, m2]", "qualified: [m2]", ["12: stations[0].operators: no operator pool is qualified"]
    )
    check(tmp_path, 'start: "06:00"', 'start: "25:00"', ["6: calendars.day.shifts[0].start: expected a clock time"])


def test_other_rule_errors_name_their_fields(tmp_path):
    check(tmp_path, "major: 3 h, skid: cip-1, due: {batches: 5}", "skid: cip-1",
          ["13: stations[0].setup.A->B: needs a major clean: give cleaning.major"])  # fmt: skip
    check(tmp_path, "major: 3 h, skid", "skid", ["14: stations[0].cleaning: 'due' needs a 'major' clean time"])
    check(tmp_path, "  - name: m2\n    process_time: 1 h\n", "  - name: m2\n    process_time: 1 h\n    merge: 3\n",
          ["17: stations[1].merge: merging needs one product, or a plan of whole merges"])  # fmt: skip
    check(tmp_path, "stations:", "hold_times: [{from: m2, to: m1, max: 3 h}]\nstations:",
          ["9: hold_times[0]: 'm2' must come before 'm1' in the flow"])  # fmt: skip
    check(tmp_path, "stations:", "qc: {analysts: 0, test_time: 2 d, oos_action: investigate}\nstations:", [
        "9: qc.analysts: should be greater than or equal to 1 (got 0)",
    ])  # fmt: skip


def test_trace_prints_a_batch_history_up_and_down_its_tree(tmp_path):
    spec = tmp_path / "split.yaml"
    spec.write_text(
        """\
name: split-merge
horizon: 100 h
products: [{name: A, batch_size: 100}]
release: {mode: plan, plan: [{product: A, batches: 2}]}
stations:
  - {name: s1, process_time: 1 h, split: 2}
  - {name: s2, process_time: 30 min}
  - {name: s3, process_time: 1 h, merge: 2}
""",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    assert run_cli("run", str(spec), "-r", "1", "--warmup", "0", "--out", str(out)).returncode == 0
    assert (out / "genealogy.parquet").is_file()
    data = json.loads(run_cli("trace", str(out), "1", "--json").stdout)
    assert data["ancestors"] == {"1": [0], "0": []}
    assert data["descendants"] == {"1": [6], "6": []}
    assert [r["event"] for r in data["history"]["6"]][:3] == ["merge", "merge", "start"]
    text = run_cli("trace", str(out), "6").stdout
    assert "merge @s3 (from 1, 2)" in text and "split @s1 (from 0)" in text
    missing = run_cli("trace", str(out), "99")
    assert missing.returncode == 2 and "no batch 99" in missing.stderr
