"""The dashboard against hostile clients: login timing of unknown vs known users, and memory after a big POST.

    python benchmarks/bench_dashboard_hostile.py [--logins 20] [--post-mb 200]

1. A users file with two users and `twin dashboard --users FILE` as its own process (waitress).
2. Logins: ``--logins`` rounds of three requests, in turn an unknown user name, a known user with a
   wrong password, and a user already logged in (credentials checked before: no hash), each from a
   fresh loopback address (127.0.x.y) so that the back-off after failed logins does not come in. Printed:
   median and p90 wall time per kind, and the ratio unknown / wrong password (1.0: names cannot be
   told apart by time).
3. Back-off: failed logins from one address in a row until the server answers 429; printed: how many
   were answered 401 first and the Retry-After of the first 429s.
4. Memory: the server's resident memory (VmRSS) before, then after a ``--post-mb`` MB POST to the
   callback route with Content-Length, then after the same body sent chunked; the status each got.

Run it with another checkout's code (``PYTHONPATH=/path/to/other``) to compare. The machine is shared:
timings are noisy, ratios less so.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

PASSWORD = "correct horse 1"


def _get(port: int, user: str, password: str, source: str) -> tuple[int, float, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120, source_address=(source, 0))
    token = b64encode(f"{user}:{password}".encode()).decode()
    began = time.perf_counter()
    conn.request("GET", "/_dash-layout", headers={"Authorization": f"Basic {token}"})
    response = conn.getresponse()
    response.read()
    took = time.perf_counter() - began
    conn.close()
    return response.status, took, response.getheader("Retry-After")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post(port: int, mb: int, chunked: bool) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300, source_address=("127.0.9.9", 0))
    block = b"{" + b" " * (1024 * 1024 - 1)
    try:
        conn.putrequest("POST", "/_dash-update-component")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", "Basic " + b64encode(b"ana:" + PASSWORD.encode()).decode())
        conn.putheader(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(mb * len(block)))))
        conn.endheaders()
        for _ in range(mb):
            conn.send(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            conn.send(b"0\r\n\r\n")
    except OSError as err:
        return f"server hung up after the headers ({err.__class__.__name__})"
    try:
        return str(conn.getresponse().status)
    except (OSError, http.client.HTTPException) as err:
        return f"no answer ({err.__class__.__name__})"
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--post-mb", type=int, default=200)
    args = parser.parse_args()
    from dashboard_helpers import free_port, start_dashboard, stop

    from dashboards.auth import add_user

    print(f"load average {os.getloadavg()[0]:.1f}; code from {os.environ.get('PYTHONPATH') or ROOT}")
    with tempfile.TemporaryDirectory(prefix="twin-bench-hostile-") as tmp:
        root = Path(tmp)
        users = root / "users.json"
        add_user(users, "ana", PASSWORD)
        add_user(users, "ben", "another passphrase")
        port = free_port()
        proc = start_dashboard(root / "store", port, "--users", str(users))
        try:
            _get(port, "ana", PASSWORD, "127.0.200.1")  # the app's first request
            times: dict[str, list[float]] = {"unknown user": [], "wrong password": [], "already in": []}
            for i in range(args.logins):
                for j, (kind, user, password) in enumerate(
                    (("unknown user", f"nobody{i}", "guess"), ("wrong password", "ana", "guess"),
                     ("already in", "ana", PASSWORD))
                ):  # fmt: skip
                    status, took, _ = _get(port, user, password, f"127.0.{i + 1}.{j + 1}")
                    assert status == (200 if kind == "already in" else 401), (kind, status)
                    times[kind].append(took)
            for kind, values in times.items():
                values.sort()
                p90 = values[int(0.9 * (len(values) - 1))]
                print(f"{kind:>15}: median {statistics.median(values) * 1000:7.1f} ms, p90 {p90 * 1000:7.1f} ms")
            ratio = statistics.median(times["unknown user"]) / statistics.median(times["wrong password"])
            print(f"unknown user / wrong password: {ratio:.2f}")
            answers = []
            for _ in range(12):
                status, _, retry = _get(port, "ana", "guess", "127.0.250.1")
                answers.append(status if status != 429 else f"429 (Retry-After {retry})")
                if status == 429:
                    if len([a for a in answers if a != 401]) >= 2:
                        break
                    time.sleep(float(retry or 1))
            print(f"failed logins from one address: {answers}")
            before = _rss_mb(proc.pid)
            print(f"RSS before the POSTs: {before:.0f} MB")
            for chunked in (False, True):
                status = _post(port, args.post_mb, chunked)
                how = "chunked" if chunked else "with Content-Length"
                print(f"POST of {args.post_mb} MB {how}: {status}; RSS after {_rss_mb(proc.pid):.0f} MB")
            time.sleep(2)
            print(f"RSS 2 s later: {_rss_mb(proc.pid):.0f} MB")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
