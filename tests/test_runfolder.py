"""Run folders are written whole or not at all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, serial_line

from twin.errors import InputError
from twin.experiment import run
from twin.runfolder import read_run, write_run


def test_write_then_read_round_trip(tmp_path):
    result = run(serial_line([1.0, 1.1], [None, 1], horizon=200.0, warmup=20.0), replications=2, seed=3)
    path = write_run(result, tmp_path / "r")
    back = read_run(path)
    assert back.spec == result.spec
    assert back.kpis.summary == result.kpis.summary
    assert back.settings["seed"] == 3


def test_a_failed_write_leaves_nothing(tmp_path):
    result = run(serial_line([1.0], horizon=100.0, warmup=10.0), replications=1)
    blocker = tmp_path / "parent-is-a-file"
    blocker.write_text("x")
    with pytest.raises((OSError, InputError)):
        write_run(result, blocker / "run")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="already exists"):
        write_run(result, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent-is-a-file", "taken"]


def test_not_a_run_folder(tmp_path):
    with pytest.raises(InputError, match="not a run folder"):
        read_run(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_run_never_leaves_half_a_run(tmp_path, sig):
    twin = Path(sys.executable).parent / "twin"
    for delay in (0.5, 1.5, 2.5, 3.5):
        out = tmp_path / f"run-{delay}"
        proc = subprocess.Popen([str(twin), "run", "osd-tablet", "-r", "20", "--out", str(out)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(delay)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        if out.exists():  # finished before the signal: then it is complete
            read_run(out)
        if sig == signal.SIGINT:
            # 130: the CLI caught Ctrl-C; -SIGINT: it came before Python installed its handler
            assert proc.returncode in (0, 130, -signal.SIGINT)
            assert b"Traceback" not in proc.stderr.read()
            leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
            assert leftovers == [], leftovers


def test_a_damaged_run_json_is_a_clear_error(tmp_path):
    result = run(serial_line([1.0], horizon=100.0, warmup=10.0), replications=1)
    path = write_run(result, tmp_path / "r")
    (path / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"run\.json: not readable run information"):
        read_run(path)


GENERATOR_DYING = """
import sys, time
from twin.cli.entry import _redeliver_interrupts, install_signal_handlers
sys.unraisablehook = _redeliver_interrupts
install_signal_handlers()

def process(error):
    try:
        yield
    finally:
        raise error

try:
    for error in {errors}:
        g = process(error)
        next(g)
        del g  # finalised now: what it raises is "unraisable"
    time.sleep({wait})  # the command goes on: a lost interrupt would let it run to its end
    print("done")
except KeyboardInterrupt as err:
    print("stopped by", type(err).__name__)
"""


def test_a_ctrl_c_while_a_simpy_process_is_finalised_still_stops_the_command():
    """Ctrl-C (or SIGTERM) can land while Python closes a generator (a SimPy process): Python would print a
    traceback and go on; the CLI says nothing there and delivers the interrupt again to the command."""
    for error, name in [("KeyboardInterrupt", "KeyboardInterrupt"), ("Terminated", "Terminated")]:
        script = "from twin.errors import Terminated\n" + GENERATOR_DYING.format(errors=f"[{error}]", wait=30)
        stopped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and stopped.stderr == ""
        assert stopped.stdout.strip() == f"stopped by {name}"
    bug = subprocess.run([sys.executable, "-c", GENERATOR_DYING.format(errors="[ValueError('a bug')]", wait=0)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "ValueError: a bug" in bug.stderr  # anything else is still reported
