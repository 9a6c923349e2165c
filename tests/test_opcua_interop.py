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
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from opcua_helpers import LINE_YAML, TwinProcess, endpoint

from connectors.opcua.packml import NODESET

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
    (root / "line.yaml").write_text(LINE_YAML)
    from connectors.opcua.security import Users

    Users.add(root / "users.yaml", "op", "operator", "pw")
    ep = endpoint()
    args = ["serve", "line.yaml", "--endpoint", ep, "--security", "none,sign,sign-encrypt", "--allow-anonymous"]
    args += ["--users", "users.yaml", "--pki", "pki", "--speed", "3600"]
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
    assert read["mini.fill.Unit1.Status.CurMachSpeed"]["type"] == "Float"
    units = read["mini.fill.Unit1.Status.MachSpeed.EngineeringUnits"]["value"]
    assert units["displayName"] == "1/min" and units["namespaceUri"].endswith("/un/cefact")
    assert read["mini.fill.Unit1.Status.MachSpeed.EURange"]["value"]["high"] > 0
    assert out["subscription"]["changes"] > 5 and out["subscription"]["clockRises"]
    assert out["history"]["status"] == "Good" and out["history"]["values"] > 5
    assert out["historyOfAProperty"] == "BadHistoryOperationUnsupported"
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
