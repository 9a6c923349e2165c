"""Files people can share, signals handled like Ctrl-C, and no debris after kill -9 (real `twin` processes)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from opcua_helpers import LINE_YAML, TwinProcess, endpoint, wait_until
from test_hostile_input import wait_for_signal_handlers

from twin.runfolder import read_run

TWIN = str(Path(sys.executable).parent / "twin")
ROOT = Path(__file__).resolve().parents[1]
HANG = 300  # seconds: a cap only a hang reaches


def twin(args: list[str], cwd: Path, umask: int | None = None, **kw) -> subprocess.CompletedProcess[str]:
    """Run the real `twin` (under ``umask`` when given); fail the test with its output if it fails."""
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([TWIN, *args], cwd=cwd, capture_output=True, text=True, timeout=HANG, env=env,
                          preexec_fn=preexec, **kw)  # fmt: skip
    assert done.returncode == 0, f"twin {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def write_line(folder: Path) -> Path:
    (folder / "line.yaml").write_text(LINE_YAML)
    return folder / "line.yaml"


def modes(root: Path, skip: set[str]) -> dict[str, tuple[bool, int]]:
    """Path (relative) -> (is a folder, permission bits) of everything under ``root``."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip:
            continue
        out[str(rel)] = (path.is_dir(), stat.S_IMODE(path.lstat().st_mode))
    return out


# --- files people can share ---------------------------------------------------------------------------------

HISTORIAN = """
from connectors.opcua.historian import Historian
h = Historian("plant.db")
h.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
h.db.commit()
h.export("history.csv")
h.close() if hasattr(h, "close") else None
"""


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_every_output_honours_the_umask(tmp_path, umask):
    """Run folders, compare folders, store entries, exports, optimizer results, USD scenes and assets, calibrated
    specs, snapshots, historian files and tag maps: 0644/0755 under umask 022, 0600/0700 under 077."""
    write_line(tmp_path)
    short = ["-r", "1", "--horizon", "100 h"]
    twin(["run", "line.yaml", *short, "--out", "runs/base"], tmp_path, umask)
    twin(["export-usd", "runs/base", "--out", "scene/line.usdc"], tmp_path, umask)
    twin(["snapshot", "runs/base", "--out", "state/now.json"], tmp_path, umask)
    twin(["calibrate", "line.yaml", "--from", "runs/base", "-r", "1", "--out", "cal/calibrated.yaml"], tmp_path, umask)
    if umask == 0o022:  # the rest once: each is a real process of a few seconds
        twin(["compare", "line.yaml", *short, "-s", "two mixers: stations.mix.units=2", "--out", "cmp"], tmp_path, umask)
        sweep = ["sweep", "line.yaml", "--grid", "stations.fill.buffer=1,2", *short, "--workers", "0"]
        twin([*sweep, "--store", "store"], tmp_path, umask)
        run_id = sorted((tmp_path / "store" / "runs").iterdir())[0].name
        twin(["runs", "export", run_id, "--to", "exported", "--store", "store"], tmp_path, umask)
        twin(["runs", "export", run_id, "--to", "exported-csv", "--format", "csv", "--store", "store"], tmp_path, umask)
        optimize = ["optimize", "line.yaml", "--vary", "stations.fill.buffer=0..2", "--evals", "10", "-r", "2"]
        twin([*optimize, "--confirm", "2", "--out", "opt"], tmp_path, umask)
        twin(["emulate", "line.yaml", "--write-map", "map.yaml"], tmp_path, umask)
        subprocess.run([sys.executable, "-c", HISTORIAN], cwd=tmp_path, check=True, timeout=HANG,
                       preexec_fn=lambda: os.umask(umask))  # fmt: skip
    found = modes(tmp_path, skip={"line.yaml"})
    expected_kinds = {"runs/base/events.parquet", "scene/line.usdc", "scene/twin_assets/generic.usda",
                      "state/now.json", "cal/calibrated.yaml"}  # fmt: skip
    if umask == 0o022:
        expected_kinds |= {"cmp/00-baseline/events.parquet", "cmp/01-two-mixers/run.json", "store/runs/" + run_id + "/entry.parquet", "store/twin-store.json",
                           "exported/events.parquet", "exported-csv/events.csv", "opt/best.yaml",
                           "opt/run/events.parquet", "map.yaml", "plant.db", "history.csv"}  # fmt: skip
    missing = expected_kinds - set(found)
    assert not missing, f"not written: {missing}"
    wrong = {p: oct(m) for p, (folder, m) in found.items() if m != (0o777 if folder else 0o666) & ~umask}
    assert not wrong, f"modes other than the umask's ({oct(umask)}): {wrong}"
    assert not [p for p in found if Path(p).name.startswith(".") and ".tmp" in p], "temporary files left"


# --- no debris ------------------------------------------------------------------------------------------------


def test_kill_9_debris_is_removed_by_the_next_write_to_the_same_place(tmp_path):
    """kill -9 while `twin run --out` writes leaves its temporary folder; the next write there removes it
    (a live writer's is kept), and the folder is hidden, never a run at the target."""
    write_line(tmp_path)
    target = tmp_path / "base"
    debris: list[Path] = []
    for _attempt in range(6):  # the kill must land while the folder is written (a fraction of a second)
        proc = subprocess.Popen([TWIN, "run", "osd-tablet", "-r", "6", "--out", str(target)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + HANG
        while proc.poll() is None and time.monotonic() < deadline:
            debris = [p for p in tmp_path.iterdir() if p.name.startswith(".base.") and p.name.endswith(".tmp")]
            if debris:
                proc.kill()
                break
            time.sleep(0.001)
        proc.wait(HANG)
        if debris and not target.exists():
            break
        debris = []
        if target.exists():
            subprocess.run(["rm", "-rf", str(target)], check=True)
    assert debris, "the kill never landed while the run folder was written"
    assert all(p.is_dir() for p in debris) and not target.exists()
    time.sleep(0.1)
    assert [p for p in debris if p.exists()], "debris was left by kill -9 (that is what this test is about)"
    host = socket.gethostname()
    alive = tmp_path / f".base.{host}-{os.getpid()}-0123456789ab.tmp"  # this test process: alive, a writer
    alive.mkdir()
    dead_file = tmp_path / f".scene.usdc.{host}-999999999-0123456789ab.tmp.usdc"  # pid beyond pid_max: gone
    dead_file.write_bytes(b"half a scene")
    other = tmp_path / f".based.{host}-999999999-0123456789ab.tmp"  # another target's: not this write's business
    other.mkdir()

    twin(["run", "line.yaml", "-r", "1", "--horizon", "100 h", "--out", "base"], tmp_path)
    read_run(target)  # whole
    assert not [p for p in debris if p.exists()], "the next write to the same place did not remove the debris"
    assert alive.exists() and other.exists()
    twin(["export-usd", "base", "--out", "scene.usdc"], tmp_path)
    assert not dead_file.exists() and (tmp_path / "scene.usdc").is_file()


# --- signals --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.5, 4.0, 10.0])
def test_sigterm_stops_twin_run_like_ctrl_c(tmp_path, delay):
    """While Python starts, while the CLI imports, and while the command runs (typer's own handling of an
    interrupt in a command is a silent exit 130: the CLI says what happened instead)."""
    out = tmp_path / "run"
    proc = subprocess.Popen([TWIN, "run", "osd-tablet", "-r", "40", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=HANG)[1]
    assert "Traceback" not in err
    if proc.returncode in (0, -signal.SIGTERM):
        # finished before the signal, or the signal landed while Python was exiting (its finalisation puts back
        # SIGTERM's default action: the shell reports 143 as for an interrupted command): the run is whole
        read_run(out)
        return
    assert proc.returncode == 143, err
    if out.exists():  # the signal came after the rename: whole, and said so
        read_run(out)
        assert f"terminated (SIGTERM); written whole before it: {out}" in err
    else:
        assert err.strip().endswith("terminated (SIGTERM); nothing was written"), err
    assert [p.name for p in tmp_path.iterdir() if p.name != "run"] == []  # no debris


def test_sigint_stops_twin_run_when_inherited_as_ignored(tmp_path):
    """A background job of a shell starts with SIGINT ignored; the CLI installs its own handler."""
    out = tmp_path / "run"

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([TWIN, "run", "osd-tablet", "-r", "200", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore_sigint)  # fmt: skip
    wait_for_signal_handlers(proc, signal.SIGINT)  # the CLI's own handler, in place of the ignored disposition
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=HANG)[1]
    assert proc.returncode == 130, err  # with SIGINT left ignored the 200 replications would run to the end: 0
    assert err.strip().endswith("interrupted; nothing was written") and not out.exists()


def test_sigterm_stops_a_sweep_with_whole_points_and_the_same_command_runs_the_rest(tmp_path):
    sweep = [TWIN, "sweep", "osd-tablet", "--grid", "stations.coating.buffer=0..9", "-r", "4", "--workers", "0",
             "--store", "st", "--horizon", "8 w"]  # fmt: skip
    proc = subprocess.Popen(sweep, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (tmp_path / "st" / "runs").is_dir() and any((tmp_path / "st" / "runs").iterdir()),
               timeout=HANG, interval=0.01, what="a first point stored")  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=HANG)[1]
    stored = sorted((tmp_path / "st" / "runs").iterdir())
    assert proc.returncode == 143, err
    assert f"terminated (SIGTERM): {len(stored)} of 10 points stored" in err and "Traceback" not in err
    assert len(stored) < 10
    for run in stored:
        read_run(run)
    staging = tmp_path / "st" / ".staging"
    assert not staging.exists() or not list(staging.iterdir()), "a save cut short left debris"
    again = subprocess.run(sweep, cwd=tmp_path, capture_output=True, text=True, timeout=HANG)
    assert again.returncode == 0, again.stderr
    assert f"{len(stored)} already stored, {10 - len(stored)} to run" in again.stderr


def _emulate(root: Path, ep: str, *extra: str) -> list[str]:
    return ["emulate", "line.yaml", "--endpoint", ep, "--security", "none", "--allow-anonymous", "--pki", "pki-emu",
            *extra]  # fmt: skip


def test_sigterm_stops_twin_emulate_and_its_out_holds_the_run_so_far(tmp_path):
    """`twin emulate --out` lost its run on SIGTERM; now the run as far as it went is written, and equals the
    start of an uninterrupted run of the same seed row for row."""
    write_line(tmp_path)
    ep = endpoint()
    with TwinProcess(_emulate(tmp_path, ep, "--speed", "36000", "--seed", "3", "--out", "emu-run"), tmp_path,
                     "emu") as emu:  # fmt: skip
        emu.wait_for("emulating mini")
        time.sleep(2.0)
        emu.proc.send_signal(signal.SIGTERM)
        assert emu.proc.wait(HANG) == 0, emu.log()
        log = emu.log()
    assert "SIGTERM: stopping cleanly" in log and "Traceback" not in log
    assert "emulator run written to emu-run" in log and "(stopped there)" in log
    stopped = read_run(tmp_path / "emu-run")
    hours = stopped.log.meta.horizon
    assert 0 < hours < 300
    from twin.experiment import run
    from twin.models import load_spec

    full = run(load_spec(str(tmp_path / "line.yaml")), 1, 3, hours + 50, 0.0).log.table
    part = stopped.log.table

    def before(t: pd.DataFrame) -> pd.DataFrame:
        return t[(t["time"] < hours) & (t["event"] != "end")].reset_index(drop=True)

    assert len(before(part)) > 20
    pd.testing.assert_frame_equal(before(part), before(full))


def test_sigterm_stops_serve_sync_and_dashboard_cleanly(tmp_path):
    from connectors.opcua.tagmap import default_tag_map, dump_tag_map
    from twin.models import load_spec

    write_line(tmp_path)
    (tmp_path / "map.yaml").write_text(dump_tag_map(default_tag_map(load_spec(str(tmp_path / "line.yaml")))))
    ep, serve_ep = endpoint(), endpoint()
    with TwinProcess(_emulate(tmp_path, ep, "--speed", "36000", "--map", "map.yaml"), tmp_path, "emu") as emu:
        emu.wait_for("emulating mini")
        sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s",
                "--historian", "h.db", "--out", "plant-run", "--kpi-every", "0.5"]  # fmt: skip
        with TwinProcess(sync, tmp_path, "sync") as feed:
            feed.wait_for("subscribed to")
            wait_until(lambda: read_plant_hours(feed.log()) > 5, timeout=HANG, what="5 plant hours received")
            feed.proc.send_signal(signal.SIGTERM)
            assert feed.proc.wait(HANG) == 0, feed.log()
            log = feed.log()
        assert "SIGTERM: stopping cleanly" in log and "plant run written to plant-run" in log, log
        plant = read_run(tmp_path / "plant-run")
        assert plant.log.meta.horizon > 5 and len(plant.log.table) > 10
        emu.proc.send_signal(signal.SIGTERM)
        assert emu.proc.wait(HANG) == 0 and "SIGTERM: stopping cleanly" in emu.log()
    serve = ["serve", "line.yaml", "--endpoint", serve_ep, "--security", "none", "--allow-anonymous", "--pki", "pki"]
    with TwinProcess(serve, tmp_path, "serve") as server:
        server.wait_for("serving mini")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(HANG) == 0 and "SIGTERM: stopping cleanly" in server.log(), server.log()
    port = int(serve_ep.rsplit(":", 1)[1])
    with TwinProcess(["dashboard", "--store", "st", "--port", str(port)], tmp_path, "dash") as dash:
        wait_until(lambda: "twin dashboard on" in dash.stdout(), timeout=HANG, what="the dashboard serving")
        dash.proc.send_signal(signal.SIGTERM)
        assert dash.proc.wait(HANG) == 0, dash.log()
        assert "SIGTERM: twin dashboard stopped" in dash.stdout() and "Traceback" not in dash.log()


def read_plant_hours(log: str) -> float:
    """The plant hours of the sync's last progress line (0 before the first)."""
    import re

    found = re.findall(r"plant\s+([0-9.]+)\s*h", log)
    return float(found[-1]) if found else 0.0
