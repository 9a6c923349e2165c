"""Interop with a second, independent OPC UA stack: node-opcua (npm, pinned in tests/interop/package-lock.json).

Its client browses the PackML types and machines of a real `twin serve` process, reads, subscribes,
reads history, calls methods and is refused where it should be, with every security mode; it imports
the NodeSet2 that `twin opcua nodeset` writes; and its server plays a PackML PLC that `twin opcua
discover` maps and `twin sync` records. `make test` installs node-opcua (`npm ci` in tests/interop);
the tests are skipped, saying why, where node or the package is missing.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from opcua_helpers import LINE_YAML, TwinProcess, endpoint
from test_opcua_packml import QUALITY

from connectors.opcua.packml import NODESET
from connectors.opcua.tagmap import load_tag_map
from twin.spec.loader import spec_from_data

INTEROP = Path(__file__).parent / "interop"
NODE = shutil.which("node")
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node (Node.js) is not installed: the node-opcua interop tests need it"),
    pytest.mark.skipif(
        not (INTEROP / "node_modules" / "node-opcua").is_dir(),
        reason="node-opcua is not installed: run `npm ci` in tests/interop (make test does)",
    ),
]


def node(script: str, args: dict, timeout: float = 120) -> dict:
    """Run a node-opcua script; its last stdout line is a JSON object (node-opcua prints notices before it)."""
    result = subprocess.run(
        [NODE, script, json.dumps(args)], cwd=INTEROP, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{script} printed no result (rc {result.returncode}):\n{result.stdout}\n{result.stderr}"
    out = json.loads(lines[-1])
    assert "error" not in out, out["error"]
    return out


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory):
    """`twin serve` of the mini line with every security mode, an operator and anonymous access."""
    root = tmp_path_factory.mktemp("interop")
    (root / "line.yaml").write_text(LINE_YAML + QUALITY)  # hold times and QC: every kind of alarm
    from connectors.opcua.security import Users

    Users.add(root / "users.yaml", "op", "operator", "pw")
    ep = endpoint()
    args = ["serve", "line.yaml", "--endpoint", ep, "--security", "none,sign,sign-encrypt", "--allow-anonymous"]
    args += ["--users", "users.yaml", "--pki", "pki", "--speed", "36000", "--horizon", "100000 h"]  # 10 h a second
    with TwinProcess(args, root, "serve") as proc:
        proc.wait_for("serving mini")
        yield root, ep
        proc.stop()


def client_args(root: Path, ep: str, mode: str, **extra: object) -> dict:
    return {
        "endpoint": ep,
        "mode": mode,
        "pki": str(root / f"node-pki-{mode}"),
        "namespace": "urn:twin:mini",
        "line": "mini",
        "unit": "mini.fill.Unit1",
        "serverCert": str(root / "pki" / "own" / "cert.der"),
        "seconds": 2,
        **extra,
    }


def test_a_client_that_sends_its_certificate_with_policy_none_is_served_read_only(serving):
    root, ep = serving
    out = node("client.js", client_args(root, ep, "None"))  # anonymous, and node-opcua sends its certificate
    assert out["connect"] == "ok" and out["session"] == "ok"
    assert {"PackMLBaseObjectType", "PackMLStatusObjectType", "PackMLAdminObjectType"} <= set(out["packmlObjectTypes"])
    ids = [m["id"] for m in out["machines"]]
    assert ids == ["mini.PackML", "mini.mix.Unit1", "mini.fill.Unit1", "mini.fill.Unit2", "mini.pack.Unit1"]
    assert {m["type"] for m in out["machines"]} == {f"ns={out['namespaces']['packml']};i=6"}  # PackMLBaseObjectType
    read = out["read"]
    state = read["mini.fill.Unit1.BaseStateMachine.MachineState.ExecuteState.CurrentState"]
    assert state["type"] == "LocalizedText" and state["status"] == "UncertainSimulatedValue"
    assert read["mini.fill.Unit1.ProdProcessedCount"]["type"] == "UInt32"
    (count,) = read["mini.fill.Unit1.Admin.ProdProcessedCount"]["value"]  # PackMLCountDataType, decoded by node-opcua
    assert count["name"] == "ProdProcessedCount" and count["count"] == count["accCount"] >= 0
    assert read["mini.fill.Unit1.Status.CurMachSpeed"]["type"] == "Float"
    units = read["mini.fill.Unit1.Status.MachSpeed.EngineeringUnits"]["value"]
    assert units["displayName"] == "1/min" and units["namespaceUri"].endswith("/un/cefact")
    assert read["mini.fill.Unit1.Status.MachSpeed.EURange"]["value"]["high"] > 0
    assert out["subscription"]["changes"] > 5 and out["subscription"]["clockRises"]
    assert out["history"]["status"] == "Good" and out["history"]["values"] > 5
    assert out["historyOfAProperty"] == "BadHistoryOperationUnsupported"
    assert out["events"]["count"] > 0 and "QcOutOfSpecification" in out["events"]["conditions"]
    assert set(out["events"]["severities"]) <= {700, 800, 900}
    assert set(out["calls"].values()) == {"BadUserAccessDenied"} and out["write"] == "BadUserAccessDenied"


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
def test_secured_modes_refuse_an_untrusted_client_then_serve_the_operator_once_trusted(serving, mode):
    root, ep = serving
    first = node("client.js", client_args(root, ep, mode, user="op", password="pw"))
    assert "BadCertificateUntrusted" in first["session"]
    trusted = run_cli("opcua", "trust", str(root / "pki"), first["clientCertificate"])
    assert trusted.returncode == 0, trusted.stderr
    wrong = node("client.js", client_args(root, ep, mode, user="op", password="not-the-password"))
    assert wrong["session"].startswith("refused") and "Bad" in wrong["session"]
    out = node("client.js", client_args(root, ep, mode, user="op", password="pw"))
    assert out["session"] == "ok"
    assert out["calls"] == {
        "pause": "Good",
        "start": "Good",
        "setParameter": "BadInvalidArgument",  # an unknown station: refused, the run goes on
        "packmlSetMachSpeed": "BadNotSupported",  # PackML unit commands: the twin's line methods instead
    }
    assert out["write"] == "BadUserAccessDenied"  # nothing is written from outside, operators included
    assert out["subscription"]["clockRises"] and out["history"]["values"] > 5


def test_node_opcua_imports_the_nodeset2_export(tmp_path: Path):
    (tmp_path / "line.yaml").write_text(LINE_YAML)
    result = run_cli("opcua", "nodeset", str(tmp_path / "line.yaml"), "--out", str(tmp_path / "mini.xml"))
    assert result.returncode == 0, result.stderr
    out = node(
        "import_nodeset.js",
        {"files": [str(NODESET), str(tmp_path / "mini.xml")], "namespace": "urn:twin:mini", "unit": "mini.fill.Unit2"},
    )
    assert out["found"] and out["browseName"] == "Unit2" and out["typeDefinition"] == "PackMLBaseObjectType"
    assert {"Admin", "Status", "BaseStateMachine", "SetUnitMode", "SetMachSpeed", "SetProduct", "SetParameter"} <= set(
        out["children"]
    )
    assert out["machSpeedType"] == "AnalogItemType" and out["euRangeHigh"] == pytest.approx(1000 / 1.8 / 60)


# ------------------------------------------------------------------------------------------ node-opcua as the PLC

PLC_LINE = """\
name: plc
time_unit: h
horizon: 1 h
warmup: 0 h
products:
  - {name: A, batch_size: 1000}
stations:
  - {name: mix, process_time: 1.5 s}
  - {name: fill, units: 2, process_time: 1.5 s}
  - {name: pack, process_time: 1.5 s}
"""
"""The line the node-opcua PLC plays: one product (the PLC has no product tag), two parallel fill units."""


class Plc:
    """plc.js in the background: a node-opcua server with PackML machines and continuously rising counters."""

    def __init__(
        self, root: Path, port: int, ticks: int, resume: bool, name: str, go: Path | None = None, organize: bool = True
    ):
        self.out = root / f"{name}.out"
        args = {
            "port": port,
            "line": "plc",
            "stations": [["mix", 1], ["fill", 2], ["pack", 1]],
            "batchSeconds": 1.4,
            "batchSize": 1000,
            "state": str(root / "plc-state.json"),
            "resume": str(root / "plc-state.json") if resume else None,
            "ticks": ticks,
            "go": str(go) if go else None,
            "organize": organize,
        }
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen([NODE, "plc.js", json.dumps(args)], cwd=INTEROP, stdout=out, stderr=out)
        self.wait_for("ready")

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(text) or text in line for line in self.lines()):
                return
            assert self.proc.poll() is None, "\n".join(self.lines())
            time.sleep(0.1)
        raise AssertionError(f"plc.js: no {text!r} within {timeout} s")

    def sent(self) -> dict[str, int]:
        results = [json.loads(line) for line in self.lines() if line.startswith('{"sent"')]
        return results[-1]["sent"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def stored(historian: Path) -> dict[str, int]:
    from connectors.opcua.historian import Historian

    h = Historian(historian, readonly=True)
    try:
        tags = h.tags()
        return dict(zip(tags["name"], tags["samples"], strict=True))
    finally:
        h.close()


@pytest.mark.slow
def test_a_node_opcua_plc_is_discovered_and_synced_and_a_restart_costs_values(tmp_path: Path):
    """Changes stored vs sent with node-opcua as the PLC: all of them while it runs, fewer across a restart
    (the PLC keeps no history to fetch them from). The figures go to docs/opcua-packml.md."""
    (tmp_path / "plc.yaml").write_text(PLC_LINE)
    port = int(endpoint().rsplit(":", 1)[1])
    ep = f"opc.tcp://127.0.0.1:{port}"
    pki = ["--pki", str(tmp_path / "pki")]
    plc = Plc(tmp_path, port, ticks=75, resume=False, name="plc1", go=tmp_path / "go1")  # 15 s of changes
    try:
        found = run_cli("opcua", "discover", ep, "--out", str(tmp_path / "tags.yaml"), "--security", "none", *pki)
        assert found.returncode == 0, found.stderr
        tags = load_tag_map(tmp_path / "tags.yaml", spec_from_data(yaml.safe_load(PLC_LINE), "plc.yaml"))
        _s, _u, unit = tags.units()[0]
        assert unit.state == "plc.mix.U1.StateCurrent" and unit.product is None  # PackML state numbers, no product
        assert unit.count is not None and unit.count.wrap == 2**32 and unit.done.wrap == 2**32  # from UInt32
        args = ["sync", "plc.yaml", "--map", "tags.yaml", "--endpoint", ep, "--security", "none", *pki]
        with TwinProcess([*args, "--historian", "run1.db", "--json"], tmp_path, "sync1") as sync:
            sync.wait_for("subscribed to 16 tags")
            (tmp_path / "go1").touch()
            plc.wait_for('"done":true')
            time.sleep(1.0)  # the last notifications are on their way
            sync.stop()
        sent_whole, stored_whole = plc.sent(), stored(tmp_path / "run1.db")
    finally:
        plc.stop()

    # the same run, restarted in the middle: the PLC goes down and comes back with its retentive counters
    plc = Plc(tmp_path, port, ticks=40, resume=False, name="plc2", go=tmp_path / "go2")
    try:
        with TwinProcess([*args, "--historian", "run2.db", "--json"], tmp_path, "sync2") as sync:
            sync.wait_for("subscribed to 16 tags")
            (tmp_path / "go2").touch()
            plc.wait_for('"done":true')
            plc.stop()
            first = plc.sent()
            plc = Plc(tmp_path, port, ticks=35, resume=True, name="plc3")
            plc.wait_for('"done":true')
            sync.wait_for("reconnected", timeout=120)
            time.sleep(1.0)
            sync.stop()
        second = plc.sent()
    finally:
        plc.stop()
    stored_restart = stored(tmp_path / "run2.db")
    sent_restart = {t: first.get(t, 0) + second.get(t, 0) for t in set(first) | set(second)}

    assert set(stored_whole) == set(sent_whole) and len(sent_whole) == 16
    assert stored_whole == sent_whole  # every change the PLC made, stored once
    total_sent, total_stored = sum(sent_restart.values()), sum(stored_restart.values())
    assert sum(first.values()) < total_stored <= total_sent  # it stored again after the restart; what the PLC
    # made while the sync was away is lost (the PLC keeps no history): the figure is `lost` below
    report = {
        "run": {"sent": sum(sent_whole.values()), "stored": sum(stored_whole.values())},
        "restart": {"sent": total_sent, "stored": total_stored, "lost": total_sent - total_stored},
    }
    print(json.dumps(report))


def test_discover_finds_packml_machines_by_browsing_when_a_server_does_not_organize_them(tmp_path: Path):
    port = int(endpoint().rsplit(":", 1)[1])
    plc = Plc(tmp_path, port, ticks=1, resume=False, name="plc", go=tmp_path / "never", organize=False)
    try:
        out = tmp_path / "tags.yaml"
        found = run_cli(
            "opcua", "discover", f"opc.tcp://127.0.0.1:{port}", "--out", str(out), "--security", "none",
            "--pki", str(tmp_path / "pki"),
        )  # fmt: skip
    finally:
        plc.stop()
    assert found.returncode == 0, found.stderr
    tags = load_tag_map(out, spec_from_data(yaml.safe_load(PLC_LINE), "plc.yaml"))
    assert [(s, u) for s, u, _t in tags.units()] == [("mix", 0), ("fill", 0), ("fill", 1), ("pack", 0)]
