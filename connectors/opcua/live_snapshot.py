"""A snapshot of a live plant: its tags' history and current values, decoded, taken where they end.

    twin snapshot --from-live opc.tcp://plant:4840 --map tags.yaml --spec osd-tablet --out state.json
    >>> snap = live_snapshot(spec, "opc.tcp://127.0.0.1:4841", Path("tags.yaml"), security="none")

One short client session: every tag of the map is read from the server's history (HistoryRead,
where the server keeps one) and read once more for its current value. A PLC's source timestamp is
when a value last changed, so even a server without history tells since when each unit is in its
state and since when it holds its batch. The samples become the plant's event log (the same
decoding as the sync's), and the snapshot is the line's state at the latest source time.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from asyncua import Client, ua

from connectors.opcua.historian import to_us
from connectors.opcua.plantlog import plant_event_log
from connectors.opcua.tagmap import TagMap, load_tag_map
from connectors.opcua.uabase import ClientOptions, connect, namespace_index
from twin.errors import InputError
from twin.snapshot import Snapshot, snapshot_from_log
from twin.spec.model import LineSpec

_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


def live_snapshot(
    spec: LineSpec,
    endpoint: str,
    tag_map: Path,
    security: str = "sign-encrypt",
    user: str | None = None,
    password_env: str = "TWIN_OPCUA_PASSWORD",
    pki: Path | None = None,
) -> Snapshot:
    """The ``twin.snapshot_sources`` plug-in ``live``: the plant's state now."""
    tags = load_tag_map(tag_map, spec)
    options = ClientOptions(
        endpoint=endpoint,
        pki=pki or Path.home() / ".twin" / "pki" / "snapshot",
        security=security,
        user=user,
        password=os.environ.get(password_env) if user else None,
    )
    samples = asyncio.run(_read_samples(tags, options, str(tag_map)))
    if samples.empty:
        raise InputError(f"{endpoint}: none of the tags of {tag_map} has a value yet")
    origin, end = int(samples["source_us"].min()), int(samples["source_us"].max())
    decoded = plant_event_log(spec, tags, samples, origin, end, extra={"endpoint": endpoint})
    return snapshot_from_log(decoded.log, decoded.log.meta.horizon, source=f"live {endpoint}")


async def _read_samples(tags: TagMap, options: ClientOptions, source: str) -> pd.DataFrame:
    client = await connect(options, "snapshot")
    try:
        ns = await namespace_index(client, tags.namespace)
        names = list(tags.all_tags())
        nodes = [client.get_node(ua.NodeId(name, ns)) for name in names]
        current = await client.read_attributes(nodes, ua.AttributeIds.Value)
        missing = [
            n for n, dv in zip(names, current, strict=True) if dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
        ]
        if missing:
            raise InputError(f"{source}: the server has no tag(s) {', '.join(missing[:5])}")
        rows: list[tuple[str, int, object, int]] = []
        for name, node, now in zip(names, nodes, current, strict=True):
            for dv in await _history(client, node) + [now]:
                stamp = dv.SourceTimestamp or dv.ServerTimestamp
                if stamp is None or dv.Value is None:
                    continue
                rows.append((name, to_us(stamp), dv.Value.Value, int(dv.StatusCode.value)))
    finally:
        await client.disconnect()
    frame = pd.DataFrame(rows, columns=["tag", "source_us", "value", "status"])
    frame = frame.drop_duplicates(subset=["tag", "source_us", "status"], keep="last")  # history ends with "now"
    frame["seq"] = range(len(frame))
    return frame


async def _history(client: Client, node: object) -> list[ua.DataValue]:
    try:
        return await node.read_raw_history(_EPOCH, None, 0, return_bounds=False)  # type: ignore[attr-defined]
    except ua.UaError:
        return []  # a server without history: the current value alone
