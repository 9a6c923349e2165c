"""A plant emulator: an OPC-UA server with a PLC-style flat tag layout, driven by a SimPy run.

    >>> emu = PlantEmulator(spec, tag_map, ServerOptions(...), speed=None, seed=1)
    >>> await emu.start(); await emu.run(stop_event)

Tags (``Objects/PLC/<TAG>``, string node ids in the map's namespace) follow a tag map: integer state
codes, current batch id and product, a good-units counter and a finished-batches counter that wrap,
an alarm flag, the last released batch id and a release counter, and a heartbeat that counts every
second. The server keeps the last ``history`` values of each tag for HistoryRead, so that a client
that was away (a lost connection, a restart) can fetch what it missed. Each value carries the
plant clock as its source timestamp: the run's start (``origin``) plus the simulated hours, so that
a run at ``--speed max`` still has the timing of a real plant.

``PLC.Start`` and ``PLC.Pause`` (operator methods) start and pause the run; ``--paused`` waits for
Start. With a state file the emulator resumes after a restart where it stopped (the emulated PLC
keeps its counters, as a PLC's retained memory does): it replays the same seed silently to where it
had published ``REPLAY_S`` seconds before it stopped, then publishes again from there (values that
may have been lost with the old process's queues come again; clients drop the exact repeats).
Extra ``BENCH_nnnn`` counters (``bench_tags``) change ``bench_rate`` times a second each, for load tests; their
source timestamps are the wall clock (so that latency can be measured at any speed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.methods import uamethod
from asyncua.server.history import HistoryDict

from connectors.opcua.live import Change, LiveLine
from connectors.opcua.pacing import PacedRun
from connectors.opcua.roles import BY_NAME, Publishing, emulated_type, line_roles, published, unit_roles, wrap_of
from connectors.opcua.roles import batch_id as batch_id  # the plant's batch names (re-exported)
from connectors.opcua.tagmap import TagMap
from connectors.opcua.uabase import ServerOptions, make_server, start_server, utcnow, value
from twin.durations import format_hours
from twin.engine.compiled import compile_line
from twin.errors import InputError
from twin.eventlog import STATES, EventLog
from twin.experiment import RunResult
from twin.kpis.report import compute_kpis
from twin.runfolder import write_run
from twin.spec.model import LineSpec

log = logging.getLogger(__name__)

REPLAY_S = 2.0  # a restarted emulator publishes again the last seconds before its restart
HISTORY_RESPONSE = 10_000  # values per node in one HistoryRead answer (then a continuation point)


@dataclass
class Tag:
    node: ua.NodeId
    vtype: ua.VariantType
    wrap: int | None = None
    historized: bool = False


class PlantEmulator:
    """The emulated plant: a paced run published as PLC tags."""

    def __init__(
        self,
        spec: LineSpec,
        tags: TagMap,
        options: ServerOptions,
        speed: float | None = 1.0,
        seed: int = 1,
        horizon: float | None = None,
        paused: bool = False,
        state_file: Path | None = None,
        out: Path | None = None,
        bench_tags: int = 0,
        bench_rate: float = 10.0,
        tick: float = 0.05,
        history: int = 50_000,
    ):
        self.spec, self.tags, self.options = spec, tags, options
        self.seed, self.paused, self.tick = seed, paused, tick
        self.horizon = spec.horizon_hours if horizon is None else horizon
        self.planned_horizon = self.horizon
        self.out_note: str | None = None  # what became of ``out``, once the run ended or was stopped
        self.state_file, self.out = state_file, out
        self.bench_tags, self.bench_rate = bench_tags, bench_rate
        self.history = history
        line = compile_line(spec)
        self.run_ = PacedRun(line, seed, self.horizon, speed)
        self.live = LiveLine(line)
        self.server: Server | None = None
        self.origin = utcnow().replace(microsecond=0)
        self.heartbeat = 0
        self.published = 0  # value changes written
        self._tags: dict[str, Tag] = {}
        self._state_code = self._state_codes()
        self._product_code = {name: code for code, name in (tags.products or {}).items()}
        self._unit_tags = {(s, u): t for s, u, t in tags.units()}
        self._written_out = False
        self._published_at: deque[tuple[float, float]] = deque()  # (wall, simulated time published)
        self._resumed_from = 0.0

    def _state_codes(self) -> dict[tuple[str, int], dict[str, Any]]:
        out = {}
        for station, u, unit in self.tags.units():
            inverse: dict[str, Any] = {}
            for code, state in self.tags.codes_for(unit).items():
                if state is not None:
                    inverse.setdefault(state, code)
            missing = [s for s in STATES if s not in inverse]
            if missing:
                raise InputError(
                    f"tag map: stations.{station}[{u}]: no plant state code for {', '.join(missing)}; "
                    "the emulator needs one for every twin state"
                )
            out[(station, u)] = inverse
        return out

    # ------------------------------------------------------------------------------------------ address space

    async def start(self) -> None:
        resume = self._load_state()
        self.server = server = await make_server(self.options, f"twin plant emulator ({self.spec.name})", "emulate")
        ns = await server.register_namespace(self.tags.namespace)
        plc = await server.nodes.objects.add_object(ua.NodeId("PLC", ns), ua.QualifiedName("PLC", ns))
        initial_ts = self.origin
        specs: list[tuple[str, ua.VariantType, Any, int | None]] = []
        owners = [(None, line_roles(self.tags)), *((u, unit_roles(u)) for _s, _u, u in self.tags.units())]
        for owner, present in owners:
            for name, tag in present.items():  # every role's tag, typed as the roles table says
                role = BY_NAME[name]
                specs.append((tag, *emulated_type(self.tags, owner, role), wrap_of(self.tags, owner, role)))
        for i in range(self.bench_tags):
            specs.append((f"BENCH_{i + 1:04d}", ua.VariantType.UInt32, 0, 2**32))
        self._history = HistoryDict(max_history_data_response_size=HISTORY_RESPONSE)
        server.iserver.history_manager.set_storage(self._history)
        for tag, vtype, initial, wrap in specs:
            node_id = ua.NodeId(tag, ns)
            node = await plc.add_variable(node_id, ua.QualifiedName(tag, ns), ua.Variant(initial, vtype))
            historized = self.history > 0 and not tag.startswith("BENCH_")
            if historized:
                await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(True))
                await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
                await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
                await self._history.new_historized_node(node_id, None, self.history)
            self._tags[tag] = Tag(node_id, vtype, wrap, historized)
            await self._write(tag, initial, initial_ts)
        await plc.add_method(ua.NodeId("PLC.Start", ns), ua.QualifiedName("Start", ns), uamethod(self._start), [], [])
        await plc.add_method(ua.NodeId("PLC.Pause", ns), ua.QualifiedName("Pause", ns), uamethod(self._pause), [], [])
        if resume is not None:
            await self._replay(resume)
        await start_server(server, self.options.endpoint)
        if not self.paused:
            self.run_.start(time.monotonic())
        log.info("emulating %s on %s (%d tags)", self.spec.name, self.options.endpoint, len(self._tags))

    def _start(self, parent: Any) -> None:
        self.run_.start(time.monotonic())

    def _pause(self, parent: Any) -> None:
        self.run_.pause(time.monotonic())

    # ------------------------------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Publish the run tick by tick until ``stop`` is set."""
        next_beat = time.monotonic()
        next_bench = time.monotonic()
        bench_counter = 0
        while not stop.is_set():
            wall = time.monotonic()
            rows = self.run_.step(wall)
            for change in self.live.apply(rows):
                await self._publish(change)
            if len(rows):
                self._save_state()
            if self.run_.finished and not self._written_out:
                await self._beat()  # the plant clock at the end, after every row of the run
                self._write_out()
            if wall >= next_beat:
                await self._beat()
                next_beat += 1.0
            if self.bench_tags and wall >= next_bench:
                bench_counter += 1
                when = utcnow()  # load-test counters carry the wall clock, to measure latency
                for i in range(self.bench_tags):
                    tag = self._tags[f"BENCH_{i + 1:04d}"]
                    await self.server.write_attribute_value(tag.node, value(bench_counter, ua.VariantType.UInt32, when))
                self.published += self.bench_tags
                next_bench += 1.0 / self.bench_rate
            fast = self.run_.running and self.run_.speed is None
            delay = 0.002 if fast else self.tick
            if self.bench_tags:
                delay = min(delay, next_bench - time.monotonic())
            await asyncio.sleep(max(delay, 0.0))
        self._write_out(stopping=True)

    def _clock(self, wall: float) -> datetime:
        return self.origin + timedelta(hours=self.run_.sim_time(wall))

    async def _beat(self) -> None:
        if self.tags.heartbeat:
            self.heartbeat = (self.heartbeat + 1) % self.tags.heartbeat.wrap
            await self._write(self.tags.heartbeat.tag, self.heartbeat, self._clock(time.monotonic()))

    def _values(self, change: Change) -> list[tuple[str, Any]]:
        """(tag, value) pairs that a change writes (the roles table says which and how)."""
        if change.unit is None:
            if self.tags.release is None:
                return []
            context = Publishing(product_code=self._product_code, released=self.live.released)
            return published(self.tags, None, context, change.field, change.value)
        context = Publishing(self._state_code[change.unit], self._product_code)
        return published(self.tags, self._unit_tags[change.unit], context, change.field, change.value)

    async def _publish(self, change: Change) -> None:
        when = self.origin + timedelta(hours=change.time)
        for tag_name, v in self._values(change):
            await self._write(tag_name, v, when)
            self.published += 1

    async def _write(self, tag_name: str, v: Any, when: datetime) -> None:
        """Write a tag's new value (and keep it in the tag's history, for clients that were away)."""
        tag = self._tags[tag_name]
        dv = value(v, tag.vtype, when)
        await self.server.write_attribute_value(tag.node, dv)
        if tag.historized:
            await self._history.save_node_value(tag.node, dv)

    # ------------------------------------------------------------------------------------------ resume and output

    def _load_state(self) -> dict[str, Any] | None:
        if self.state_file is None or not self.state_file.exists():
            return None
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            same = state["spec_hash"] == self.spec.spec_hash and state["seed"] == self.seed
            origin = datetime.fromisoformat(state["origin"])
        except (OSError, ValueError, KeyError) as err:
            raise InputError(f"{self.state_file}: not an emulator state file ({err})") from None
        if not same:
            raise InputError(f"{self.state_file}: saved for another spec or seed; remove it to start afresh")
        self.origin = origin
        self.heartbeat = int(state.get("heartbeat", 0))
        return state

    async def _replay(self, state: dict[str, Any]) -> None:
        """Bring every tag to where the saved run had published it, each with the time it last changed, and
        its history with it (a plant server's history outlives a restart: a client that missed values
        just before the restart fetches them after it)."""
        rows = self.run_.skip_to(float(state["published_until"]))
        latest: dict[str, tuple[Any, float]] = {}
        for change in self.live.apply(rows):
            when = self.origin + timedelta(hours=change.time)
            for tag_name, v in self._values(change):
                latest[tag_name] = (v, change.time)
                tag = self._tags[tag_name]
                if tag.historized:
                    await self._history.save_node_value(tag.node, value(v, tag.vtype, when))
        for tag_name, (v, hours) in latest.items():
            tag = self._tags[tag_name]
            await self.server.write_attribute_value(tag.node, value(v, tag.vtype, self.origin + timedelta(hours=hours)))
        self._resumed_from = self.run_.now
        log.info("resumed at %.4f h (%d rows replayed)", self.run_.now, len(rows))

    def _save_state(self) -> None:
        """Save where to resume: the time published ``REPLAY_S`` seconds ago, so that a restart publishes again
        what may not have reached the clients (repeats are exact duplicates, which clients drop)."""
        if self.state_file is None:
            return
        wall = time.monotonic()
        self._published_at.append((wall, self.run_.now))
        while len(self._published_at) > 1 and self._published_at[1][0] <= wall - REPLAY_S:
            self._published_at.popleft()
        until = self._published_at[0][1] if self._published_at[0][0] <= wall - REPLAY_S else self._resumed_from
        state = {
            "spec_hash": self.spec.spec_hash,
            "seed": self.seed,
            "origin": self.origin.isoformat(),
            "published_until": until,
            "heartbeat": self.heartbeat,
        }
        tmp = self.state_file.with_name(f".{self.state_file.name}.tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def event_log(self) -> EventLog:
        """The emulator's own run (its whole event table), once the run has finished."""
        line = self.run_.line
        meta = line.log_meta(
            horizon=self.horizon,
            warmup=line.warmup if line.warmup < self.horizon else 0.0,  # a run stopped in its warm-up: all of it
            replications=1,
            seed=self.seed,
            spec_hash=line.spec_hash,
            extra={"origin": self.origin.isoformat()},
        )
        return EventLog(self.run_.table, meta)

    def _write_out(self, stopping: bool = False) -> None:
        """Write the run to ``out`` once it has ended; ``stopping`` (a signal) ends it where it stands first.

        ``out_note`` says what happened (and the log, as it happens)."""
        if self._written_out or self.out is None or not (self.run_.finished or stopping):
            return
        self._written_out = True
        if not self.run_.finished:
            if self.run_.now <= 0:
                self.out_note = f"stopped before the run began: nothing written to {self.out}"
                log.info(self.out_note)
                return
            self.horizon = self.run_.now  # the run as far as it went
            self.run_.stop()
        log_ = self.event_log()
        settings = {"replications": 1, "seed": self.seed, "horizon": self.horizon, "warmup": log_.meta.warmup}
        write_run(RunResult(self.spec, log_, compute_kpis(log_), "emulator", (), settings), self.out)
        stopped = " (stopped there)" if stopping and self.horizon < self.planned_horizon else ""
        self.out_note = f"emulator run written to {self.out}: {format_hours(self.horizon)} of plant time{stopped}"
        log.info(self.out_note)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
