"""The twin as an OPC-UA server: a run paced to the wall clock, published in an ISA-95 address space.

    >>> server = TwinServer(spec, ServerOptions(endpoint="opc.tcp://127.0.0.1:4840", users=Path("users.yaml")))
    >>> await server.start(); await server.run(stop_event)

Address space (namespace ``urn:twin:<line>``, resolved by URI; string node ids)::

    Objects/<site>/<area>/<line>                  node ids: <line>, <line>.SimTime, <line>.Start, ...
        SimTime, RunState, Speed, SpecHash, Overrides, LastMessage, Simulated
        PackML                                    the line as a PackML machine (Execute, Held when paused, ...)
        KPI/ThroughputPerHour, UnitsPerHour, OEE, WIP, LeadTimeHours, Bottleneck, WindowHours
        Start(), Pause(), Reset(), SetParameter(Path, Value) -> Message        (operator role)
        <station>/OEE, Utilization
            Unit1                                 a PackML machine (PackMLBaseObjectType): Admin, Status,
                                                  BaseStateMachine/MachineState/ExecuteState, Set...() methods
                  State, StateCurrent, Batch, Product, ProdProcessedCount, ProdDefectiveCount (UInt32),
                  BatchesDone, CurSpeed, MachSpeed (per minute), Blocked, Starved, StateCurrentTime,
                  StateDurations/<state>                                     e.g. Line.press.Unit1.State
    Objects/PackMLObjects                         organizes every PackML machine (OPC 30050, 6.2)

The PackML model (``packml``): the OPC Foundation's NodeSet loaded at start, the twin's states as
PackML states (a fault is Held, never Aborted), ``StateCurrent`` the PackML state number, ``State``
the twin's own state name; every analog value carries EngineeringUnits (UNECE) and EURange. Every
published value carries the status ``UncertainSimulatedValue`` ("the value is simulated") and every
object a ``Simulated`` property. Times are hours of simulated time. HistoryRead serves the last
values of every variable (``served_history``); alarms and conditions report equipment down, hold-time
violations and QC results out of specification (``alarms``). A bad ``SetParameter`` (an unknown path,
a value the spec refuses) returns ``BadInvalidArgument`` and says why in ``LastMessage``; the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from asyncua import Server, ua

from connectors.opcua.alarms import Alarms
from connectors.opcua.live import LiveLine, end_row
from connectors.opcua.pacing import PacedRun
from connectors.opcua.packml import (
    ANALOG,
    COUNTER_WRAP,
    PACKML,
    STATE_NUMBERS,
    add_analog,
    count_value,
    line_ranges,
    load_packml,
    packml_name,
    packml_state,
    set_eu,
)
from connectors.opcua.served_history import HISTORY_DEPTH, ServedHistory
from connectors.opcua.uabase import ServerOptions, SharedValue, make_server, start_server, utcnow
from twin.engine.compiled import compile_line
from twin.errors import TwinError
from twin.eventlog import STATES, EventLog, normalize_table
from twin.experiment import with_overrides
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec

__all__ = ["PACKML", "STATE_NUMBERS", "ServerOptions", "TwinServer", "packml_state"]

log = logging.getLogger(__name__)
V = ua.VariantType

SIMULATED = ua.StatusCode(ua.StatusCodes.UncertainSimulatedValue)


@dataclass
class _Var:
    node: ua.NodeId
    vtype: ua.VariantType
    last: Any = None


class TwinServer:
    """A paced run of a spec with its OPC-UA address space and operator methods."""

    def __init__(
        self,
        spec: LineSpec,
        options: ServerOptions,
        speed: float | None = 60.0,
        seed: int = 1,
        horizon: float | None = None,
        paused: bool = False,
        publish_interval: float = 0.1,
        kpi_interval: float = 1.0,
        site: str = "Site",
        area: str = "Area",
        overrides: tuple[str, ...] = (),
        history_depth: int = HISTORY_DEPTH,
    ):
        self.spec, self.options, self.speed, self.seed = spec, options, speed, seed
        self.horizon_arg = horizon
        self.publish_interval, self.kpi_interval = publish_interval, kpi_interval
        self.site, self.area = site, area
        self.overrides = list(overrides)
        self.namespace_uri = f"urn:twin:{spec.name}"
        self.server: Server | None = None
        self.ns = 0
        self._vars: dict[str, _Var] = {}
        self.message = ""
        self.written = 0
        self._kpi_seconds = 0.0
        self.history = ServedHistory(history_depth)
        self.alarms = Alarms(spec.name)
        self.observer: Any = None  # .rows(new rows), .kpis(summary), .new_run(): e.g. the live USD scene
        self._new_run(running=not paused)

    # ------------------------------------------------------------------------------------------ the run

    def _new_run(self, running: bool) -> None:
        line = compile_line(self.spec)
        self.line = line
        horizon = self.spec.horizon_hours if self.horizon_arg is None else self.horizon_arg
        self.run_ = PacedRun(line, self.seed, horizon, self.speed)
        self.live = LiveLine(line)
        self.parts: list[pd.DataFrame] = []
        self.kpis: dict[str, Any] = {}
        self._dirty: set[tuple[str, int]] = set()  # units whose status changed since the last publish
        self._force = True  # publish every value at the next tick (a new run)
        self._kpis_new = True
        if getattr(self, "observer", None) is not None:
            self.observer.new_run()
        if running:
            self.run_.start(time.monotonic())

    def event_log(self) -> EventLog:
        """The run so far, closed by an ``end`` row at the simulated time reached."""
        now = self.run_.now
        table = pd.concat(self.parts, ignore_index=True) if self.parts else None
        end = end_row(now)
        line = self.line
        meta = line.log_meta(
            horizon=now,
            warmup=min(line.warmup, now),
            replications=1,
            seed=self.seed,
            spec_hash=line.spec_hash,
        )
        whole = end if table is None else pd.concat([table.astype(object), end.astype(object)], ignore_index=True)
        return EventLog(normalize_table(whole, meta), meta)

    # ------------------------------------------------------------------------------------------ address space

    def _id(self, *parts: str) -> ua.NodeId:
        return ua.NodeId(".".join(parts), self.ns)

    async def _variable(
        self,
        parent: Any,
        node_id: str,
        name: str,
        vtype: ua.VariantType,
        initial: Any,
        unit: tuple[str, int] | None = None,
    ) -> None:
        """A variable of the twin; a Double named in ``ANALOG`` is an AnalogItemType with its unit and range."""
        kind = "StateDuration" if ".StateDurations." in node_id else name
        if vtype == V.Double and kind in ANALOG:
            eu, range_kind = ANALOG[kind]
            node = await add_analog(
                self.server,
                parent,
                ua.NodeId(node_id, self.ns),
                ua.QualifiedName(name, self.ns),
                initial,
                eu,
                self.ranges.get(range_kind, unit),
            )
        else:
            node = await parent.add_variable(
                ua.NodeId(node_id, self.ns), ua.QualifiedName(name, self.ns), ua.Variant(initial, vtype)
            )
        self._vars[node_id] = _Var(node.nodeid, vtype)
        self.history.track(node.nodeid)

    async def _object(self, parent: Any, node_id: str, name: str) -> Any:
        obj = await parent.add_object(ua.NodeId(node_id, self.ns), ua.QualifiedName(name, self.ns))
        await self._simulated(obj, node_id)
        return obj

    async def _simulated(self, obj: Any, node_id: str) -> None:
        await obj.add_property(ua.NodeId(f"{node_id}.Simulated", self.ns), ua.QualifiedName("Simulated", self.ns), True)

    async def _packml_object(self, parent: Any, node_id: str, name: str, unit: tuple[str, int] | None) -> Any:
        """A PackML machine (``PackMLBaseObjectType``), organized under ``Objects/PackMLObjects`` too."""
        obj = await self.packml.instantiate(parent, node_id, name, self.ns)
        await self._simulated(obj, node_id)
        await self.packml_folder.add_reference(obj.nodeid, ua.ObjectIds.Organizes)
        for var in ("CurMachSpeed", "MachSpeed"):
            node = self.server.get_node(ua.NodeId(f"{node_id}.Status.{var}", self.ns))
            eu, range_kind = ANALOG[var]
            await set_eu(node, eu, self.ranges.get(range_kind, unit))
        for key, (_value, vtype) in self._packml_values(node_id, None, 0.0, 0.0, False, False).items():
            self._vars[key] = _Var(ua.NodeId(key, self.ns), vtype)
            self.history.track(ua.NodeId(key, self.ns))
        if unit is not None:
            for key in await self.packml.add_counts(node_id, self.ns):
                self._vars[key] = _Var(ua.NodeId(key, self.ns), V.ExtensionObject)
                self.history.track(ua.NodeId(key, self.ns))
        for method in ("SetUnitMode", "SetMachSpeed", "SetProduct", "SetParameter"):
            self.server.link_method(self.server.get_node(ua.NodeId(f"{node_id}.{method}", self.ns)), self._unsupported)
        return obj

    def _packml_values(
        self, node_id: str, state: str | None, speed: float, mach_speed: float, blocked: bool, starved: bool
    ) -> dict[str, tuple[Any, ua.VariantType]]:
        out = self.packml.state_values(node_id, state)
        out[f"{node_id}.Status.CurMachSpeed"] = (float(speed), V.Float)
        out[f"{node_id}.Status.MachSpeed"] = (float(mach_speed), V.Float)
        out[f"{node_id}.Status.EquipmentBlocked"] = (blocked, V.Boolean)
        out[f"{node_id}.Status.EquipmentStarved"] = (starved, V.Boolean)
        return out

    async def build(self) -> Server:
        """The server with its address space, not listening yet (``start`` listens; ``nodeset`` exports it)."""
        self.server = server = await make_server(self.options, f"twin ({self.spec.name})", "serve")
        self.ns = await server.register_namespace(self.namespace_uri)  # first: it keeps index 2, PackML comes after
        self.packml = await load_packml(server)
        self.packml_folder = await server.nodes.objects.get_child(f"{self.packml.ns}:PackMLObjects")
        self.history.install(server)
        horizon = self.spec.horizon_hours if self.horizon_arg is None else self.horizon_arg
        self.ranges = line_ranges(self.line, horizon)
        site = await self._object(server.nodes.objects, self.site, self.site)
        area = await self._object(site, f"{self.site}.{self.area}", self.area)
        name = self.spec.name
        line = await self._object(area, name, name)
        for var, vtype, initial in (
            ("SimTime", V.Double, 0.0),
            ("RunState", V.String, ""),
            ("Speed", V.String, ""),
            ("SpecHash", V.String, ""),
            ("LastMessage", V.String, ""),
        ):
            await self._variable(line, f"{name}.{var}", var, vtype, initial)
        await self._variable(line, f"{name}.Overrides", "Overrides", V.String, [])
        await self._packml_object(line, f"{name}.PackML", "PackML", None)
        kpi = await line.add_folder(self._id(name, "KPI"), ua.QualifiedName("KPI", self.ns))
        for var in ("ThroughputPerHour", "UnitsPerHour", "OEE", "WIP", "LeadTimeHours", "WindowHours"):
            await self._variable(kpi, f"{name}.KPI.{var}", var, V.Double, 0.0)
        await self._variable(kpi, f"{name}.KPI.Bottleneck", "Bottleneck", V.String, "")
        for station in self.spec.stations:
            sid = f"{name}.{station.name}"
            st = await self._object(line, sid, station.name)
            await self._variable(st, f"{sid}.OEE", "OEE", V.Double, 0.0)
            await self._variable(st, f"{sid}.Utilization", "Utilization", V.Double, 0.0)
            for u in range(station.units):
                uid = f"{sid}.Unit{u + 1}"
                key = (station.name, u)
                unit = await self._packml_object(st, uid, f"Unit{u + 1}", key)
                for var, vtype, initial in (
                    ("State", V.String, ""),
                    ("StateCurrent", V.Int32, 0),
                    ("Batch", V.Int64, -1),
                    ("Product", V.String, ""),
                    ("ProdProcessedCount", V.UInt32, 0),
                    ("ProdDefectiveCount", V.UInt32, 0),
                    ("BatchesDone", V.Int64, 0),
                    ("CurSpeed", V.Double, 0.0),
                    ("MachSpeed", V.Double, 0.0),
                    ("Blocked", V.Boolean, False),
                    ("Starved", V.Boolean, False),
                    ("StateCurrentTime", V.Double, 0.0),
                ):
                    await self._variable(unit, f"{uid}.{var}", var, vtype, initial, key)
                durations = await unit.add_folder(
                    self._id(uid, "StateDurations"), ua.QualifiedName("StateDurations", self.ns)
                )
                for state in STATES:
                    await self._variable(durations, f"{uid}.StateDurations.{state}", state, V.Double, 0.0, key)
        string = ua.VariantType.String
        path_arg = ua.Argument(
            Name="Path",
            DataType=ua.NodeId(ua.ObjectIds.String),
            ValueRank=-1,
            Description=ua.LocalizedText("dotted path, as in --set (stations.press.units)"),
        )
        value_arg = ua.Argument(
            Name="Value",
            DataType=ua.NodeId(ua.ObjectIds.String),
            ValueRank=-1,
            Description=ua.LocalizedText("new value (YAML: 2, 45 min, {dist: ...})"),
        )
        message_arg = ua.Argument(Name="Message", DataType=ua.NodeId(string), ValueRank=-1)
        await line.add_method(self._id(name, "Start"), ua.QualifiedName("Start", self.ns), self._start, [], [])
        await line.add_method(self._id(name, "Pause"), ua.QualifiedName("Pause", self.ns), self._pause, [], [])
        await line.add_method(self._id(name, "Reset"), ua.QualifiedName("Reset", self.ns), self._reset, [], [])
        await line.add_method(
            self._id(name, "SetParameter"),
            ua.QualifiedName("SetParameter", self.ns),
            self._set_parameter,
            [path_arg, value_arg],
            [message_arg],
        )
        await self.alarms.install(server, self.ns)
        await self.history.mark()
        return server

    async def start(self) -> None:
        server = await self.build()
        await self._publish(force=True)
        await start_server(server, self.options.endpoint)
        log.info("serving %s on %s", self.spec.name, self.options.endpoint)

    # ------------------------------------------------------------------------------------------ methods

    async def _unsupported(self, parent: ua.NodeId, *args: Any) -> ua.StatusCode:
        self._say(f"{parent.Identifier}: PackML unit commands are not supported by the twin; use the line's methods")
        return ua.StatusCode(ua.StatusCodes.BadNotSupported)

    async def _start(self, parent: ua.NodeId) -> list[ua.Variant]:
        self.run_.start(time.monotonic())
        self._say("started")
        return []

    async def _pause(self, parent: ua.NodeId) -> list[ua.Variant]:
        self.run_.pause(time.monotonic())
        self._say("paused")
        return []

    async def _reset(self, parent: ua.NodeId) -> list[ua.Variant]:
        self._new_run(running=self.run_.running)
        self._say("reset to time 0")
        return []

    async def _set_parameter(self, parent: ua.NodeId, path: ua.Variant, value: ua.Variant) -> Any:
        text = f"{path.Value}={value.Value}"
        if not isinstance(path.Value, str) or not isinstance(value.Value, str) or not path.Value.strip():
            self._say(f"SetParameter({text}) refused: Path and Value must be strings, Path not empty")
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        try:
            spec = with_overrides(self.spec, [text], source="SetParameter")
        except TwinError as err:
            self._say(f"SetParameter({text}) refused: {str(err).splitlines()[0]}")
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        self.spec = spec
        self.overrides.append(text)
        self._new_run(running=self.run_.running)
        self._say(f"{text} applied; the run restarted from time 0 (spec {spec.spec_hash[:12]})")
        return [ua.Variant(self.message, V.String)]

    def _say(self, message: str) -> None:
        self.message = message
        log.info("%s", message)

    # ------------------------------------------------------------------------------------------ publishing

    async def run(self, stop: asyncio.Event) -> None:
        """Advance and publish every ``publish_interval`` until ``stop`` is set.

        Line KPIs are recomputed in a thread every ``kpi_interval`` seconds, or less often when
        computing them takes long (a tenth of the time at most goes to them).
        """
        next_kpis = next_tick = time.monotonic()
        kpi_task: asyncio.Task[dict[str, Any]] | None = None
        while not stop.is_set():
            rows = self.run_.step(time.monotonic())
            if len(rows):
                self.parts.append(rows)
                self._dirty.update(c.unit for c in self.live.apply(rows) if c.unit is not None)
                await self.alarms.apply(rows)
                if self.observer is not None:
                    self.observer.rows(rows)
            if kpi_task is not None and kpi_task.done():
                if not kpi_task.cancelled() and kpi_task.exception() is None:
                    self.kpis, self._kpis_new = kpi_task.result(), True
                    if self.observer is not None:
                        self.observer.kpis(self.kpis)
                kpi_task = None
            if kpi_task is None and time.monotonic() >= next_kpis:
                began = time.monotonic()
                kpi_task = asyncio.create_task(asyncio.to_thread(self._compute_kpis, self.event_log()))
                kpi_task.add_done_callback(lambda _t, b=began: setattr(self, "_kpi_seconds", time.monotonic() - b))
                next_kpis = began + max(self.kpi_interval, 10 * self._kpi_seconds)
            await self._publish()
            next_tick += self.publish_interval  # a fixed grid: a tick that ran late is made up at once ...
            if time.monotonic() - next_tick > self.publish_interval:  # ... but not a stall: no burst of ticks
                next_tick = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(next_tick - time.monotonic(), 0.0))

    def _compute_kpis(self, log_: EventLog) -> dict[str, Any]:
        if log_.meta.horizon <= log_.meta.warmup:
            return {}
        return compute_kpis(log_).summary

    def _line_values(self) -> dict[str, Any]:
        name = self.spec.name
        state = "finished" if self.run_.finished else "running" if self.run_.running else "paused"
        packml = "Complete" if self.run_.finished else "Execute" if self.run_.running else "Held"
        if not self.run_.running and self.run_.now == 0:
            packml = "Idle"  # not started yet (--paused): ready, waiting for Start
        out = {k: v for k, (v, _t) in self._packml_values(f"{name}.PackML", packml, 0.0, 0.0, False, False).items()}
        return out | {
            f"{name}.SimTime": self.run_.now,
            f"{name}.RunState": state,
            f"{name}.Speed": "max" if self.speed is None else f"{self.speed:g}",
            f"{name}.SpecHash": self.spec.spec_hash,
            f"{name}.LastMessage": self.message,
            f"{name}.Overrides": list(self.overrides),
        }

    def _kpi_values(self) -> dict[str, Any]:
        name, k = self.spec.name, self.kpis

        def mean(*path: str) -> float:
            node: Any = k
            for p in path:
                node = node.get(p, {}) if isinstance(node, dict) else {}
            value = node.get("mean") if isinstance(node, dict) else None
            return float(value) if value is not None else 0.0

        window = k.get("window_hours") or [0.0, 0.0]
        out = {
            f"{name}.KPI.ThroughputPerHour": mean("throughput_per_hour"),
            f"{name}.KPI.UnitsPerHour": mean("units_per_hour"),
            f"{name}.KPI.OEE": mean("oee"),
            f"{name}.KPI.WIP": mean("wip"),
            f"{name}.KPI.LeadTimeHours": mean("lead_time_hours"),
            f"{name}.KPI.Bottleneck": (k.get("bottleneck") or {}).get("station") or "",
            f"{name}.KPI.WindowHours": float(window[1] or 0.0) - float(window[0] or 0.0),
        }
        for station in self.line.stations:
            out[f"{name}.{station.name}.OEE"] = mean("stations", station.name, "oee")
            out[f"{name}.{station.name}.Utilization"] = mean("stations", station.name, "utilization")
        return out

    def _unit_values(self, station: Any, u: int, full: bool) -> dict[str, Any]:
        """A unit's values: all of them when it changed, else only those that grow with the clock."""
        uid = f"{self.spec.name}.{station.name}.Unit{u + 1}"
        s = self.live.units[(station.name, u)]
        now = self.run_.now
        out: dict[str, Any] = {f"{uid}.StateCurrentTime": max(now - s.since, 0.0) if s.state else 0.0}
        if s.state is not None:
            out[f"{uid}.StateDurations.{s.state}"] = s.state_hours(now)[s.state]
        if not full:
            return out
        product = s.product or ""
        ideal = station.ideal[self.line.products.index(product)] if product else 0.0
        size = self.line.batch_sizes[self.line.products.index(product)] if product else 0.0
        speed = s.speed / 60.0 if s.state == "processing" else 0.0  # units per minute, as PackML counts speed
        mach_speed = size / ideal / 60.0 if product and ideal > 0 else 0.0
        packml = self._packml_values(
            uid, packml_name(s.state), speed, mach_speed, s.state == "blocked", s.state == "starved"
        )
        out.update({k: v for k, (v, _t) in packml.items()})
        out.update(
            {
                f"{uid}.State": s.state or "",
                f"{uid}.StateCurrent": packml_state(s.state),
                f"{uid}.Batch": s.batch,
                f"{uid}.Product": product,
                f"{uid}.Admin.ProdProcessedCount": count_value("ProdProcessedCount", s.produced),
                f"{uid}.Admin.ProdDefectiveCount": count_value("ProdDefectiveCount", s.defective),
                f"{uid}.ProdProcessedCount": int(s.produced) % COUNTER_WRAP,
                f"{uid}.ProdDefectiveCount": int(s.defective) % COUNTER_WRAP,
                f"{uid}.BatchesDone": s.batches_done,
                f"{uid}.CurSpeed": speed,
                f"{uid}.MachSpeed": mach_speed,
                f"{uid}.Blocked": s.state == "blocked",
                f"{uid}.Starved": s.state == "starved",
            }
        )
        hours = s.state_hours(now)
        for st in STATES:
            out[f"{uid}.StateDurations.{st}"] = hours.get(st, 0.0)
        return out

    def _values(self, force: bool) -> dict[str, Any]:
        out = self._line_values()
        if force or self._kpis_new:
            out.update(self._kpi_values())
            self._kpis_new = False
        dirty, self._dirty = self._dirty, set()
        for station in self.line.stations:
            for u in range(station.units):
                out.update(self._unit_values(station, u, force or (station.name, u) in dirty))
        return out

    async def _publish(self, force: bool = False) -> None:
        force = force or self._force
        self._force = False
        when = utcnow()
        write = self.server.write_attribute_value
        for key, v in self._values(force).items():
            var = self._vars.get(key)
            if var is None or (not force and var.last == v):
                continue
            var.last = v
            dv = SharedValue(
                Value=ua.Variant(v, var.vtype), StatusCode=SIMULATED, SourceTimestamp=when, ServerTimestamp=when
            )
            await write(var.node, dv)
            self.history.record(var.node, dv)
            self.written += 1

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
