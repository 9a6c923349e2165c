"""PackML (OPC 30050) in `twin serve`: the published NodeSet, mandatory children, state machines, units and
ranges, HistoryRead, alarms with acknowledge, the NodeSet2 export and tag maps from a browse.

Every test talks to a real asyncua server running a real paced SimPy run, through a real client."""

from __future__ import annotations

import asyncio
import hashlib
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from asyncua import Client, Server, ua
from conftest import run_cli
from opcua_helpers import LINE_YAML, endpoint, wait_until

from connectors.opcua.blocking import BackgroundServer
from connectors.opcua.packml import (
    ANALOG,
    MACHINES,
    NODESET,
    NODESET_SHA256,
    PACKML_URI,
    STATE_NUMBERS,
    TWIN_TO_PACKML,
    UNECE_URI,
    missing_mandatory,
    unece_unit_id,
)
from connectors.opcua.server import TwinServer
from connectors.opcua.tagmap import default_tag_map, dump_tag_map, load_tag_map
from connectors.opcua.uabase import ServerOptions
from twin.eventlog import STATES
from twin.spec.loader import spec_from_data

NS = "urn:twin:mini"
QUALITY = """
hold_times:
  - {from: mix, to: fill, max: 1 h, action: scrap}
qc:
  analysts: 1
  test_time: 2 h
  oos_probability: 0.3
  oos_action: investigate
  investigation: 5 h
"""
"""Hold-time violations and QC results out of specification within the first simulated day."""


def mini_spec(extra: str = ""):
    return spec_from_data(yaml.safe_load(LINE_YAML + extra), "line.yaml")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("packml")
    from connectors.opcua.security import Users

    Users.add(root / "users.yaml", "op", "operator", "pw")
    options = ServerOptions(
        endpoint=endpoint(), pki=root / "pki", users=root / "users.yaml", security=("none",), allow_anonymous=True
    )
    spec = mini_spec(QUALITY)
    (root / "line.yaml").write_text(LINE_YAML + QUALITY)
    make = lambda: TwinServer(spec, options, speed=3600.0, publish_interval=0.05, history_depth=40)  # noqa: E731
    with BackgroundServer(make) as server:
        yield root, options.endpoint, server


def run(coro):
    return asyncio.run(coro)


def operator_client(ep: str) -> Client:
    """A client that logs in as the operator of the ``served`` fixture (over SecurityPolicy None)."""
    client = Client(ep)
    client.set_user("op")
    client.set_password("pw")
    return client


async def find_type(root, name: ua.QualifiedName):
    """A subtype of ``root`` at any depth, by browse name."""
    todo = [root]
    while todo:
        for child in await todo.pop().get_children(refs=ua.ObjectIds.HasSubtype):
            if await child.read_browse_name() == name:
                return child
            todo.append(child)
    raise AssertionError(f"no type {name.to_string()}")


async def _packml_type(client: Client) -> tuple[int, object]:
    pns = await client.get_namespace_index(PACKML_URI)
    for child in await client.nodes.base_object_type.get_children(refs=ua.ObjectIds.HasSubtype):
        if await child.read_browse_name() == ua.QualifiedName("PackMLBaseObjectType", pns):
            return pns, child
    raise AssertionError("PackMLBaseObjectType not served")


# ------------------------------------------------------------------------------------------ the NodeSet


def test_the_nodeset_is_the_published_file_and_its_state_numbers_are_the_twins():
    assert hashlib.sha256(NODESET.read_bytes()).hexdigest() == NODESET_SHA256
    assert "Permission is hereby granted, free of charge" in (NODESET.parent / "LICENSE.txt").read_text()
    assert "a2d4ae8b337ff9f014878fc88f9b6acda0ff3674" in (NODESET.parent / "SOURCE.md").read_text()

    async def numbers() -> dict[str, int]:
        server = Server()
        await server.init()
        await server.import_xml(str(NODESET))
        pns = await server.get_namespace_index(PACKML_URI)
        out: dict[str, int] = {}
        for type_name, _path, _states in MACHINES:
            type_node = await find_type(server.nodes.base_object_type, ua.QualifiedName(type_name, pns))
            for child in await type_node.get_children(refs=ua.ObjectIds.HasComponent):
                if await child.read_type_definition() == ua.NodeId(ua.ObjectIds.StateType):
                    number = await child.get_child("0:StateNumber")
                    out[(await child.read_browse_name()).Name] = await number.read_value()
        return out

    served_numbers = run(numbers())
    assert {k: v for k, v in served_numbers.items() if k in STATE_NUMBERS} == STATE_NUMBERS
    assert set(TWIN_TO_PACKML) == set(STATES)  # every twin state has its PackML state
    assert TWIN_TO_PACKML["down"] == "Held" and "Aborted" not in TWIN_TO_PACKML.values()


def test_unece_unit_ids_follow_opc_10000_8():
    assert unece_unit_id("C62") == 4404786  # "one", the example of OPC 10000-8, 5.6.3
    assert unece_unit_id("HUR") == (ord("H") << 16) | (ord("U") << 8) | ord("R")


# ------------------------------------------------------------------------------------------ the served model


def test_every_unit_and_the_line_are_packml_machines_with_every_mandatory_child(served):
    _, ep, _ = served

    async def check() -> tuple[list[str], dict[str, list[str]], list[str]]:
        async with Client(ep) as client:
            pns, base_type = await _packml_type(client)
            folder = await client.nodes.objects.get_child(f"{pns}:PackMLObjects")
            machines = await folder.get_children(refs=ua.ObjectIds.Organizes)
            ids = [m.nodeid.Identifier for m in machines]
            missing = {}
            for m in machines:
                assert await m.read_type_definition() == base_type.nodeid
                missing[m.nodeid.Identifier] = await missing_mandatory(m, base_type)
            ns = await client.get_namespace_index(NS)
            path = [f"{ns}:{p}" for p in ("Site", "Area", "mini", "fill", "Unit2")]
            unit2 = await client.nodes.objects.get_child(path)
            return ids, missing, [unit2.nodeid.Identifier]

    ids, missing, by_path = run(check())
    assert ids == ["mini.PackML", "mini.mix.Unit1", "mini.fill.Unit1", "mini.fill.Unit2", "mini.pack.Unit1"]
    assert missing == {i: [] for i in ids}  # Admin, Status (speeds, modes), the three state machines, methods
    assert by_path == ["mini.fill.Unit2"]  # the ISA-95 hierarchy stays: Site/Area/line/station/unit


def test_an_instance_without_a_mandatory_child_is_caught():
    async def check() -> list[str]:
        server = Server()
        await server.init()
        await server.import_xml(str(NODESET))
        pns = await server.get_namespace_index(PACKML_URI)
        base = None
        for node in await server.nodes.base_object_type.get_children(refs=ua.ObjectIds.HasSubtype):
            if await node.read_browse_name() == ua.QualifiedName("PackMLBaseObjectType", pns):
                base = node
        ns = await server.register_namespace("urn:test")
        fake = await server.nodes.objects.add_object(ua.NodeId("fake", ns), "fake", objecttype=base.nodeid)
        return await missing_mandatory(fake, base)

    assert run(check()) == []  # add_object with a type makes its mandatory children; take two away below

    async def without_status() -> tuple[int, list[str]]:
        server = Server()
        await server.init()
        await server.import_xml(str(NODESET))
        pns = await server.get_namespace_index(PACKML_URI)
        base = await find_type(server.nodes.base_object_type, ua.QualifiedName("PackMLBaseObjectType", pns))
        ns = await server.register_namespace("urn:test")
        fake = await server.nodes.objects.add_object(ua.NodeId("fake", ns), "fake", objecttype=base.nodeid)
        await (await fake.get_child(f"{pns}:Status")).delete()
        cur = await fake.get_child([f"{pns}:BaseStateMachine", f"{pns}:MachineState", "0:CurrentState"])
        await (await cur.get_child("0:Id")).delete()
        return pns, await missing_mandatory(fake, base)

    pns, missing = run(without_status())
    assert sorted(missing) == [f"{pns}:BaseStateMachine/{pns}:MachineState/0:CurrentState/0:Id", f"{pns}:Status"]


def test_state_machines_follow_the_twin_state_and_offer_the_transitions_that_leave_it(served):
    _root, ep, server = served
    units = ["mini.mix.Unit1", "mini.fill.Unit1", "mini.fill.Unit2", "mini.pack.Unit1"]
    execute = "BaseStateMachine.MachineState.ExecuteState"

    async def read() -> dict[str, object]:
        async with operator_client(ep) as client:
            ns = await client.get_namespace_index(NS)
            await client.load_data_type_definitions()  # PackMLCountDataType, from the server's own definitions
            await client.get_node(ua.NodeId("mini", ns)).call_method(f"{ns}:Pause")
            names = []
            for u in units:
                names += [
                    f"{u}.State",
                    f"{u}.StateCurrent",
                    f"{u}.{execute}.CurrentState",
                    f"{u}.{execute}.CurrentState.Number",
                    f"{u}.{execute}.CurrentState.Id",
                    f"{u}.{execute}.AvailableTransitions",
                    f"{u}.BaseStateMachine.MachineState.CurrentState",
                    f"{u}.BaseStateMachine.CurrentState",
                    f"{u}.Status.EquipmentBlocked",
                    f"{u}.Status.EquipmentStarved",
                    f"{u}.Status.UnitModeCurrent",
                    f"{u}.Admin.ProdProcessedCount",
                    f"{u}.ProdProcessedCount",
                ]
            names += ["mini.PackML.BaseStateMachine.MachineState.ExecuteState.CurrentState", "mini.RunState"]
            await asyncio.sleep(0.3)  # a publish after the pause: every value is of the same instant
            values = await client.read_values([client.get_node(ua.NodeId(n, ns)) for n in names])
            out = dict(zip(names, values, strict=True))
            for u in units:  # the transitions offered leave the current state, by the NodeSet's FromState
                for t in out[f"{u}.{execute}.AvailableTransitions"]:
                    (src,) = await client.get_node(t).get_referenced_nodes(
                        ua.ObjectIds.FromState, ua.BrowseDirection.Forward
                    )
                    assert src.nodeid == out[f"{u}.{execute}.CurrentState.Id"]
            await client.get_node(ua.NodeId("mini", ns)).call_method(f"{ns}:Start")
            return out

    wait_until(lambda: server.run_.now > 5, what="the run has states")
    out = run(read())
    assert out["mini.RunState"] == "paused"
    assert out["mini.PackML.BaseStateMachine.MachineState.ExecuteState.CurrentState"].Text == "Held"
    for u in units:
        state = out[f"{u}.State"]
        packml = TWIN_TO_PACKML[state]
        number = STATE_NUMBERS[packml]
        assert out[f"{u}.StateCurrent"] == number
        if packml == "Stopped":
            assert out[f"{u}.BaseStateMachine.MachineState.CurrentState"].Text == "Stopped"
        else:
            assert out[f"{u}.{execute}.CurrentState"].Text == packml
            assert out[f"{u}.{execute}.CurrentState.Number"] == number
            assert out[f"{u}.BaseStateMachine.MachineState.CurrentState"].Text == "Running"
            assert out[f"{u}.{execute}.AvailableTransitions"]  # every execute state can be left
        assert out[f"{u}.BaseStateMachine.CurrentState"].Text == "Cleared"  # never Aborted: no emergency stop
        assert out[f"{u}.Status.EquipmentBlocked"] == (state == "blocked")
        assert out[f"{u}.Status.EquipmentStarved"] == (state == "starved")
        assert out[f"{u}.Status.UnitModeCurrent"] == 1  # Produce
        (count,) = out[f"{u}.Admin.ProdProcessedCount"]  # PackML's own count: Int32, wraps at 2**31
        assert count.Name == "ProdProcessedCount" and count.Count == count.AccCount == out[f"{u}.ProdProcessedCount"]
        assert count.Unit.DisplayName.Text == "1"


def test_every_analog_value_has_unece_units_and_a_range_and_counters_are_integers(served):
    _, ep, _server = served

    async def walk() -> tuple[list[tuple[str, str, float, float, str]], dict[str, ua.NodeId]]:
        async with Client(ep) as client:
            ns = await client.get_namespace_index(NS)
            analog: list[tuple[str, str, float, float, str]] = []
            types: dict[str, ua.NodeId] = {}
            todo = [client.get_node(ua.NodeId("Site", ns))]
            while todo:
                node = todo.pop()
                for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                    if child.nodeid.NamespaceIndex != ns:
                        continue
                    todo.append(child)
                    if await child.read_node_class() != ua.NodeClass.Variable:
                        continue
                    dtype = await child.read_data_type()
                    types[child.nodeid.Identifier] = dtype
                    if dtype not in (ua.NodeId(ua.ObjectIds.Double), ua.NodeId(ua.ObjectIds.Float)):
                        continue
                    props = {(await p.read_browse_name()).Name: p for p in await child.get_properties()}
                    assert "EngineeringUnits" in props and "EURange" in props, child.nodeid.Identifier
                    eu = await props["EngineeringUnits"].read_value()
                    rng = await props["EURange"].read_value()
                    analog.append((child.nodeid.Identifier, eu.NamespaceUri, rng.Low, rng.High, eu.DisplayName.Text))
            return analog, types

    analog, types = run(walk())
    assert len(analog) > 60  # line, KPIs, stations, units and their state durations, PackML speeds
    for node_id, uri, low, high, _symbol in analog:
        assert uri == UNECE_URI and 0 <= low <= high, node_id
    symbols = {node_id.rsplit(".", 1)[-1]: symbol for node_id, _u, _l, _h, symbol in analog}
    assert symbols["CurMachSpeed"] == symbols["CurSpeed"] == "1/min"  # PackML speeds are per minute
    assert symbols["OEE"] == "1" and symbols["SimTime"] == "h"
    assert all(name in ANALOG for name in symbols if name not in STATES)
    for name in ("ProdProcessedCount", "ProdDefectiveCount"):
        assert types[f"mini.mix.Unit1.{name}"] == ua.NodeId(ua.ObjectIds.UInt32)
    speeds = {n: high for n, _u, _low, high, _s in analog if n.endswith(".Status.MachSpeed")}
    assert speeds["mini.fill.Unit1.Status.MachSpeed"] == pytest.approx(1000 / 1.8 / 60)  # A: 1000 in 1.8 h


# ------------------------------------------------------------------------------------------ history


def test_history_read_serves_the_kept_values_and_refuses_what_it_does_not_keep(served):
    _, ep, server = served
    wait_until(lambda: len(server.history._values[server._vars["mini.SimTime"].node]) >= 40, what="40 values kept")

    async def read() -> dict[str, object]:
        async with Client(ep) as client:
            ns = await client.get_namespace_index(NS)
            sim = client.get_node(ua.NodeId("mini.SimTime", ns))
            start = datetime.now(UTC) - timedelta(hours=1)
            everything = await sim.read_raw_history(start, datetime.now(UTC) + timedelta(minutes=1))
            backwards = await sim.read_raw_history(None, datetime.now(UTC) + timedelta(minutes=1), numvalues=3)
            details = ua.ReadRawModifiedDetails(
                IsReadModified=False, StartTime=start, EndTime=datetime.now(UTC), NumValuesPerNode=5
            )
            page = await sim.history_read(details)
            again = await sim.history_read(details, continuation_point=page.ContinuationPoint)
            refused = {}
            simulated = client.get_node(ua.NodeId("mini.Simulated", ns))
            refused["property"] = (await simulated.history_read(details)).StatusCode
            processed = ua.ReadProcessedDetails(StartTime=start, EndTime=datetime.now(UTC), ProcessingInterval=1000.0)
            refused["processed"] = (await sim.history_read(processed)).StatusCode
            bogus = await sim.history_read(details, continuation_point=b"xyz")
            refused["continuation"] = bogus.StatusCode
            historizing = await sim.read_attribute(ua.AttributeIds.Historizing)
            level = await sim.read_attribute(ua.AttributeIds.AccessLevel)
            return {
                "all": everything,
                "back": backwards,
                "page": page,
                "again": again,
                "refused": refused,
                "historizing": historizing.Value.Value,
                "level": level.Value.Value,
            }

    out = run(read())
    values = [dv.Value.Value for dv in out["all"]]
    assert 2 <= len(values) <= 40 and values == sorted(values)  # bounded by --history-depth, oldest first
    back = [dv.Value.Value for dv in out["back"]]
    assert len(back) == 3 and back == sorted(back, reverse=True)
    first = [dv.Value.Value for dv in out["page"].HistoryData.DataValues]
    second = [dv.Value.Value for dv in out["again"].HistoryData.DataValues]
    assert len(first) == 5 and out["page"].ContinuationPoint and second and second[0] > first[-1]
    for what, status in out["refused"].items():
        expected = "BadContinuationPointInvalid" if what == "continuation" else "BadHistoryOperationUnsupported"
        assert status.name == expected, what
    assert out["historizing"] is True and out["level"] & ua.AccessLevel.HistoryRead.mask


# ------------------------------------------------------------------------------------------ alarms


def test_alarms_for_equipment_down_hold_time_and_qc_oos_with_acknowledge(served):
    _, ep, _server = served

    async def scenario() -> dict[str, object]:
        events: list[object] = []

        class Handler:
            def event_notification(self, event):
                events.append(event)

        async with operator_client(ep) as client:
            sub = await client.create_subscription(50, Handler())
            alarm_type = client.get_node(ua.ObjectIds.AlarmConditionType)
            await sub.subscribe_events(client.nodes.server, alarm_type)
            deadline = time.monotonic() + 120
            names = {"EquipmentDown", "HoldTimeViolation", "QcOutOfSpecification"}
            while time.monotonic() < deadline and not names <= {e.ConditionName for e in events}:
                await asyncio.sleep(0.2)
            kinds = {e.ConditionName for e in events}
            target = next(e for e in reversed(events) if e.ConditionName == "EquipmentDown")
            condition = target.NodeId if hasattr(target, "NodeId") else None
            cond_node = client.get_node(condition)
            ack = client.get_node(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
            results = {}
            try:
                await cond_node.call_method(ack, b"not-an-event-id", ua.LocalizedText("wrong id"))
            except ua.UaStatusCodeError as err:
                results["wrong"] = type(err).__name__
            fresh = next(e for e in reversed(events) if getattr(e, "NodeId", None) == condition)
            acked_before = fresh.AckedState.Text if hasattr(fresh.AckedState, "Text") else fresh.AckedState
            await cond_node.call_method(ack, fresh.EventId, ua.LocalizedText("seen by the test"))
            try:
                await cond_node.call_method(ack, fresh.EventId, ua.LocalizedText("again"))
            except ua.UaStatusCodeError as err:
                results["again"] = type(err).__name__
            await asyncio.sleep(0.5)
            acked = [
                e for e in events if getattr(e, "NodeId", None) == condition and "acknowledged" in str(e.Message.Text)
            ]
            await sub.delete()
            return {
                "kinds": kinds,
                "results": results,
                "acked_before": acked_before,
                "acked": acked,
                "severities": {e.ConditionName: e.Severity for e in events},
                "sources": {e.ConditionName: e.SourceName for e in events},
            }

    out = run(scenario())
    assert out["kinds"] == {"EquipmentDown", "HoldTimeViolation", "QcOutOfSpecification"}
    assert out["results"] == {"wrong": "BadEventIdUnknown", "again": "BadConditionBranchAlreadyAcked"}
    assert out["acked"] and out["acked"][-1].Comment.Text == "seen by the test"
    assert out["severities"]["QcOutOfSpecification"] > out["severities"]["EquipmentDown"]
    assert out["sources"]["QcOutOfSpecification"] == "mini" and out["sources"]["HoldTimeViolation"] == "fill"


def test_an_anonymous_client_cannot_acknowledge(served):
    _, ep, server = served
    wait_until(lambda: server.alarms.conditions, what="a condition")
    condition = next(iter(server.alarms.conditions.values()))

    async def try_ack() -> str:
        async with Client(ep) as client:
            node = client.get_node(condition.node_id)
            ack = client.get_node(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
            try:
                await node.call_method(ack, condition.event_id, ua.LocalizedText("anonymous"))
            except ua.UaStatusCodeError as err:
                return type(err).__name__
            return "accepted"

    assert run(try_ack()) == "BadUserAccessDenied"


# ------------------------------------------------------------------------------------------ NodeSet2 export


def test_nodeset_export_is_imported_by_a_fresh_server_with_every_mandatory_child(tmp_path: Path):
    (tmp_path / "line.yaml").write_text(LINE_YAML)
    result = run_cli("opcua", "nodeset", str(tmp_path / "line.yaml"), "--out", str(tmp_path / "mini.xml"))
    assert result.returncode == 0, result.stderr
    root = ET.parse(tmp_path / "mini.xml").getroot()
    ua_ns = "{http://opcfoundation.org/UA/2011/03/UANodeSet.xsd}"
    required = [m.get("ModelUri") for m in root.iterfind(f"{ua_ns}Models/{ua_ns}Model/{ua_ns}RequiredModel")]
    assert required == ["http://opcfoundation.org/UA/", PACKML_URI]

    async def reimport() -> tuple[list[str], str, float]:
        server = Server()
        await server.init()
        await server.import_xml(str(NODESET))
        await server.import_xml(str(tmp_path / "mini.xml"))
        pns = await server.get_namespace_index(PACKML_URI)
        ns = await server.get_namespace_index(NS)
        base = await find_type(server.nodes.base_object_type, ua.QualifiedName("PackMLBaseObjectType", pns))
        unit = server.get_node(ua.NodeId("mini.fill.Unit2", ns))
        name = (await unit.read_browse_name()).Name
        rng = await server.get_node(ua.NodeId("mini.fill.Unit2.Status.MachSpeed.EURange", ns)).read_value()
        return await missing_mandatory(unit, base), name, rng.High

    missing, name, high = run(reimport())
    assert missing == [] and name == "Unit2" and high == pytest.approx(1000 / 1.8 / 60)


def test_nodeset_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    (tmp_path / "line.yaml").write_text(LINE_YAML)
    result = run_cli("opcua", "nodeset", str(tmp_path / "line.yaml"), "--out", str(tmp_path))
    assert result.returncode == 2 and "is a folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("opcua", "nodeset", str(tmp_path / "nothing.yaml"), "--out", str(tmp_path / "x.xml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "x.xml").exists()


# ------------------------------------------------------------------------------------------ discover


def test_discover_writes_the_tag_map_the_sync_accepts_unchanged(served, tmp_path: Path):
    _root, ep, _ = served
    out = tmp_path / "tags.yaml"
    result = run_cli("opcua", "discover", ep, "--out", str(out), "--security", "none", "--pki", str(tmp_path / "c"))
    assert result.returncode == 0, result.stderr
    assert "4 units in 3 stations" in result.stdout
    tags = load_tag_map(out, mini_spec(QUALITY))  # the sync's own parser and its checks against the spec
    assert [(s, u) for s, u, _t in tags.units()] == [("mix", 0), ("fill", 0), ("fill", 1), ("pack", 0)]
    _s, _u, fill2 = tags.units()[2]
    assert fill2.state == "mini.fill.Unit2.State" and fill2.done.tag == "mini.fill.Unit2.BatchesDone"
    assert fill2.count is not None and fill2.count.wrap == 2**32
    assert tags.namespace == NS and tags.line == "mini"
    assert {tags.states[s] for s in STATES} == set(STATES)


def test_discover_refusals_are_one_line_and_exit_2(tmp_path: Path):
    unreachable = f"opc.tcp://127.0.0.1:{endpoint().rsplit(':', 1)[1]}"
    pki = ["--pki", str(tmp_path / "pki")]
    result = run_cli("opcua", "discover", unreachable, "--out", str(tmp_path / "t.yaml"), "--security", "none", *pki)
    assert result.returncode == 2 and "cannot reach" in result.stderr and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line] == [result.stderr.strip().splitlines()[-1]]
    assert not (tmp_path / "t.yaml").exists()
    result = run_cli("opcua", "discover", "http://x", "--out", str(tmp_path / "t.yaml"))
    assert result.returncode == 2 and "opc.tcp://HOST:PORT" in result.stderr


# ------------------------------------------------------------------------------------------ certificate refusals


def test_a_sync_whose_certificate_the_server_refuses_says_so_in_one_line_and_exits_2(tmp_path: Path):
    from connectors.opcua.security import Pki, Users

    Users.add(tmp_path / "users.yaml", "op", "operator", "pw")
    (tmp_path / "line.yaml").write_text(LINE_YAML)
    options = ServerOptions(endpoint=endpoint(), pki=tmp_path / "pki", users=tmp_path / "users.yaml")  # secured
    client_pki = tmp_path / "client"
    Pki(client_pki).ensure("urn:twin:sync:test", "twin sync", server=False)  # made before: its notice is not the point
    Pki(tmp_path / "pki").ensure("urn:twin:serve:test", "twin serve", server=True)
    # the sync trusts the server, the server does not trust the sync
    run_cli("opcua", "trust", str(client_pki), str(tmp_path / "pki" / "own" / "cert.der"))
    tags, plc_map = tmp_path / "tags.yaml", tmp_path / "plc.yaml"
    plc_map.write_text(dump_tag_map(default_tag_map(mini_spec())))
    with BackgroundServer(lambda: TwinServer(mini_spec(), options, speed=3600.0)):
        discovered = run_cli(
            "opcua", "discover", options.endpoint, "--out", str(tags), "--pki", str(client_pki), "--user", "op"
        )
        sync = run_cli(
            "sync", str(tmp_path / "line.yaml"), "--endpoint", options.endpoint, "--map", str(plc_map),
            "--pki", str(client_pki), "--historian", str(tmp_path / "h.db"), "--until", "10 h",
        )  # fmt: skip
    for result in (discovered, sync):
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "BadCertificateUntrusted" in lines[0], lines
        assert str(client_pki / "own" / "cert.der") in lines[0]
    assert not tags.exists()
