"""PackML (OPC 30050, ISA-TR88.00.02) in the twin's OPC-UA server: the published NodeSet, states and units.

    >>> types = await load_packml(server)                  # import_xml of the OPC Foundation's NodeSet2
    >>> node = await types.instantiate(parent, "line.press.Unit1", "Unit1", ns)   # a PackMLBaseObjectType
    >>> types.state_values("line.press.Unit1", "Held")     # {node id: value} of the three state machines

A twin unit is a PackML machine: an instance of ``PackMLBaseObjectType`` with its mandatory children
(``Admin``, ``Status``, ``BaseStateMachine/MachineState/ExecuteState`` and the methods). The twin's
states map to PackML states in ``TWIN_TO_PACKML``: an equipment fault is *Held* (an internal cause),
waiting on a neighbour is *Suspended* (an external cause), *Aborted* is never published because the
twin models no emergency stop (Aborted is left only by an explicit Clear). States and transitions of
the state machines (their node ids, which transition leaves which state) are read from the NodeSet.

Engineering units are UNECE codes (OPC 10000-8, 5.6.3) in ``ANALOG``; every analog variable of the
twin carries ``EngineeringUnits`` and ``EURange``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.instantiate_util import instantiate

NODESET = Path(__file__).parent / "nodesets" / "Opc.Ua.PackML.NodeSet2.xml"
NODESET_SHA256 = "79016b1468d3288da36fca3604ad5439ebae7fdfca87e4f8def2aa1999e49adf"
PACKML_URI = "http://opcfoundation.org/UA/PackML/"
UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"

# OPC 30050 state numbers (checked against the NodeSet's StateNumber values by the tests).
STATE_NUMBERS: dict[str, int] = {
    "Clearing": 1, "Stopped": 2, "Starting": 3, "Idle": 4, "Suspended": 5, "Execute": 6, "Stopping": 7,
    "Aborting": 8, "Aborted": 9, "Holding": 10, "Held": 11, "Unholding": 12, "Suspending": 13,
    "Unsuspending": 14, "Resetting": 15, "Completing": 16, "Complete": 17,
}  # fmt: skip

TWIN_TO_PACKML: dict[str, str] = {
    "processing": "Execute",
    "setup": "Held",  # a changeover: an internal, planned stop
    "cleaning": "Held",
    "down": "Held",  # an equipment fault (PackML: Held; Aborted is for an emergency stop)
    "starved": "Suspended",  # waiting on upstream: an external cause
    "blocked": "Suspended",  # waiting on downstream
    "waiting_cleaning": "Suspended",
    "waiting_operator": "Suspended",
    "idle": "Idle",  # no work planned
    "off_shift": "Stopped",
}
PACKML_DEFAULT = "Held"  # a state the twin adds later: not producing for a reason of the unit's own

UNIT_MODE_PRODUCE = 1  # ProductionMaintenanceModeEnum: 0 Invalid, 1 Produce, 2 Maintenance, 3 Manual

# The state machine of each level: the PackML type, its browse path below the PackML object, its states.
MACHINES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("PackMLBaseStateMachineType", "BaseStateMachine", ("Aborting", "Aborted", "Cleared")),
    ("PackMLMachineStateMachineType", "BaseStateMachine.MachineState", ("Clearing", "Stopped", "Stopping", "Running")),
    (
        "PackMLExecuteStateMachineType",
        "BaseStateMachine.MachineState.ExecuteState",
        ("Idle", "Starting", "Execute", "Completing", "Complete", "Resetting", "Holding", "Held", "Unholding",
         "Suspending", "Suspended", "Unsuspending"),
    ),
)  # fmt: skip


def packml_name(state: str | None) -> str | None:
    """The PackML state of a twin state (None before the unit's first state)."""
    if state is None:
        return None
    return TWIN_TO_PACKML.get(state, PACKML_DEFAULT)


def packml_state(state: str | None) -> int:
    """The PackML state number of a twin state (0 = Undefined before the first state)."""
    name = packml_name(state)
    return 0 if name is None else STATE_NUMBERS[name]


PACKML = {state: STATE_NUMBERS[name] for state, name in TWIN_TO_PACKML.items()}
"""Twin state -> PackML state number."""

_READ_AS = {"Held": "down", "Suspended": "starved", "Aborted": "down", "Complete": "idle"}
PACKML_TO_TWIN: dict[int, str | None] = {
    number: _READ_AS.get(name) or next((s for s, n in TWIN_TO_PACKML.items() if n == name), None)
    for name, number in STATE_NUMBERS.items()
}
"""PackML state number -> the twin state a plant's unit in it is read as (None: a transient state, no information).

Several twin states share a PackML state (a fault, a changeover and a cleaning are all Held); a plant
that publishes only PackML states is read with the most common cause: Held as down, Suspended as starved."""


def path_of(state: str) -> tuple[str | None, str | None, str | None]:
    """The current state of the base, machine and execute state machines while a unit is in PackML ``state``."""
    if state in ("Aborting", "Aborted"):
        return state, None, None
    if state in ("Clearing", "Stopped", "Stopping"):
        return "Cleared", state, None
    return "Cleared", "Running", state


# ------------------------------------------------------------------------------------------ engineering units


def unece_unit_id(code: str) -> int:
    """The EUInformation UnitId of a UNECE common code (OPC 10000-8, 5.6.3)."""
    out = 0
    for c in code.strip():
        out = (out << 8) | ord(c)
    return out


@dataclass(frozen=True)
class Unit:
    """An engineering unit: UNECE common code, symbol and description."""

    code: str
    symbol: str
    description: str

    def eu_information(self) -> ua.EUInformation:
        return ua.EUInformation(
            NamespaceUri=UNECE_URI,
            UnitId=unece_unit_id(self.code),
            DisplayName=ua.LocalizedText(self.symbol),
            Description=ua.LocalizedText(self.description),
        )


HOUR = Unit("HUR", "h", "hour (simulated time)")
ONE = Unit("C62", "1", "one (a fraction from 0 to 1, or a count)")
PER_MINUTE = Unit("C94", "1/min", "reciprocal minute (units per minute)")
PER_HOUR = Unit("H10", "1/h", "reciprocal hour (per hour)")

ANALOG: dict[str, tuple[Unit, str]] = {
    # twin variable name -> (unit, what its EURange is)
    "SimTime": (HOUR, "horizon"),
    "ThroughputPerHour": (PER_HOUR, "line_batches_per_hour"),
    "UnitsPerHour": (PER_HOUR, "line_units_per_hour"),
    "OEE": (ONE, "fraction"),
    "Utilization": (ONE, "fraction"),
    "WIP": (ONE, "wip"),
    "LeadTimeHours": (HOUR, "horizon"),
    "WindowHours": (HOUR, "horizon"),
    "CurSpeed": (PER_MINUTE, "unit_speed"),
    "MachSpeed": (PER_MINUTE, "unit_speed"),
    "CurMachSpeed": (PER_MINUTE, "unit_speed"),
    "MachDesignSpeed": (PER_MINUTE, "unit_speed"),
    "StateCurrentTime": (HOUR, "horizon"),
    "StateDuration": (HOUR, "horizon"),
}
"""Every analog variable the twin serves: its engineering unit and the name of its range (see ``Ranges``)."""

COUNTER_WRAP = 2**32
"""Integer counters (ProdProcessedCount, ProdDefectiveCount as UInt32) wrap to 0 after 2**32 - 1."""

PACKML_COUNT_WRAP = 2**31
"""PackML's Admin counts (PackMLCountDataType.Count and AccCount are Int32) wrap to 0 after 2**31 - 1."""

ADMIN_COUNTS = {"ProdProcessedCount": 1, "ProdDefectiveCount": 2}
"""The Admin counts the twin publishes, with their PackML ID (units made; units lost to scrap and rejects)."""


def count_value(name: str, units: float) -> list[Any]:
    """The value of an Admin count: one PackMLCountDataType (Count = AccCount: the twin never resets them)."""
    n = int(units) % PACKML_COUNT_WRAP
    count = ua.PackMLCountDataType(  # made by import_xml from the NodeSet's DataTypeDefinition
        ID=ADMIN_COUNTS[name], Name=name, Unit=ONE.eu_information(), Count=n, AccCount=n
    )
    return [count]


@dataclass(frozen=True)
class Ranges:
    """The EURange of each kind of analog value of one line (bounded by construction)."""

    horizon: float
    line_batches_per_hour: float
    line_units_per_hour: float
    wip: float
    unit_speed: dict[tuple[str, int], float] = field(default_factory=dict)  # units per minute, per unit

    def get(self, kind: str, unit: tuple[str, int] | None = None) -> ua.Range:
        if kind == "fraction":
            return ua.Range(0.0, 1.0)
        if kind == "unit_speed":
            return ua.Range(0.0, self.unit_speed.get(unit, 0.0) if unit else max(self.unit_speed.values(), default=0.0))
        return ua.Range(0.0, float(getattr(self, kind)))


def line_ranges(line: Any, horizon: float) -> Ranges:
    """EURanges of a compiled line: speeds from its ideal times, rates from its fastest possible release."""
    speed: dict[tuple[str, int], float] = {}
    batches_per_hour = float("inf")
    for station in line.stations:
        per_unit = [size / ideal for size, ideal in zip(line.batch_sizes, station.ideal, strict=True) if ideal > 0]
        fastest = max(per_unit, default=0.0)  # units per hour of the fastest product
        for u in range(station.units):
            speed[(station.name, u)] = fastest / 60.0
        quickest = min((i for i in station.ideal if i > 0), default=0.0)
        if quickest > 0:
            batches_per_hour = min(batches_per_hour, station.units / quickest)
    if batches_per_hour == float("inf"):
        batches_per_hour = 0.0
    return Ranges(
        horizon=max(horizon, 0.0),
        line_batches_per_hour=batches_per_hour,
        line_units_per_hour=batches_per_hour * max(line.batch_sizes, default=0.0),
        wip=_wip_range(line, horizon, batches_per_hour),
        unit_speed=speed,
    )


def _wip_range(line: Any, horizon: float, batches_per_hour: float) -> float:
    """Batches in the line in normal operation: its units and buffer places; with an unlimited buffer, what
    the line can pass in the horizon besides (an EURange is the range expected, OPC 10000-8, 5.6.2)."""
    places = sum(s.units for s in line.stations) + sum(s.buffer for s in line.stations if math.isfinite(s.buffer))
    if all(math.isfinite(s.buffer) for s in line.stations):
        return float(places)
    return float(places + batches_per_hour * max(horizon, 0.0))


async def add_analog(
    server: Server, parent: Any, node_id: ua.NodeId, name: ua.QualifiedName, initial: float, unit: Unit, rng: ua.Range
) -> Any:
    """A Double ``AnalogItemType`` variable with its ``EURange`` and ``EngineeringUnits`` properties."""
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name.Name)
    attrs.Value = ua.Variant(float(initial), ua.VariantType.Double)
    attrs.DataType = ua.NodeId(ua.ObjectIds.Double)
    attrs.ValueRank = -1
    attrs.AccessLevel = attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
    item = ua.AddNodesItem(
        ParentNodeId=parent.nodeid,
        ReferenceTypeId=ua.NodeId(ua.ObjectIds.HasComponent),
        RequestedNewNodeId=node_id,
        BrowseName=name,
        NodeClass=ua.NodeClass.Variable,
        TypeDefinition=ua.NodeId(ua.ObjectIds.AnalogItemType),
        NodeAttributes=attrs,
    )
    (result,) = await server.iserver.isession.add_nodes([item])
    result.StatusCode.check()
    node = server.get_node(result.AddedNodeId)
    await set_eu(node, unit, rng)
    return node


async def set_eu(node: Any, unit: Unit, rng: ua.Range) -> None:
    """Give an analog variable its ``EURange`` and ``EngineeringUnits`` (replacing a null value left by a type)."""
    children = {(await c.read_browse_name()).Name: c for c in await node.get_properties()}
    for name, value, vtype in (
        ("EURange", rng, ua.VariantType.ExtensionObject),
        ("EngineeringUnits", unit.eu_information(), ua.VariantType.ExtensionObject),
    ):
        if name in children:
            await children[name].write_value(ua.Variant(value, vtype))
        else:
            nid = ua.NodeId(f"{node.nodeid.Identifier}.{name}", node.nodeid.NamespaceIndex)
            datatype = ua.NodeId(ua.ObjectIds.Range if name == "EURange" else ua.ObjectIds.EUInformation)
            prop = await node.add_property(nid, ua.QualifiedName(name, 0), ua.Variant(value, vtype), datatype=datatype)
            await prop.write_value(ua.Variant(value, vtype))


# ------------------------------------------------------------------------------------------ the NodeSet


@dataclass
class Machine:
    """One PackML state machine type as the NodeSet defines it."""

    path: str  # below the PackML object, dotted
    states: dict[str, ua.NodeId]  # state name -> the state's node in the type
    leaving: dict[str, list[ua.NodeId]]  # state name -> transitions that leave it


class PackMLTypes:
    """The PackML NodeSet loaded into a server: type nodes, state nodes, transitions."""

    def __init__(
        self,
        server: Server,
        ns: int,
        machines: list[Machine],
        base_type: ua.NodeId,
        mode_enum: ua.NodeId,
        count_type: ua.NodeId,
    ):
        self.server, self.ns, self.machines, self.base_type = server, ns, machines, base_type
        self.mode_enum = mode_enum  # the enumeration of the unit modes a unit supports (UnitSupportedModes)
        self.count_type = count_type  # PackMLCountDataType

    async def add_counts(self, node_id: str, ns: int) -> list[str]:
        """``Admin/ProdProcessedCount`` and ``Admin/ProdDefectiveCount`` (arrays of PackMLCountDataType);
        their node ids."""
        admin = self.server.get_node(ua.NodeId(f"{node_id}.Admin", ns))
        out = []
        for name in ADMIN_COUNTS:
            nid = ua.NodeId(f"{node_id}.Admin.{name}", ns)
            initial = ua.Variant(count_value(name, 0), ua.VariantType.ExtensionObject)
            await admin.add_variable(nid, ua.QualifiedName(name, self.ns), initial, datatype=self.count_type)
            out.append(nid.Identifier)
        return out

    async def instantiate(self, parent: Any, node_id: str, name: str, ns: int) -> Any:
        """A ``PackMLBaseObjectType`` object below ``parent`` (mandatory children; child ids ``<node_id>.<path>``)."""
        nid, *_ = await instantiate(
            parent,
            self.server.get_node(self.base_type),
            nodeid=ua.NodeId(node_id, ns),
            bname=ua.QualifiedName(name, ns),
            instantiate_optional=False,
        )
        node = self.server.get_node(nid)
        for machine in self.machines:
            base = f"{node_id}.{machine.path}"
            await self.server.write_attribute_value(
                ua.NodeId(f"{base}.AvailableStates", ns),
                ua.DataValue(ua.Variant(list(machine.states.values()), ua.VariantType.NodeId)),
            )
            current = self.server.get_node(ua.NodeId(f"{base}.CurrentState", ns))
            await current.add_property(
                ua.NodeId(f"{base}.CurrentState.Number", ns),
                ua.QualifiedName("Number", 0),
                ua.Variant(0, ua.VariantType.UInt32),
                datatype=ua.NodeId(ua.ObjectIds.UInt32),
            )
        await self.server.write_attribute_value(
            ua.NodeId(f"{node_id}.Status.UnitModeCurrent", ns),
            ua.DataValue(ua.Variant(UNIT_MODE_PRODUCE, ua.VariantType.Int32)),
        )
        await self.server.write_attribute_value(
            ua.NodeId(f"{node_id}.Status.UnitSupportedModes", ns),
            ua.DataValue(ua.Variant(self.mode_enum, ua.VariantType.NodeId)),
        )
        return node

    def state_values(self, node_id: str, state: str | None) -> dict[str, tuple[Any, ua.VariantType]]:
        """node id -> (value, type) of the three state machines' CurrentState, Id, Number, AvailableTransitions."""
        levels = path_of(state) if state is not None else (None, None, None)
        out: dict[str, tuple[Any, ua.VariantType]] = {}
        for machine, current in zip(self.machines, levels, strict=True):
            base = f"{node_id}.{machine.path}"
            out[f"{base}.CurrentState"] = (ua.LocalizedText(current or ""), ua.VariantType.LocalizedText)
            out[f"{base}.CurrentState.Id"] = (machine.states.get(current, ua.NodeId()), ua.VariantType.NodeId)
            out[f"{base}.CurrentState.Number"] = (STATE_NUMBERS.get(current or "", 0), ua.VariantType.UInt32)
            out[f"{base}.AvailableTransitions"] = (list(machine.leaving.get(current or "", [])), ua.VariantType.NodeId)
        return out


async def load_packml(server: Server) -> PackMLTypes:
    """Import the PackML NodeSet into ``server`` (once) and read its state machines."""
    array = await server.get_namespace_array()
    if PACKML_URI not in array:
        await server.import_xml(str(NODESET))
    ns = await server.get_namespace_index(PACKML_URI)
    types = server.nodes.base_object_type
    machines = []
    for type_name, path, names in MACHINES:
        type_node = await _find_type(server, types, ua.QualifiedName(type_name, ns))
        states: dict[str, ua.NodeId] = {}
        leaving: dict[str, list[ua.NodeId]] = {}
        for child in await _all_components(type_node):
            bname = (await child.read_browse_name()).Name
            typedef = await child.read_type_definition()
            if typedef in (ua.NodeId(ua.ObjectIds.StateType), ua.NodeId(ua.ObjectIds.InitialStateType)):
                states[bname] = child.nodeid
            elif typedef == ua.NodeId(ua.ObjectIds.TransitionType):
                (source,) = await child.get_referenced_nodes(ua.ObjectIds.FromState, ua.BrowseDirection.Forward)
                leaving.setdefault(str(source.nodeid), []).append(child.nodeid)
        by_id = {str(v): k for k, v in states.items()}
        machines.append(
            Machine(
                path=path,
                states={n: states[n] for n in names if n in states}
                | {n: v for n, v in states.items() if n not in names},
                leaving={by_id.get(k, k): v for k, v in leaving.items()},
            )
        )
    base = await _find_type(server, types, ua.QualifiedName("PackMLBaseObjectType", ns))
    modes = await _find_type(
        server, server.get_node(ua.ObjectIds.Enumeration), ua.QualifiedName("ProductionMaintenanceModeEnum", ns)
    )
    count = await _find_type(
        server, server.get_node(ua.ObjectIds.Structure), ua.QualifiedName("PackMLCountDataType", ns)
    )
    return PackMLTypes(server, ns, machines, base.nodeid, modes.nodeid, count.nodeid)


async def _all_components(type_node: Any) -> list[Any]:
    """Components of a type, its supertypes' included (Cleared, Running, ... live on the base types)."""
    out = []
    node = type_node
    while node is not None and node.nodeid != ua.NodeId(ua.ObjectIds.BaseObjectType):
        out.extend(await node.get_children(refs=ua.ObjectIds.HasComponent))
        parents = await node.get_referenced_nodes(ua.ObjectIds.HasSubtype, ua.BrowseDirection.Inverse)
        node = parents[0] if parents else None
    return out


async def _find_type(server: Server, root: Any, name: ua.QualifiedName) -> Any:
    """A subtype of ``root`` (at any depth) by browse name."""
    todo = [root]
    while todo:
        node = todo.pop()
        for child in await node.get_children(refs=ua.ObjectIds.HasSubtype):
            if await child.read_browse_name() == name:
                return child
            todo.append(child)
    raise LookupError(f"no type {name.to_string()} in the PackML NodeSet")


# ------------------------------------------------------------------------------------------ conformance


async def missing_mandatory(instance: Any, declaration: Any, path: str = "", depth: int = 8) -> list[str]:
    """Browse paths of the mandatory children that ``instance`` lacks, per ``declaration`` (its type, or the
    instance declaration it was made from), recursively; works on a client's nodes or a server's."""
    missing: list[str] = []
    have: dict[str, Any] = {}
    for child in await instance.get_children(refs=ua.ObjectIds.HierarchicalReferences):
        have[(await child.read_browse_name()).to_string()] = child
    for decl in await _mandatory_declarations(declaration):
        name = (await decl.read_browse_name()).to_string()
        child = have.get(name)
        where = f"{path}/{name}" if path else name
        if child is None:
            missing.append(where)
        elif depth > 0 and await decl.read_node_class() in (ua.NodeClass.Object, ua.NodeClass.Variable):
            missing.extend(await missing_mandatory(child, decl, where, depth - 1))
    return missing


async def _mandatory_declarations(declaration: Any) -> list[Any]:
    """The mandatory children a declaration asks for: its own, its type's and its supertypes' (by browse name)."""
    sources = [declaration]
    if await declaration.read_node_class() not in (ua.NodeClass.ObjectType, ua.NodeClass.VariableType):
        typedef = await declaration.read_type_definition()
        if typedef is not None and not typedef.is_null():
            sources.append(_node_like(declaration, typedef))
    found: dict[str, Any] = {}
    for source in sources:
        node = source
        while node is not None:
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                rules = await child.get_referenced_nodes(ua.ObjectIds.HasModellingRule, ua.BrowseDirection.Forward)
                if any(r.nodeid == ua.NodeId(ua.ObjectIds.ModellingRule_Mandatory) for r in rules):
                    found.setdefault((await child.read_browse_name()).to_string(), child)
            if await node.read_node_class() not in (ua.NodeClass.ObjectType, ua.NodeClass.VariableType):
                break
            parents = await node.get_referenced_nodes(ua.ObjectIds.HasSubtype, ua.BrowseDirection.Inverse)
            node = parents[0] if parents else None
    return list(found.values())


def _node_like(node: Any, node_id: ua.NodeId) -> Any:
    """A node of the same server (or client session) as ``node``."""
    return type(node)(node.session, node_id)
