"""The twin as an OPC-UA server: browsed, read and subscribed by a real asyncua client; operator methods; rude clients."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from asyncua import Client, ua
from opcua_helpers import LINE_YAML, endpoint, wait_until

from connectors.opcua.blocking import BackgroundServer, call_method, read_values
from connectors.opcua.server import PACKML, TwinServer, packml_state
from connectors.opcua.uabase import ClientOptions, ServerOptions
from twin.eventlog import STATES
from twin.spec.loader import spec_from_data

NS = "urn:twin:mini"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("served")
    from connectors.opcua.security import Users

    Users.add(root / "users.yaml", "op", "operator", "pw")
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    options = ServerOptions(
        endpoint=endpoint(), pki=root / "pki", users=root / "users.yaml", security=("none",), allow_anonymous=True
    )
    with BackgroundServer(lambda: TwinServer(spec, options, speed=7200.0, publish_interval=0.05)) as server:
        yield root, options.endpoint, server


def operator(root: Path, ep: str) -> ClientOptions:
    return ClientOptions(ep, pki=root / "client", security="none", user="op", password="pw")


def test_browse_the_isa95_hierarchy_by_namespace_uri(served):
    _, ep, _ = served

    async def browse() -> dict[str, list[str]]:
        async with Client(ep) as client:
            ns = await client.get_namespace_index(NS)
            names: dict[str, list[str]] = {}
            node = client.nodes.objects
            for path in ("Site", "Area", "mini", "fill", "Unit2"):
                children = {(await c.read_browse_name()).Name: c for c in await node.get_children()}
                node = children[path]
                assert node.nodeid.NamespaceIndex == ns
                names[path] = sorted([(await c.read_browse_name()).Name for c in await node.get_children()])
            names["id"] = [node.nodeid.Identifier]
            return names

    names = asyncio.run(browse())
    assert {"Start", "Pause", "Reset", "SetParameter", "KPI", "SimTime", "mix", "fill", "pack"} <= set(names["mini"])
    assert names["id"] == ["mini.fill.Unit2"]
    assert {
        "State",
        "StateCurrent",
        "Batch",
        "Product",
        "ProdProcessedCount",
        "ProdDefectiveCount",
        "CurSpeed",
        "Blocked",
        "Starved",
        "StateCurrentTime",
        "StateDurations",
        "Simulated",
    } <= set(names["Unit2"])


def test_read_states_counts_and_kpis_as_the_run_goes(served):
    root, ep, _ = served
    ids = [
        "mini.SimTime",
        "mini.fill.Unit1.State",
        "mini.fill.Unit1.StateCurrent",
        "mini.mix.Unit1.ProdProcessedCount",
        "mini.KPI.OEE",
        "mini.KPI.ThroughputPerHour",
        "mini.mix.Unit1.StateDurations.processing",
    ]
    opts = ClientOptions(ep, pki=root / "client", security="none")
    first = read_values(opts, NS, ids)
    time.sleep(1.5)
    later = wait_until(lambda: (v := read_values(opts, NS, ids)) and v[4].Value.Value > 0 and v, what="KPIs published")
    assert later[0].Value.Value > first[0].Value.Value  # simulated time moves at 2 h a second
    assert later[1].Value.Value in STATES and later[2].Value.Value == packml_state(later[1].Value.Value)
    assert later[3].Value.Value >= first[3].Value.Value and later[3].Value.Value % 500 == 0
    assert 0 < later[4].Value.Value <= 1 and later[5].Value.Value > 0
    assert all(v.StatusCode.value == ua.StatusCodes.UncertainSimulatedValue for v in later)


def test_subscription_delivers_state_changes(served):
    _, ep, _ = served

    async def subscribe() -> list[tuple[str, object]]:
        changes: list[tuple[str, object]] = []

        class Handler:
            def datachange_notification(self, node, val, data):
                changes.append((node.nodeid.Identifier, val))

        async with Client(ep) as client:
            ns = await client.get_namespace_index(NS)
            sub = await client.create_subscription(50, Handler())
            await sub.subscribe_data_change(
                [
                    client.get_node(ua.NodeId(n, ns))
                    for n in ("mini.SimTime", "mini.mix.Unit1.State", "mini.mix.Unit1.BatchesDone")
                ]
            )
            await asyncio.sleep(4)
            await sub.delete()
        return changes

    changes = asyncio.run(subscribe())
    sim_times = [v for n, v in changes if n == "mini.SimTime"]
    states = {v for n, v in changes if n == "mini.mix.Unit1.State"}
    assert len(sim_times) > 10 and sim_times == sorted(sim_times)
    assert len(states) >= 2 and states <= set(STATES)
    done = [v for n, v in changes if n == "mini.mix.Unit1.BatchesDone"]
    assert done[-1] > done[0]


def test_operator_methods_pause_start_reset_and_set_parameters(served):
    root, ep, server = served
    op = operator(root, ep)
    call_method(op, NS, "mini", "Pause")
    (t1,) = read_values(op, NS, ["mini.SimTime"])
    time.sleep(0.5)
    (t2, state) = read_values(op, NS, ["mini.SimTime", "mini.RunState"])
    assert t1.Value.Value == t2.Value.Value and state.Value.Value == "paused"
    call_method(op, NS, "mini", "Start")
    wait_until(lambda: read_values(op, NS, ["mini.SimTime"])[0].Value.Value > t2.Value.Value, what="run resumed")

    for path, value in (
        ("stations.fill.units", "0"),
        ("stations.nope.units", "2"),
        ("stations.fill.units", "two"),
        ("", "1"),
    ):
        with pytest.raises(ua.UaStatusCodeError, match="BadInvalidArgument"):
            call_method(op, NS, "mini", "SetParameter", path, value)
    message = wait_until(
        lambda: (m := read_values(op, NS, ["mini.LastMessage"])[0].Value.Value) and "refused" in m and m
    )
    assert "SetParameter" in message
    (hash_before,) = read_values(op, NS, ["mini.SpecHash"])
    (answer,) = (call_method(op, NS, "mini", "SetParameter", "stations.fill.units", "3"),)
    assert "stations.fill.units=3 applied" in answer
    assert server.spec.station("fill").units == 3 and server.overrides == ["stations.fill.units=3"]
    wait_until(lambda: read_values(op, NS, ["mini.SpecHash"])[0].Value.Value != hash_before.Value.Value)
    call_method(op, NS, "mini", "Reset")
    assert server.run_.now < 24.0


def test_packml_states_cover_every_twin_state_and_default_for_new_ones():
    assert all(packml_state(s) in range(1, 18) for s in STATES)
    assert packml_state("processing") == 6 and packml_state("starved") == 5 and packml_state(None) == 0
    assert packml_state("a_state_added_later") == 11 and set(PACKML.values()) <= set(range(1, 18))


CLIENT_THAT_VANISHES = """
import asyncio, sys
from asyncua import Client, ua
async def main():
    client = Client(sys.argv[1])
    client.set_user("op"); client.set_password("pw")
    await client.connect()
    ns = await client.get_namespace_index("urn:twin:mini")
    sub = await client.create_subscription(20, None)
    await sub.subscribe_data_change([client.get_node(ua.NodeId(f"mini.fill.Unit{u}.State", ns)) for u in (1, 2)])
    line = client.get_node(ua.NodeId("mini", ns))
    print("calling", flush=True)
    while True:
        await asyncio.gather(*[line.call_method(f"{ns}:SetParameter", "stations.pack.buffer", str(i % 3)) for i in range(20)])
asyncio.run(main())
"""


def test_the_server_survives_clients_that_vanish_mid_call(served):
    root, ep, server = served
    script = root / "vanish.py"
    script.write_text(CLIENT_THAT_VANISHES)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), ep], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout.readline().strip() == b"calling"
        time.sleep(0.3)
        proc.kill()  # gone in the middle of its calls, its subscription still open
        proc.wait()
    host, port = ep.removeprefix("opc.tcp://").split(":")
    with socket.create_connection((host, int(port))) as raw:  # half a Hello message, then gone
        raw.sendall(b"HELF\x40\x00\x00\x00\x00\x00")
    with socket.create_connection((host, int(port))) as raw:  # garbage
        raw.sendall(b"\xff" * 64)
    (t1,) = read_values(operator(root, ep), NS, ["mini.SimTime"])
    wait_until(lambda: read_values(operator(root, ep), NS, ["mini.SimTime"])[0].Value.Value > t1.Value.Value)
    call_method(operator(root, ep), NS, "mini", "Pause")
    assert not server.run_.running
    call_method(operator(root, ep), NS, "mini", "Start")


def test_twin_serve_runs_until_interrupted_and_refuses_bad_options(tmp_path: Path):
    from conftest import run_cli
    from opcua_helpers import TwinProcess

    (tmp_path / "line.yaml").write_text(LINE_YAML)
    ep = endpoint()
    common = ["--pki", "pki", "--security", "none", "--allow-anonymous"]
    with TwinProcess(["serve", "line.yaml", "--endpoint", ep, "--speed", "max", *common], tmp_path, "serve") as served:
        served.wait_for("serving mini")
        opts = ClientOptions(ep, pki=tmp_path / "c", security="none")
        wait_until(
            lambda: read_values(opts, NS, ["mini.RunState"])[0].Value.Value == "finished", what="run at max speed"
        )
        (sim_time,) = read_values(opts, NS, ["mini.SimTime"])
        assert sim_time.Value.Value == 300.0
        busy = run_cli("serve", "line.yaml", "--endpoint", ep, *common, cwd=tmp_path)  # the port is taken
        assert busy.returncode == 2 and f"cannot listen on {ep}" in busy.stderr
        assert served.stop() == 0
    for args, message in (
        (["--speed", "fast"], "--speed 'fast': expected a positive number"),
        (["--endpoint", "http://127.0.0.1:4840"], "expected opc.tcp://HOST:PORT"),
        (["--security", "sign,tls"], "--security 'sign,tls'"),
    ):
        r = run_cli("serve", "line.yaml", *common, *args, cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli("serve", "line.yaml", "--endpoint", endpoint(), "--pki", "pki", cwd=tmp_path)
    assert r.returncode == 2 and "nobody could log in" in r.stderr
