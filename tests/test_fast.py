"""Every `twin` command once, quickly, on real processes: the core of ``make test-fast`` (``-m fast``).

A newcomer checks an install with ``make test-fast`` (under 2 minutes on a quiet machine); ``make test`` runs
everything. ``test_every_command_has_a_smoke_run`` keeps this file honest: a new command (core or plug-in)
fails it until it is run here too. The commands share one small line, one run folder and one run store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import run_cli
from dashboard_helpers import free_port, start_dashboard
from dashboard_helpers import stop as stop_dashboard
from opcua_helpers import LINE_YAML, TwinProcess, call, endpoint

from twin.cli.app import build_app
from twin.cli.lazy import lazy_group

pytestmark = pytest.mark.fast

# the commands (and command groups' subcommands) that each test below runs
SMOKED = {
    "run": "test_run_trace_snapshot_forecast_calibrate",
    "trace": "test_run_trace_snapshot_forecast_calibrate",
    "snapshot": "test_run_trace_snapshot_forecast_calibrate",
    "forecast": "test_run_trace_snapshot_forecast_calibrate",
    "calibrate": "test_run_trace_snapshot_forecast_calibrate",
    "compare": "test_compare_validate_schema_models_version",
    "validate": "test_compare_validate_schema_models_version",
    "schema": "test_compare_validate_schema_models_version",
    "models": "test_compare_validate_schema_models_version",
    "version": "test_compare_validate_schema_models_version",
    "sweep": "test_sweep_and_the_run_store",
    "runs": "test_sweep_and_the_run_store",
    "export-usd": "test_export_usd",
    "report": "test_report",
    "optimize": "test_optimize",
    "emulate": "test_emulate_sync_history",
    "sync": "test_emulate_sync_history",
    "history": "test_emulate_sync_history",
    "serve": "test_serve_and_opcua",
    "opcua": "test_serve_and_opcua",
    "dashboard": "test_dashboard_and_its_users",
    "dashboard-user": "test_dashboard_and_its_users",
}


def twin(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A real `twin` process that must succeed."""
    if stdin is None and env is None:
        done = run_cli(*args)
    else:
        exe = Path(sys.executable).parent / "twin"
        done = subprocess.run([str(exe), *args], input=stdin, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **(env or {})})  # fmt: skip
    assert done.returncode == 0, f"twin {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fast")
    (folder / "line.yaml").write_text(LINE_YAML)
    return folder / "line.yaml"


def test_every_command_has_a_smoke_run():
    group = lazy_group(build_app())
    commands = set(group.list_commands(None))  # type: ignore[arg-type]
    assert commands == set(SMOKED), f"not run here: {sorted(commands - set(SMOKED))}"
    assert set(SMOKED.values()) <= set(globals()), "SMOKED names a test that does not exist"


def test_compare_validate_schema_models_version(line):
    assert "OK: line 'mini'" in twin("validate", str(line)).stdout
    assert json.loads(twin("schema").stdout)["title"] == "LineSpec"
    assert "osd-tablet" in twin("models").stdout
    assert twin("version").stdout.strip()
    compared = json.loads(twin("compare", str(line), "-s", "x: stations.fill.buffer=3", "-r", "2", "--json").stdout)
    assert compared["scenarios"][0]["name"] == "x"


def test_run_trace_snapshot_forecast_calibrate(line):
    folder = line.parent
    summary = json.loads(twin("run", str(line), "-r", "2", "--out", str(folder / "run"), "--json").stdout)
    assert summary["throughput_per_hour"]["mean"] > 0
    traced = json.loads(twin("trace", str(folder / "run"), "1", "--json").stdout)
    assert traced["batch"] == 1 and traced["history"]
    twin("snapshot", str(folder / "run"), "--at", "150 h", "--out", str(folder / "snap.json"))
    forecast = json.loads(twin("forecast", str(line), "--state", str(folder / "snap.json"), "--horizon", "24 h",
                               "--json").stdout)  # fmt: skip
    assert forecast
    calibrated = json.loads(twin("calibrate", str(line), "--from", str(folder / "run"), "--stations", "mix",
                                 "--families", "exponential", "--json").stdout)  # fmt: skip
    assert calibrated


def test_sweep_and_the_run_store(line):
    store = ["--store", str(line.parent / "store")]
    swept = json.loads(twin("sweep", str(line), "--grid", "stations.fill.buffer=1,2", "-r", "2", "--json", *store).stdout)
    assert swept["backend"] == "in this process" and swept["ran"] == 2
    a, b = (p["run_id"] for p in swept["points"])
    listed = json.loads(twin("runs", "list", "--json", *store).stdout)
    assert {r["run_id"] for r in listed} == {a, b}
    assert a[:8] in twin("runs", "show", a[:8], *store).stdout
    twin("runs", "diff", a, b, *store)
    assert json.loads(twin("runs", "query", "SELECT COUNT(*) AS n FROM runs", "--json", *store).stdout)[0]["n"] == 2
    twin("runs", "export", a, "--to", str(line.parent / "exported"), *store)
    assert (line.parent / "exported").is_dir()
    twin("runs", "rm", b, *store)
    assert len(json.loads(twin("runs", "list", "--json", *store).stdout)) == 1


def test_export_usd(line):
    out = line.parent / "layout.usda"
    twin("export-usd", str(line), "--out", str(out))
    assert out.read_text().startswith("#usda")


def test_report(line):
    folder = line.parent
    twin("run", str(line), "-r", "2", "--out", str(folder / "reported"))
    twin("report", str(folder / "reported"), "--out", str(folder / "report.html"))
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "mini" in page and "<html" in page.lower()


def test_optimize(line):
    best = json.loads(twin("optimize", str(line), "--vary", "stations.fill.buffer=0..2", "--objective", "throughput",
                           "--evals", "3", "--confirm", "2", "--device", "cpu", "--json").stdout)  # fmt: skip
    assert best


def test_emulate_sync_history(line):
    folder, ep = line.parent, endpoint()
    twin("emulate", str(line), "--write-map", str(folder / "map.yaml"))
    twin("opcua", "user", "add", str(folder / "plc-users.yaml"), "op", "--role", "operator",
         env={"TWIN_OPCUA_PASSWORD": "pw"})  # fmt: skip  (the operator that starts the PLC below)
    emulate = ["emulate", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--users"]
    emulate += ["plc-users.yaml", "--allow-anonymous", "--speed", "max", "--paused", "--pki", "pki-emu"]
    with TwinProcess(emulate, folder, "emu") as emu:
        emu.wait_for("emulating mini")
        sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s"]
        sync += ["--historian", "h.db", "--until", "60 h", "--json"]
        with TwinProcess(sync, folder, "sync") as feed:
            feed.wait_for("subscribed to")
            call(ep, "urn:twin:plc:mini", "PLC", "Start", pki=folder / "pki-caller")
            assert feed.proc.wait(300) == 0, feed.log()
        emu.stop()
    assert "samples" in twin("history", str(folder / "h.db"), "--list").stdout


def test_serve_and_opcua(line):
    folder, ep = line.parent, endpoint()
    twin("opcua", "user", "add", str(folder / "users.yaml"), "ana", "--role", "operator",
         env={"TWIN_OPCUA_PASSWORD": "secret pw 1"})  # fmt: skip
    assert "ana" in (folder / "users.yaml").read_text()
    cert = json.loads(twin("opcua", "cert", str(folder / "pki-a")).stdout)
    twin("opcua", "trust", str(folder / "pki-b"), cert["certificate"])
    serve = ["serve", "line.yaml", "--endpoint", ep, "--speed", "max", "--security", "none", "--allow-anonymous"]
    with TwinProcess([*serve, "--pki", "pki-serve"], folder, "serve") as server:
        server.wait_for("serving mini")
        host, port = ep.removeprefix("opc.tcp://").split(":")
        socket.create_connection((host, int(port)), timeout=10).close()
        assert server.stop() in (0, 130)


def test_dashboard_and_its_users(line):
    folder = line.parent
    twin("dashboard-user", "add", "ana", "--users", str(folder / "dash-users.json"), "--password-stdin",
         stdin="correct horse 1\n")  # fmt: skip
    store = folder / "dash-store"
    twin("sweep", str(line), "-r", "1", "--store", str(store))
    port = free_port()
    proc = start_dashboard(store, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as page:
            assert page.status == 200
    finally:
        stop_dashboard(proc)
