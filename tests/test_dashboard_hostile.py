"""`twin dashboard` against hostile clients, over real HTTP to a real `twin dashboard` process.

Unknown user names cost the same password hash as wrong passwords; failed logins from one address
are slowed down (429 with Retry-After) without touching other addresses or users already in; request
bodies over the cap are refused without the server's memory growing; the Live and Calibrate pages open
only the historians given at start or under the historian folder. Waits are read from the server's
own Retry-After; caps are generous and only a hang reaches them.
"""

from __future__ import annotations

import http.client
import time
from base64 import b64encode
from pathlib import Path

import pytest
import requests
from dashboard_helpers import free_port, start_dashboard, stop

import dashboards.auth as auth
from connectors.opcua.historian import Historian
from dashboards.app import MAX_REQUEST_BODY

PASSWORD = "correct horse 1"


def _users(root: Path) -> Path:
    users = root / "users.json"
    auth.add_user(users, "ana", PASSWORD)
    auth.add_user(users, "ben", "another passphrase")
    return users


def _historian(path: Path, line: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h = Historian(path)
    h.set_meta(line=line, state="connected", endpoint="opc.tcp://127.0.0.1:4841")
    h.close()
    return path


def _get(port: int, user: str, password: str, source: str = "127.0.0.1") -> http.client.HTTPResponse:
    """GET / with basic credentials from the loopback address ``source`` (each address has its own back-off)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    token = b64encode(f"{user}:{password}".encode()).decode()
    conn.request("GET", "/", headers={"Authorization": f"Basic {token}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unknown_users_cost_the_same_hash_as_wrong_passwords(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    users = auth.load_users(_users(tmp_path))
    checked: list[str] = []
    made: list[str] = []
    real_check, real_make = auth.check_password_hash, auth.generate_password_hash
    monkeypatch.setattr(auth, "check_password_hash", lambda h, p: checked.append(h) or real_check(h, p))
    monkeypatch.setattr(auth, "generate_password_hash", lambda *a, **k: made.append("x") or real_make(*a, **k))
    for name in ("ana", "nobody", "ben", "an", "ANA"):
        checked.clear()
        assert not auth.check(users, name, "wrong password")
        assert len(checked) == 1 and not made, name  # one hash, none generated on the way
        assert checked[0].split("$")[0] == users["ana"].split("$")[0] == "scrypt:32768:8:1"  # at the same cost
    assert auth.check(users, "ana", PASSWORD)


def test_the_login_back_off_doubles_and_forgets():
    now = [0.0]
    throttle = auth.LoginThrottle(free=3, base=1.0, cap=8.0, forget=100.0, max_tracked=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait("a") == 0.0
        throttle.failed("a")
    assert throttle.wait("a") == 1.0 and throttle.wait("b") == 0.0
    waits = []
    for _ in range(5):
        now[0] += throttle.wait("a")
        throttle.failed("a")
        waits.append(throttle.wait("a"))
    assert waits == [2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, capped
    now[0] += 101.0
    assert throttle.wait("a") == 0.0  # forgotten after a quiet spell
    for client in ("a", "b", "c"):
        for _ in range(3):
            throttle.failed(client)
    assert throttle.wait("a") == 0.0 and throttle.wait("c") == 1.0  # at most two addresses remembered
    throttle.succeeded("c")
    assert throttle.wait("c") == 0.0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    users = _users(root)
    given = _historian(root / "given" / "plant.db", "given-line")
    folder = root / "historians"
    _historian(folder / "line-2.db", "folder-line")
    outside = _historian(root / "elsewhere" / "secret.db", "secret-line")
    (folder / "sneaky.db").symlink_to(outside)
    port = free_port()
    proc = start_dashboard(
        root / "store",
        port,
        "--users",
        str(users),
        "--historian",
        str(given),
        "--historian-dir",
        str(folder),
    )
    try:
        yield {"port": port, "proc": proc, "root": root, "given": given, "folder": folder, "outside": outside}
    finally:
        stop(proc)


def test_failed_logins_back_off_per_address_and_never_slow_users_already_in(guarded):
    port = guarded["port"]
    assert _get(port, "ana", PASSWORD, "127.0.0.1").status == 200  # ana is in, from the attacked address too
    statuses = [_get(port, user, "guess", "127.0.0.1").status for user in ("ana", "nobody", "ana", "x", "ben")]
    assert statuses == [401] * auth.FREE_FAILURES  # unknown names and wrong passwords alike
    retry = 0
    for _ in range(12):  # each failure past the free ones doubles the wait: wait them out until it is 4 s
        r = _get(port, "ana", "guess", "127.0.0.1")
        if r.status == 429:
            retry = int(r.getheader("Retry-After"))
            if retry >= 4:
                break
            time.sleep(retry)
        else:
            assert r.status == 401
    assert retry >= 4
    assert _get(port, "ben", "another passphrase", "127.0.0.1").status == 429  # even a right password waits
    assert _get(port, "ana", PASSWORD, "127.0.0.1").status == 200  # already in: not slowed down
    assert _get(port, "ben", "another passphrase", "127.0.0.2").status == 200  # other addresses: untouched
    assert _get(port, "ben", "guess", "127.0.0.3").status == 401
    time.sleep(retry)
    assert _get(port, "ben", "another passphrase", "127.0.0.1").status == 200  # after the wait, and it resets
    assert _get(port, "ben", "guess", "127.0.0.1").status == 401


def _post_big(port: int, size: int, chunked: bool) -> int | None:
    """POST ``size`` bytes to the callback route, streamed; the status, or None if the server hung up first."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120, source_address=("127.0.0.9", 0))
    block = b"{" + b" " * (1024 * 1024 - 1)
    headers = {"Content-Type": "application/json", "Authorization": "Basic " + b64encode(b"ana:x").decode()}
    try:
        conn.putrequest("POST", "/_dash-update-component")
        for key, value in headers.items():
            conn.putheader(key, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for _ in range(size // len(block)):
            conn.send(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # refused part-way: the server closed the connection
    try:
        response = conn.getresponse()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def test_big_request_bodies_are_refused_and_memory_stays_flat(guarded):
    port, pid = guarded["port"], guarded["proc"].pid
    assert MAX_REQUEST_BODY <= 8 * 1024 * 1024
    before = _rss_kb(pid)
    for chunked in (False, True):
        status = _post_big(port, 200 * 1024 * 1024, chunked)
        assert status in (413, None), status  # refused (the reply may be lost when the server hangs up first)
    grown_mb = (_rss_kb(pid) - before) / 1024
    assert grown_mb < 50, grown_mb  # 200 MB posted twice
    assert _get(port, "ana", PASSWORD, "127.0.0.2").status == 200  # still serving


def _callback(
    port: int, output: str, values: dict[str, object], changed: str, login: tuple[str, str] | None = ("ana", PASSWORD)
) -> str:
    """Call the Dash callback whose output names ``output`` with the given input/state values; the response text."""
    session = requests.Session()
    session.auth = login
    base = f"http://127.0.0.1:{port}"
    dep = next(d for d in session.get(f"{base}/_dash-dependencies", timeout=60).json() if output in d["output"])
    outputs = [
        {"id": part.split(".")[0], "property": part.split(".")[1]} for part in dep["output"].strip(".").split("...")
    ]

    def filled(items: list[dict]) -> list[dict]:
        return [{**item, "value": values.get(f"{item['id']}.{item['property']}")} for item in items]

    body = {
        "output": dep["output"],
        "outputs": outputs,
        "inputs": filled(dep["inputs"]),
        "state": filled(dep["state"]),
        "changedPropIds": [changed],
    }
    r = session.post(f"{base}/_dash-update-component", json=body, timeout=120)
    assert r.status_code == 200, r.text[:500]
    return r.text


def _live(port: int, path: str, login: tuple[str, str] | None = ("ana", PASSWORD)) -> str:
    return _callback(
        port,
        "live-status.children",
        {"live-tick.n_intervals": 1, "live-historian.value": path, "live-historian.id": "live-historian"},
        "live-historian.value",
        login,
    )


def test_the_pages_open_only_the_historians_given_at_start(guarded):
    port, given, folder, outside = guarded["port"], guarded["given"], guarded["folder"], guarded["outside"]
    assert "line given-line" in _live(port, str(given))
    assert "line folder-line" in _live(port, "line-2.db")  # a name: looked for in the folder
    assert "line folder-line" in _live(port, str(folder / "line-2.db"))
    refused = (
        "/etc/passwd",
        str(outside),  # a real historian, outside
        str(folder / ".." / "elsewhere" / "secret.db"),  # out of the folder by ..
        "../elsewhere/secret.db",
        str(folder / "sneaky.db"),  # a symbolic link in the folder to a file outside it
        str(folder),
        "/no/such/file.db",
    )
    for path in refused:
        text = _live(port, path)
        assert "is not a historian this dashboard may open" in text and "secret-line" not in text, (path, text[:300])
    assert "root:" not in _live(port, "/etc/passwd")
    forecast = _callback(
        port,
        "fc-error.children",
        {"fc-forecast.n_clicks": 1, "fc-source.value": "historian", "fc-historian.value": str(outside),
         "fc-horizon.value": 24, "fc-runs.value": 5},
        "fc-forecast.n_clicks",
    )  # fmt: skip
    assert "is not a historian this dashboard may open" in forecast


def test_without_historians_given_the_pages_open_none(tmp_path: Path):
    h = _historian(tmp_path / "plant.db", "some-line")
    port = free_port()
    proc = start_dashboard(tmp_path / "store", port)
    try:
        text = _live(port, str(h), login=None)
        assert "opens no historian" in text and "some-line" not in text
    finally:
        stop(proc)


def test_the_app_itself_refuses_big_bodies_under_any_wsgi_server(tmp_path: Path):
    from dashboards.app import create_app

    client = create_app(tmp_path / "store", work_dir=tmp_path / "work").server.test_client()
    r = client.post("/_dash-update-component", data=b" " * (MAX_REQUEST_BODY + 1), content_type="application/json")
    assert r.status_code == 413
    assert client.get("/_dash-layout").status_code == 200


def test_bad_historian_options_exit_2_with_one_line(tmp_path: Path):
    import subprocess
    import sys

    twin = str(Path(sys.executable).with_name("twin"))
    (tmp_path / "file.db").write_text("x")
    for args, message in (
        (["--historian", str(tmp_path / "missing.db")], "no such file"),
        (["--historian-dir", str(tmp_path / "missing")], "no such folder"),
        (["--historian-dir", str(tmp_path / "file.db")], "no such folder"),
    ):
        done = subprocess.run(
            [twin, "dashboard", "--store", str(tmp_path / "store"), *args], capture_output=True, text=True, timeout=120
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], (args, done.stderr)
