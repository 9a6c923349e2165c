"""Tag maps from a browse: find the PackML machines a server exposes and write the map ``twin sync`` reads.

    twin opcua discover opc.tcp://127.0.0.1:4840 --out tags.yaml --security none

    >>> data, notes = await discover(client)      # tag-map data (``tagmap.parse_tag_map`` reads it) and notes

Where it looks: every object of a PackML type (``PackMLBaseObjectType`` or a subtype) organized under
``Objects/PackMLObjects`` (OPC 30050, 6.2), or, when a server has no such folder, found by browsing
``Objects``. A machine becomes a unit of the station that holds it (its parent object); the station's
parent is the line. For each unit, the tags:

- ``state``: the unit's ``State`` (the twin's own state names, string codes) if it has one, else a
  PackTags-style ``StateCurrent`` (a PackML state number), else
  ``BaseStateMachine/MachineState/ExecuteState/CurrentState/Number``; PackML numbers are read as
  twin states through ``packml.PACKML_TO_TWIN`` (Held is read as ``down``, Suspended as ``starved``:
  PackML does not say more);
- ``done`` (finished batches, required by the sync): ``BatchesDone``;
- ``count`` (good units): ``ProdProcessedCount`` when it is an integer variable of the unit;
- counters wrap where their data type does (UInt32 at 2**32, Int64 at 2**63, ...);
- ``batch`` and ``product``: ``Batch`` and ``Product`` when present.

A machine without a batch counter or with numeric node ids is left out, and the notes say why; a
server where nothing is left is an ``InputError`` (exit 2). Tags must be string node ids in one
namespace, the map's ``namespace``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from asyncua import Client, ua

from connectors.opcua.packml import PACKML_TO_TWIN, PACKML_URI
from twin.errors import InputError

EXECUTE_NUMBER = ("BaseStateMachine", "MachineState", "ExecuteState", "CurrentState", "Number")


async def _children(node: Any) -> dict[str, Any]:
    out = {}
    for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
        out[(await child.read_browse_name()).Name] = child
    return out


async def _is_packml(node: Any, packml_types: set[ua.NodeId]) -> bool:
    try:
        return await node.read_type_definition() in packml_types
    except ua.UaError:
        return False


async def _packml_types(client: Client, ns: int) -> set[ua.NodeId]:
    """PackMLBaseObjectType and its subtypes on the server."""
    base = None
    for child in await client.nodes.base_object_type.get_children(refs=ua.ObjectIds.HasSubtype):
        if await child.read_browse_name() == ua.QualifiedName("PackMLBaseObjectType", ns):
            base = child
    if base is None:
        return set()
    found, todo = {base.nodeid}, [base]
    while todo:
        for child in await todo.pop().get_children(refs=ua.ObjectIds.HasSubtype):
            found.add(child.nodeid)
            todo.append(child)
    return found


async def _machines(client: Client, ns: int, types: set[ua.NodeId], limit: int = 20000) -> list[Any]:
    objects = await _children(client.nodes.objects)
    folder = next((n for name, n in objects.items() if name == "PackMLObjects"), None)
    if folder is not None and (await folder.read_browse_name()).NamespaceIndex == ns:
        machines = [n for n in await folder.get_children(refs=ua.ObjectIds.Organizes)]
        if machines:
            return machines
    seen: set[ua.NodeId] = set()
    out, todo = [], deque([client.nodes.objects])  # breadth first: machines in the order the server lists them
    while todo and len(seen) < limit:
        node = todo.popleft()
        objects_only = ua.NodeClass.Object
        for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences, nodeclassmask=objects_only):
            if child.nodeid in seen or child.nodeid.NamespaceIndex == 0:
                continue
            seen.add(child.nodeid)
            if await _is_packml(child, types):
                out.append(child)
            else:
                todo.append(child)
    return out


async def _parent(node: Any) -> Any | None:
    """The object that holds ``node`` (HasComponent, else Organizes from anything but PackMLObjects)."""
    refs = await node.get_references(refs=ua.ObjectIds.HasComponent, direction=ua.BrowseDirection.Inverse)
    if not refs:
        refs = [
            r
            for r in await node.get_references(refs=ua.ObjectIds.Organizes, direction=ua.BrowseDirection.Inverse)
            if r.BrowseName.Name != "PackMLObjects"
        ]
    return type(node)(node.session, refs[0].NodeId) if refs else None


async def _descend(node: Any, path: tuple[str, ...]) -> Any | None:
    for name in path:
        children = await _children(node)
        if name not in children:
            return None
        node = children[name]
    return node


def _string_id(node: Any, ns: int | None) -> str | None:
    nid = node.nodeid
    if nid.NodeIdType != ua.NodeIdType.String or (ns is not None and nid.NamespaceIndex != ns):
        return None
    return str(nid.Identifier)


async def discover(client: Client) -> tuple[dict[str, Any], list[str]]:
    """Tag-map data for the PackML machines of a connected server, and notes on what was left out."""
    array = await client.get_namespace_array()
    if PACKML_URI not in array:
        raise InputError(f"the server has no PackML namespace ({PACKML_URI}); nothing to discover")
    packml_ns = array.index(PACKML_URI)
    types = await _packml_types(client, packml_ns)
    notes: list[str] = []
    stations: dict[str, list[dict[str, Any]]] = {}
    line_names: set[str] = set()
    ns: int | None = None
    uses_names = False
    for machine in await _machines(client, packml_ns, types):
        name = (await machine.read_browse_name()).Name
        kids = await _children(machine)
        station = await _parent(machine)
        if station is None:
            notes.append(f"{name}: no parent object (a station) found; left out")
            continue
        station_name = (await station.read_browse_name()).Name
        done = kids.get("BatchesDone")
        if done is None:
            notes.append(f"{station_name}/{name}: no batch counter (BatchesDone); left out")
            continue
        ns = done.nodeid.NamespaceIndex if ns is None else ns  # the tags' namespace (the machine may be elsewhere)
        if done.nodeid.NamespaceIndex != ns or _string_id(done, ns) is None:
            notes.append(f"{station_name}/{name}: its tags are not string node ids in {array[ns]}; left out")
            continue
        if "State" in kids:
            state, uses_names = kids["State"], True
        else:
            state = kids.get("StateCurrent") or await _descend(machine, EXECUTE_NUMBER)
        if state is None or _string_id(state, ns) is None:
            notes.append(f"{station_name}/{name}: no state variable with a string node id; left out")
            continue
        unit: dict[str, Any] = {"state": _string_id(state, ns)}
        for role, child in (("batch", "Batch"), ("product", "Product")):
            if child in kids and _string_id(kids[child], ns):
                unit[role] = _string_id(kids[child], ns)
        count = kids.get("ProdProcessedCount")
        if count is not None and _string_id(count, ns) and await _wrap(count):
            unit["count"] = {"tag": _string_id(count, ns), "wrap": await _wrap(count)}
        unit["done"] = {"tag": _string_id(done, ns), "wrap": await _wrap(done)}
        stations.setdefault(station_name, []).append(unit)
        line = await _parent(station)
        if line is not None:
            line_names.add((await line.read_browse_name()).Name)
    if not stations:
        why = "; ".join(notes) if notes else "no PackML machines found"
        raise InputError(f"no unit could be mapped: {why}")
    if uses_names:
        states: dict[Any, Any] = {"": None} | {s: s for s in _twin_states()}
    else:
        states = {0: None} | dict(sorted(PACKML_TO_TWIN.items()))
    assert ns is not None
    data: dict[str, Any] = {"namespace": array[ns]}
    if len(line_names) == 1:
        data["line"] = next(iter(line_names))
    data["states"] = states
    data["stations"] = stations
    return data, notes


_WRAPS = {
    ua.ObjectIds.UInt16: 2**16,
    ua.ObjectIds.Int16: 2**15,
    ua.ObjectIds.UInt32: 2**32,
    ua.ObjectIds.Int32: 2**31,
    ua.ObjectIds.UInt64: 2**64,
    ua.ObjectIds.Int64: 2**63,
}


async def _wrap(counter: Any) -> int | None:
    """Where an integer counter wraps, from its data type (None: not an integer counter)."""
    dtype = await counter.read_data_type()
    return _WRAPS.get(dtype.Identifier) if dtype.NamespaceIndex == 0 else None


def _twin_states() -> tuple[str, ...]:
    from twin.eventlog import STATES

    return STATES
