"""A PLC that keeps no history (a plain asyncua server on loopback) restarts under `PlantSync`: the values it
lost are counted and named in the gap, the sync reconnects by itself, and the plant's KPIs go on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asyncua import Server, ua
from opcua_helpers import endpoint

from connectors.opcua.historian import Historian
from connectors.opcua.sync import PlantSync, SyncOptions
from connectors.opcua.tagmap import parse_tag_map
from connectors.opcua.uabase import ClientOptions
from twin.spec.model import LineSpec

SPEC = LineSpec.from_dict(
    {
        "name": "solo",
        "horizon": 10.0,
        "products": [{"name": "A", "batch_size": 10}],
        "stations": [{"name": "f", "process_time": 1.0}],
    }
)
MAP = {
    "namespace": "urn:solo-plc",
    "states": {1: "processing", 4: "starved"},
    "heartbeat": {"tag": "BEAT", "wrap": 65536},
    "stations": {"f": [{"state": "ST", "done": {"tag": "DONE", "wrap": 65536}}]},
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Plc:
    """A PLC without history: three tags, written with the plant's own source times."""

    def __init__(self, ep: str):
        self.ep, self.server, self.nodes = ep, Server(), {}

    async def start(self, values: dict[str, int], at: datetime) -> None:
        await self.server.init()
        self.server.set_endpoint(self.ep)
        self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await self.server.register_namespace(MAP["namespace"])
        types = {"BEAT": ua.VariantType.UInt16, "DONE": ua.VariantType.UInt16, "ST": ua.VariantType.Int16}
        for tag, vtype in types.items():
            self.nodes[tag] = await self.server.nodes.objects.add_variable(
                ua.NodeId(tag, ns), tag, ua.Variant(values[tag], vtype)
            )
        await self.write(values, at)
        await self.server.start()

    async def write(self, values: dict[str, int], at: datetime) -> None:
        for tag, value in values.items():
            node = self.nodes[tag]
            vtype = await node.read_data_type_as_variant_type()
            dv = ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=at, ServerTimestamp=at)
            await self.server.write_attribute_value(node.nodeid, dv)

    async def stop(self) -> None:
        await self.server.stop()


async def _until(check, what: str, limit: float = 120.0) -> None:
    for _ in range(int(limit / 0.05)):  # a cap only a hang reaches
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what}")


def test_a_plc_without_history_restarting_counts_the_values_lost(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    tags = parse_tag_map(MAP, "map", SPEC)
    ep = endpoint()

    async def scenario() -> tuple:
        plc = Plc(ep)
        await plc.start({"BEAT": 0, "DONE": 0, "ST": 1}, T0)
        client = ClientOptions(ep, pki=tmp_path / "pki", security="none")
        sync = PlantSync(SPEC, tags, SyncOptions(client, tmp_path / "h.db", kpi_every=0.2, publishing_ms=20))
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        await _until(lambda: sync.state == "connected", "connection")
        for beat in (1, 2, 3):
            await plc.write({"BEAT": beat}, T0 + timedelta(seconds=beat))
        await plc.write({"DONE": 1}, T0 + timedelta(seconds=3, microseconds=1))
        await _until(lambda: sync.stats.received >= 7, "values before the restart")
        await plc.stop()  # the PLC restarts: while it is away it counts on, and keeps no history
        await _until(lambda: sync.state == "reconnecting", "the loss noticed")
        plc = Plc(ep)
        await plc.start({"BEAT": 13, "DONE": 3, "ST": 4}, T0 + timedelta(seconds=13))
        await _until(lambda: sync.stats.reconnects == 1, "a reconnection")
        await plc.write({"BEAT": 14}, T0 + timedelta(seconds=14))
        await _until(lambda: sync.stats.received >= 11, "values after the restart")
        stop.set()
        result = await task
        await plc.stop()
        return result

    result = asyncio.run(scenario())
    assert result.stats.lost == 9 + 1  # beats 4..12, and the second finished batch
    h = Historian(tmp_path / "h.db", readonly=True)
    reasons = h.gaps()["reason"].tolist()
    view = h.view()
    h.close()
    assert reasons == ["connection lost (10 values lost: the server keeps no history)"]
    assert view["lost"] == 10 and view["reconnects"] == 1
    assert result.decoded.missed == {"DONE": 1}  # the decoder sees the same jump: one finish it never saw
    assert (result.decoded.log.table["event"] == "finish").sum() == 2
    tries = [line for line in caplog.text.splitlines() if "reconnect failed" in line]
    assert all("next try in" in line for line in tries) and (not tries or "next try in 0.25 s" in tries[0])
