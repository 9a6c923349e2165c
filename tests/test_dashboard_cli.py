"""`twin dashboard` from the command line: authentication beyond loopback (real HTTP), and bad options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from dashboard_helpers import free_port, start_dashboard, stop

from twin.experiment import run
from twin.models import load_spec
from twin.store import RunStore

TWIN = str(Path(sys.executable).with_name("twin"))


def twin(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TWIN, *args], capture_output=True, text=True, input=stdin, timeout=120, env=env)


def test_non_loopback_needs_users_then_basic_auth(tmp_path):
    store = RunStore(tmp_path / "store")
    store.save(run(load_spec("osd-tablet"), replications=1, seed=1, horizon=336, warmup=24))
    env = {**os.environ, "TWIN_DASHBOARD_USERS": str(tmp_path / "none.json")}
    refused = twin("dashboard", "--store", str(store.root), "--host", "0.0.0.0", env=env)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "needs users" in refused.stderr
    named = twin("dashboard", "--store", str(store.root), "--host", "0.0.0.0", "--users", str(tmp_path / "none.json"))
    assert named.returncode == 2 and "no users file" in named.stderr
    users = tmp_path / "users.json"
    added = twin("dashboard-user", "add", "ana", "--users", str(users), "--password-stdin", stdin="correct horse 1\n")
    assert added.returncode == 0, added.stderr
    assert "correct horse" not in users.read_text() and "scrypt" in users.read_text()
    port = free_port()
    proc = start_dashboard(store.root, port, "--host", "0.0.0.0", "--users", str(users))
    try:
        url = f"http://127.0.0.1:{port}/"
        assert requests.get(url, timeout=30).status_code == 401
        assert requests.get(url, auth=("ana", "wrong password"), timeout=30).status_code == 401
        assert requests.get(url, auth=("bob", "correct horse 1"), timeout=30).status_code == 401
        ok = requests.get(url, auth=("ana", "correct horse 1"), timeout=30)
        assert ok.status_code == 200 and "twin" in ok.text
        run_id = store.run_ids()[0]
        assert requests.get(f"{url}download/{run_id}/kpis.json", timeout=30).status_code == 401
        assert requests.get(f"{url}download/{run_id}/kpis.json", auth=("ana", "correct horse 1"), timeout=30).ok
    finally:
        stop(proc)


def test_bad_options_exit_2_with_one_line(tmp_path):
    not_store = tmp_path / "stuff"
    not_store.mkdir()
    (not_store / "notes.txt").write_text("hello")
    bad_users = tmp_path / "users.json"
    bad_users.write_text("{not json")
    cases = [
        ("dashboard", "--port", "70000"),
        ("dashboard", "--store", str(not_store)),
        ("dashboard", "--host", "no-such-host.invalid"),
        ("dashboard", "--users", str(bad_users)),
        ("dashboard-user", "add", "bad name!", "--users", str(tmp_path / "u.json"), "--password-stdin"),
        ("dashboard-user", "add", "ana", "--users", str(tmp_path / "u.json"), "--password-stdin"),  # too short
    ]
    for args in cases:
        done = twin(*args, stdin="short\n")
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
    assert not (tmp_path / "u.json").exists()
