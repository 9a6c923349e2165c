"""Helpers of the OPC-UA tests: real `twin` processes on loopback, free ports, a small line with every feature."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.opcua.uabase import free_port

ROOT = Path(__file__).resolve().parents[1]
TWIN = str(Path(sys.executable).parent / "twin")

LINE_YAML = """\
name: mini
time_unit: h
horizon: 300 h
warmup: 20 h
products:
  - {name: A, batch_size: 1000}
  - {name: B, batch_size: 500}
release:
  mode: plan
  repeat: true
  plan: [{product: A, batches: 3}, {product: B, batches: 2}]
stations:
  - name: mix
    process_time: {dist: exponential, mean: 1 h}
    failures: {mtbf: {dist: exponential, mean: 20 h}, mttr: {dist: exponential, mean: 2 h}}
    setup: {A->B: 2 h, B->A: 90 min}
  - name: fill
    units: 2
    buffer: 1
    process_time: {A: {dist: exponential, mean: 1.8 h}, B: 1.5 h}
    failures: {mtbf: {dist: exponential, mean: 30 h}, mttr: {dist: exponential, mean: 1 h}, basis: calendar}
  - name: pack
    buffer: 0
    process_time: {dist: uniform, low: 0.5 h, high: 1.2 h}
"""
"""A line with changeovers, operating and calendar failures, two parallel units, blocking and a campaign plan."""


def endpoint() -> str:
    return f"opc.tcp://127.0.0.1:{free_port()}"


class TwinProcess:
    """A `twin` command running in the background; its stderr goes to a file that tests can wait on."""

    def __init__(self, args: list[str], cwd: Path, name: str, env: dict[str, str] | None = None):
        self.log_path = cwd / f"{name}.log"
        self.out_path = cwd / f"{name}.out"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self._out = open(self.out_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [TWIN, *args],
            cwd=cwd,
            stdout=self._out,
            stderr=self._log,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def stdout(self) -> str:
        return self.out_path.read_text()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.proc.poll() is not None:
                raise AssertionError(f"process ended ({self.proc.returncode}) before {pattern!r}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGINT (a clean shutdown) and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.close()

    def close(self) -> None:
        self._log.close()
        self._out.close()

    def __enter__(self) -> TwinProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()


def wait_until(check, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


def call(
    endpoint_: str,
    namespace: str,
    obj: str,
    method: str,
    *args: str,
    user: str = "op",
    password: str = "pw",
    security: str = "none",
    pki: Path | None = None,
) -> object:
    """Call a method with a fresh client (an operator by default)."""
    import asyncio

    from connectors.opcua.uabase import ClientOptions, connect, namespace_index

    async def go(folder: Path) -> object:
        options = ClientOptions(endpoint_, pki=folder, security=security, user=user, password=password)
        client = await connect(options, "caller")
        try:
            ns = await namespace_index(client, namespace)
            return await client.get_node(f"ns={ns};s={obj}").call_method(f"{ns}:{method}", *args)
        finally:
            await client.disconnect()

    if pki is not None:
        return asyncio.run(go(pki))
    with tempfile.TemporaryDirectory(prefix="twin-caller-") as folder:  # never a PKI in the working directory
        return asyncio.run(go(Path(folder)))


def mini_plant(root: Path, horizon: str, seed: int, speed: str) -> tuple[str, list[str]]:
    """Write the `mini` line (line.yaml with ``horizon``), its default tag map and an operator into ``root``;
    the endpoint to serve it on and the `twin emulate` arguments (paused, no security, anonymous allowed)."""
    import yaml

    from connectors.opcua.security import Users
    from connectors.opcua.tagmap import default_tag_map, dump_tag_map
    from twin.spec.loader import spec_from_data

    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    (root / "line.yaml").write_text(LINE_YAML.replace("horizon: 300 h", f"horizon: {horizon}"))
    (root / "map.yaml").write_text(dump_tag_map(default_tag_map(spec)))
    Users.add(root / "users.yaml", "op", "operator", "pw")
    ep = endpoint()
    emulate = ["emulate", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--users"]
    emulate += ["users.yaml", "--allow-anonymous", "--seed", str(seed), "--speed", speed, "--paused"]
    return ep, [*emulate, "--pki", "pki-emu"]


@contextmanager
def shadow_synced_plant(root: Path, until: str) -> Iterator[tuple[str, TwinProcess]]:
    """The `mini` line (line.yaml, map.yaml, an operator) emulated at top speed and followed by `twin sync`
    in shadow mode, forecasting every 40 h for 24 h, up to ``until`` into the historian ``root/h.db``.

    Yields the emulator's endpoint and the finished sync (its JSON report on stdout) while the emulator
    still serves."""
    ep, emulate = mini_plant(root, "2000 h", seed=5, speed="max")
    with TwinProcess(emulate, root, "emu") as emu:
        emu.wait_for("emulating mini")
        sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s"]
        sync += ["--historian", "h.db", "--until", until, "--warmup", "20 h", "--shadow", "--seed", "5", "--json"]
        sync += ["--forecast-every", "40 h", "--forecast-horizon", "24 h", "--kpi-every", "0.5"]
        with TwinProcess(sync, root, "sync") as feed:
            feed.wait_for("subscribed to")
            call(ep, "urn:twin:plc:mini", "PLC", "Start", pki=root / "pki-caller")
            if feed.proc.wait(300) != 0:
                raise RuntimeError(f"twin sync failed:\n{feed.log()}")
            yield ep, feed
