"""Hostile input and exhaustion: every case is refused by the real ``twin`` process in one line, exit code 2.

Each case once made ``twin`` hang, eat gigabytes or fail with an internal error (issue 16).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from twin.engine.budget import estimate_work
from twin.engine.simulate import simulate
from twin.models import load_spec
from twin.spec.limits import DEFAULT_MAX_EVENTS, MAX_DEPTH, MAX_EMPIRICAL, MAX_NODES, MAX_SPEC_BYTES

LINE = "name: x\nhorizon: 100 h\nstations: [{name: m, process_time: 1}]\n"


def assert_refused(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit code 2, exactly one line on stderr containing ``expected``, no traceback, nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert len(lines[0]) < 400, lines[0]
    assert result.stdout == ""


def billion_laughs() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n" + LINE


def write(tmp_path: Path, text: str | bytes, name: str = "line.yaml") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


FILES = {
    "billion laughs": (billion_laughs(), "aliases expand to more than"),
    "alias chain nested past the limit": (
        "\n".join(
            [f"a0: &a0 {'[' * 30}1{']' * 30}"] + [f"a{i}: &a{i} {'[' * 30}*a{i - 1}{']' * 30}" for i in range(1, 9)]
        )
        + "\n"
        + LINE,
        f"aliases expand to more than {MAX_DEPTH} levels",
    ),
    "an alias inside itself": (
        "name: x\nhorizon: 1 h\nstations: &s [{name: m, process_time: 1, x: *s}]\n",
        "an alias refers to a value that contains it",
    ),
    "nesting 2,000 deep": (LINE + "x: " + "[" * 2000 + "]" * 2000 + "\n", f"nested more than {MAX_DEPTH} levels deep"),
    "a NUL character": (LINE.replace("name: x", "name: x\x00"), "control character (U+0000)"),
    "a control character": (LINE.replace("name: x", "name: x\x1b"), "control character (U+001B)"),
    "a 5,000-digit integer": (LINE.replace("process_time: 1", "process_time: 1, units: " + "9" * 5000), "a number of 5,000"),
    "more values than the limit": (LINE + "x: [" + ", ".join(["1"] * (MAX_NODES + 10)) + "]\n", "more than 100,000 values"),
    "a 200,000-value empirical list": (
        LINE.replace("process_time: 1", "process_time: {dist: empirical, values: [" + ",".join(["1"] * 200_000) + "]}"),
        "values",
    ),
    "a 20,000-value empirical list": (
        LINE.replace("process_time: 1", "process_time: {dist: empirical, values: [" + ",".join(["1"] * 20_000) + "]}"),
        f"should have at most {MAX_EMPIRICAL} items",
    ),
    "a 10 MB name": (LINE.replace("name: x", "name: " + "x" * 10_000_000), "larger than 1024 KiB"),
    "a 900 kB name": (LINE.replace("name: x", "name: " + "x" * 900_000), "should have at most 64 characters"),
    "batch size 1e308": (LINE + "products: [{name: A, batch_size: 1.0e+308}]\n", "products[0].batch_size"),
    "batch size 2**63": (LINE + f"products: [{{name: A, batch_size: {2**63}}}]\n", "less than or equal to"),
    "a calendar without shifts": (LINE + "calendars: {day: {shifts: []}}\n", "calendars.day.shifts: needs at least one shift"),
    "a horizon of 1e-300 h": (LINE.replace("horizon: 100 h", "horizon: 1e-300 h"), "horizon: must be at least 1 s"),
    "a horizon of 1e308 h": (LINE.replace("horizon: 100 h", "horizon: 1e308 h"), "horizon: must be at most 1,000,000 h"),
    "a plan of ten million batches": (
        LINE + "release: {mode: plan, plan: [{product: batch, batches: 900000}, {product: batch, batches: 900000}]}\n",
        "plans at most 1,000,000 batches",
    ),
    "a gamma that draws exact zeros": (
        LINE.replace("process_time: 1", "process_time: {dist: gamma, mean: 1, sd: 1000000}"),
        "sd must be between 1e-06 and 10 times the mean",
    ),
    "a log-normal that overflows": (
        LINE.replace("process_time: 1", "process_time: {dist: lognormal, mean: 1e-300, sd: 1}"),
        "sd must be at most 1e+06 times the mean",
    ),
    "a field name that is not text": ("? \n" + LINE, "field names must be text (got None)"),
    "not UTF-8": (b"name: \xff\xfe\n", "not UTF-8 text"),
    "an impossible date": (LINE + "description: 0000-01-01\n", "cannot read '0000-01-01'"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_hostile_files_are_refused_in_one_line(tmp_path, case):
    text, expected = FILES[case]
    path = write(tmp_path, text)
    assert_refused(run_cli("validate", path), expected)
    assert os.listdir(tmp_path) == ["line.yaml"]  # nothing written beside it


@pytest.mark.parametrize("device", ["/dev/urandom", "/dev/zero"])
def test_devices_are_read_only_up_to_the_size_cap(device):
    if not Path(device).exists():
        pytest.skip(f"this system has no {device} to read")
    assert_refused(run_cli("validate", device), f"larger than {MAX_SPEC_BYTES // 1024} KiB")


OPTIONS = {
    "negative list index": (["validate", "osd-tablet", "--set", "stations.-1.units=2"], "negative index '-1'"),
    "empty --set value": (["validate", "osd-tablet", "--set", "stations.coating.units="], "no value after '='"),
    "a --set value of 5,000 digits": (["validate", "osd-tablet", "--set", "stations.0.units=" + "9" * 5000], "a number"),
    "a --set billion laughs": (
        ["validate", "osd-tablet", "--set", "description=[" + ", ".join(
            ["&a0 [1,1,1,1,1,1,1,1,1,1]"] + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
        ) + "]"],
        "aliases expand",
    ),
    "failures every 1e-12 h": (
        ["run", "osd-tablet", "-r", "1", "--set", "stations.coating.failures.mtbf=1e-12"],
        "more than 1e15 events",
    ),
    "batch size 1e308 by --set": (["run", "osd-tablet", "--set", "products.ibu-200.batch_size=1e308"], "batch_size"),
    "a 1e308 h horizon": (["run", "osd-tablet", "--horizon", "1e308 h"], "must be at most 1,000,000 h"),
    "a 100,000,000 w horizon": (["run", "osd-tablet", "--horizon", "100000000 w"], "must be at most 1,000,000 h"),
    "a 1e-300 h horizon": (["run", "osd-tablet", "--horizon", "1e-300 h"], "must be at least 1 s"),
    "1e20 replications": (["run", "osd-tablet", "-r", "99999999999999999999"], "replications must be at most 10,000"),
    "a seed past 2**63": (["run", "osd-tablet", "--seed", str(2**70)], "seed must be at most 2**63-1"),
    "2,000 replications": (["run", "osd-tablet", "-r", "2000"], "give --max-events"),
    "a compare over budget": (["compare", "osd-tablet", "-r", "2000", "-s", "a: stations.coating.units=2"], "--max-events"),
    "a budget of zero": (["run", "osd-tablet", "--max-events", "0"], "--max-events 0.0: must be a positive number"),
}


@pytest.mark.parametrize("case", list(OPTIONS))
def test_hostile_options_are_refused_in_one_line(tmp_path, case):
    args, expected = OPTIONS[case]
    assert_refused(run_cli(*args, cwd=tmp_path), expected)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("x" * (MAX_SPEC_BYTES + 1), "larger than 1024 KiB, the limit for a tag map file"),
     (billion_laughs(), "aliases expand to more than")],
    ids=["oversized", "billion laughs"],
)  # fmt: skip
def test_hostile_tag_maps_are_refused_before_anything_starts(tmp_path, text, expected):
    path = write(tmp_path, text, "tags.yaml")
    assert_refused(run_cli("emulate", "osd-tablet", "--map", path, "--endpoint", "opc.tcp://127.0.0.1:0"), expected)


def test_out_under_a_regular_file_is_refused_before_running(tmp_path):
    (tmp_path / "report.txt").write_text("not a folder", encoding="utf-8")
    for command in (["run", "osd-tablet", "-r", "1"], ["compare", "osd-tablet", "-r", "1", "-s", "a: buffer=1"]):
        assert_refused(run_cli(*command, "--out", str(tmp_path / "report.txt" / "run")), "is a file, not a folder")
    assert (tmp_path / "report.txt").read_text(encoding="utf-8") == "not a folder"
    assert sorted(os.listdir(tmp_path)) == ["report.txt"]


def test_the_budget_message_gives_an_override_that_works(tmp_path):
    path = write(tmp_path, LINE)
    refused = run_cli("run", path, "-r", "2", "--max-events", "100")
    assert_refused(refused, "over the budget of 100")
    match = re.search(r"this run would make about ([\d,]+) events \(2 replications of ([\d,]+)\)", refused.stderr)
    assert match, refused.stderr
    override = re.search(r"give --max-events (\S+) to run it anyway", refused.stderr).group(1)
    accepted = run_cli("run", path, "-r", "2", "--max-events", override, "--json")
    assert accepted.returncode == 0, accepted.stderr
    rows = len(simulate(load_spec(path), replications=2, seed=1).table)
    assert rows <= float(match.group(1).replace(",", ""))  # the estimate is not below the real count


def test_a_run_past_the_free_memory_is_refused_even_with_a_budget(tmp_path):
    path = write(tmp_path, LINE.replace("process_time: 1", "process_time: 1 s"))
    refused = run_cli("run", path, "--horizon", "1000000 h", "-r", "10000", "--max-events", "1e15")
    assert_refused(refused, "GB are available")


@pytest.mark.parametrize("model", ["osd-tablet", "sterile-fill-finish"])
def test_the_estimate_bounds_the_real_count_of_the_built_in_models(model):
    """Above the real count (so the budget is safe) and within a factor of 4 (so it refuses no real run)."""
    spec = load_spec(model)
    rows = len(simulate(spec, replications=1, seed=1).table)
    estimate = estimate_work(spec, replications=1).events
    assert rows <= estimate <= 4 * rows, (rows, estimate)
    assert estimate * 10 * 20 < DEFAULT_MAX_EVENTS  # ten replications of ten years fit the default budget


LONG_RUN = """\
name: long
horizon: 60000 h
stations:
  - {name: s1, process_time: {dist: exponential, mean: 0.1 h}}
  - {name: s2, process_time: {dist: exponential, mean: 0.1 h}, buffer: 2}
"""


def wait_for_signal_handlers(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """Until the process catches ``signum`` (the CLI's first step; the kernel's ``SigCgt`` mask says so)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught >> (signum - 1) & 1:
            return
        time.sleep(0.001)
    pytest.fail(f"the CLI did not install its handler of {signal.Signals(signum).name}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.0, 0.3, 5.0])
def test_a_run_stops_on_ctrl_c_and_sigterm_at_any_point(tmp_path, signum, delay):
    """Whenever the signal lands (starting, loading, simulating), the run stops: one line, nothing written."""
    path = write(tmp_path, LONG_RUN)
    exe = Path(sys.executable).parent / "twin"
    proc = subprocess.Popen(
        [str(exe), "run", path, "-r", "1", "--out", str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    wait_for_signal_handlers(proc)  # before them, the signal's default ends Python (nothing ours has run yet)
    try:
        proc.wait(timeout=delay)
        pytest.fail("the run ended before it was interrupted; make LONG_RUN longer")
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)  # only a run that ignores the signal gets near this
    assert proc.returncode == (130 if signum == signal.SIGINT else 143), stderr[-2000:]
    what = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert stderr.strip() == f"{what}; nothing was written"
    assert stdout == ""
    assert os.listdir(tmp_path) == ["line.yaml"]
