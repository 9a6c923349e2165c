"""Alarms and conditions of the twin's OPC-UA server (OPC 10000-9): equipment down, hold time, QC OOS.

    >>> alarms = Alarms("osd-tablet")
    >>> await alarms.install(server, ns)        # Acknowledge and ConditionRefresh answered
    >>> await alarms.apply(rows)                # event-log rows as the run makes them

Each condition is an ``AlarmConditionType`` instance (made when it first fires) below its source,
with node id ``<source>.<kind>``; its events are reported through the ``Server`` object, where alarm
clients subscribe, with ``SourceNode`` the unit, station or line. ``KINDS`` lists what raises them:

- ``EquipmentDown`` (a unit): active while the unit is ``down``, severity 700;
- ``HoldTimeViolation`` (a station): a batch waited longer than its hold time (``hold_violation``),
  active for the instant it happens, severity 800;
- ``QcOutOfSpecification`` (the line): a QC result out of specification, active while its
  investigation lasts (``investigation`` to ``investigation_end``) or, for a rejected batch
  (``reject``), for the instant it happens, severity 900.

A condition is retained (``Retain`` true, sent again on ``ConditionRefresh``) while it is active or
not acknowledged. ``Acknowledge(EventId, Comment)`` is called on the condition (method
``AcknowledgeableConditionType.Acknowledge`` or the instance's own) with the EventId of one of its events
since it last became active (else ``BadEventIdUnknown``); a second acknowledgement is
``BadConditionBranchAlreadyAcked``.
Any role may acknowledge except anonymous clients (read-only, refused by the server's role check).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from asyncua import Server, ua
from asyncua.common.instantiate_util import instantiate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of alarm: its name (the condition's browse name), severity and what it says."""

    name: str
    severity: int
    text: str


KINDS: dict[str, Kind] = {
    "down": Kind("EquipmentDown", 700, "equipment down"),
    "hold_violation": Kind("HoldTimeViolation", 800, "hold time exceeded"),
    "qc_oos": Kind("QcOutOfSpecification", 900, "QC result out of specification"),
}


_EVENTS = ("hold_violation", "investigation", "investigation_end", "reject")  # besides state changes


@dataclass
class Condition:
    """The state of one condition and the event generator that reports it."""

    node_id: ua.NodeId
    kind: Kind
    source: ua.NodeId
    source_name: str
    generator: Any
    active: bool = False
    acked: bool = True
    event_id: bytes = b""  # of the latest event
    event_ids: set[bytes] = field(default_factory=set)  # of the events since the condition last became active
    open_batches: set[int] = field(default_factory=set)


class Alarms:
    """The line's conditions, raised and cleared from event-log rows."""

    def __init__(self, line: str):
        self.line = line
        self.server: Server | None = None
        self.ns = 0
        self.conditions: dict[str, Condition] = {}
        self.raised = 0

    async def install(self, server: Server, ns: int) -> None:
        """Link Acknowledge (the type's method and every instance's) to this object."""
        self.server, self.ns = server, ns
        server.link_method(server.get_node(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge), self._acknowledge)

    # ------------------------------------------------------------------------------------------ from the run

    async def apply(self, rows: pd.DataFrame) -> None:
        """Raise and clear conditions for the rows of the run just made (in time order)."""
        rows = rows[rows["state"].notna() | rows["event"].isin(_EVENTS)]
        if not len(rows):
            return
        for station, unit, event, state, batch in zip(
            rows["station"].astype(object),
            rows["unit"].to_numpy(),
            rows["event"].astype(object),
            rows["state"].astype(object),
            rows["batch"].to_numpy(),
            strict=True,
        ):
            has_station = isinstance(station, str)
            if has_station and unit >= 0 and isinstance(state, str):
                source = f"{self.line}.{station}.Unit{int(unit) + 1}"
                key = f"{source}.{KINDS['down'].name}"
                if state == "down":
                    await self._set(source, "down", True, f"{station} unit {int(unit) + 1}: equipment down")
                elif key in self.conditions and self.conditions[key].active:
                    await self._set(source, "down", False, f"{station} unit {int(unit) + 1}: repaired")
            if event == "hold_violation":
                source = f"{self.line}.{station}" if has_station else self.line
                text = f"batch {int(batch)}: hold time before {station or 'the line'} exceeded"
                await self._set(source, "hold_violation", True, text)
                await self._set(source, "hold_violation", False, text)
            elif not has_station and event in ("investigation", "investigation_end", "reject"):
                await self._qc(event, int(batch))

    async def _qc(self, event: str, batch: int) -> None:
        key = f"{self.line}.{KINDS['qc_oos'].name}"
        if event == "investigation":
            cond = await self._set(self.line, "qc_oos", True, f"batch {batch}: QC out of specification, investigating")
            if cond is not None:
                cond.open_batches.add(batch)
        elif event == "investigation_end" and key in self.conditions:
            cond = self.conditions[key]
            cond.open_batches.discard(batch)
            if not cond.open_batches and cond.active:
                await self._set(self.line, "qc_oos", False, f"batch {batch}: investigation closed")
        elif event == "reject":
            cond = await self._set(self.line, "qc_oos", True, f"batch {batch}: QC out of specification, batch rejected")
            if cond is not None and not cond.open_batches:
                await self._set(self.line, "qc_oos", False, f"batch {batch}: rejected")

    async def _condition(self, source: str, kind: Kind) -> Condition | None:
        """The condition of ``kind`` on ``source``, made at its first use (None: the source is not served,
        e.g. a unit that a SetParameter added to the run after the address space was built)."""
        key = f"{source}.{kind.name}"
        cond = self.conditions.get(key)
        if cond is not None:
            return cond
        server = self.server
        assert server is not None
        if ua.NodeId(source, self.ns) not in server.iserver.aspace:
            return None
        parent = server.get_node(ua.NodeId(source, self.ns))
        node_id = ua.NodeId(key, self.ns)
        await instantiate(
            parent,
            server.get_node(ua.ObjectIds.AlarmConditionType),
            nodeid=node_id,
            bname=ua.QualifiedName(kind.name, self.ns),
            instantiate_optional=False,
        )
        await parent.add_reference(node_id, ua.ObjectIds.HasCondition)
        server.link_method(server.get_node(ua.NodeId(f"{key}.Acknowledge", self.ns)), self._acknowledge)
        generator = await server.get_event_generator(ua.ObjectIds.AlarmConditionType, ua.ObjectIds.Server)
        source_name = (await parent.read_browse_name()).Name
        cond = Condition(node_id, kind, parent.nodeid, source_name, generator)
        self.conditions[key] = cond
        return cond

    async def _set(self, source: str, kind_key: str, active: bool, message: str) -> Condition | None:
        cond = await self._condition(source, KINDS[kind_key])
        if cond is None:
            return None
        if active:
            cond.acked = False
            cond.event_ids.clear()
            self.raised += 1
        cond.active = active
        await self._report(cond, message)
        return cond

    async def _report(self, cond: Condition, message: str, comment: str = "") -> None:
        ev = cond.generator.event
        ev.NodeId = cond.node_id  # the ConditionId
        ev.SourceNode, ev.SourceName = cond.source, cond.source_name
        ev.ConditionName = cond.kind.name
        ev.ConditionClassId = ua.NodeId(ua.ObjectIds.BaseConditionClassType)
        ev.ConditionClassName = ua.LocalizedText("BaseConditionClassType")
        ev.BranchId = ua.NodeId()
        ev.Severity = cond.kind.severity
        ev.LastSeverity = cond.kind.severity
        ev.Quality = ua.StatusCode()
        ev.EnabledState = ua.LocalizedText("Enabled")
        setattr(ev, "EnabledState/Id", True)
        ev.ActiveState = ua.LocalizedText("Active" if cond.active else "Inactive")
        setattr(ev, "ActiveState/Id", cond.active)
        ev.AckedState = ua.LocalizedText("Acknowledged" if cond.acked else "Unacknowledged")
        setattr(ev, "AckedState/Id", cond.acked)
        ev.Comment = ua.LocalizedText(comment)
        ev.Retain = cond.active or not cond.acked
        await cond.generator.trigger(message=message)
        cond.event_id = bytes(ev.EventId.Value if isinstance(ev.EventId, ua.Variant) else ev.EventId)
        cond.event_ids.add(cond.event_id)
        await self._write_state(cond, message)

    async def _write_state(self, cond: Condition, message: str) -> None:
        """The condition node's own variables follow its events (a client can read them as well)."""
        server = self.server
        assert server is not None
        prefix = cond.node_id.Identifier
        for path, value, vtype in (
            ("ActiveState.Id", cond.active, ua.VariantType.Boolean),
            ("ActiveState", ua.LocalizedText("Active" if cond.active else "Inactive"), ua.VariantType.LocalizedText),
            ("AckedState.Id", cond.acked, ua.VariantType.Boolean),
            (
                "AckedState",
                ua.LocalizedText("Acknowledged" if cond.acked else "Unacknowledged"),
                ua.VariantType.LocalizedText,
            ),
            ("Retain", cond.active or not cond.acked, ua.VariantType.Boolean),
            ("Message", ua.LocalizedText(message), ua.VariantType.LocalizedText),
            ("Severity", cond.kind.severity, ua.VariantType.UInt16),
        ):
            node_id = ua.NodeId(f"{prefix}.{path}", self.ns)
            if node_id in server.iserver.aspace:
                await server.write_attribute_value(node_id, ua.DataValue(ua.Variant(value, vtype)))

    # ------------------------------------------------------------------------------------------ methods

    async def _acknowledge(self, parent: ua.NodeId, event_id: ua.Variant, comment: ua.Variant) -> Any:
        cond = next((c for c in self.conditions.values() if c.node_id == parent), None)
        if cond is None:
            return ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)
        given = event_id.Value if isinstance(event_id, ua.Variant) else event_id
        if not isinstance(given, bytes | bytearray) or bytes(given) not in cond.event_ids:
            return ua.StatusCode(ua.StatusCodes.BadEventIdUnknown)
        if cond.acked:
            return ua.StatusCode(ua.StatusCodes.BadConditionBranchAlreadyAcked)
        cond.acked = True
        text = comment.Value if isinstance(comment, ua.Variant) else comment
        text = text.Text if isinstance(text, ua.LocalizedText) else str(text or "")
        await self._report(cond, f"{cond.source_name}: {cond.kind.text} acknowledged", comment=text or "")
        return []

    def retained(self) -> list[str]:
        """Node ids of the conditions active or not acknowledged."""
        return [str(c.node_id.Identifier) for c in self.conditions.values() if c.active or not c.acked]
