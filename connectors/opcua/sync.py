"""Live plant data into the twin: subscribe to a plant's tags, keep them in the historian, compute KPIs.

    >>> sync = PlantSync(spec, tag_map, SyncOptions(ClientOptions("opc.tcp://plant:4840", ...), Path("plant.db")))
    >>> result = await sync.run(stop_event)       # until stopped, or until the plant clock reaches `until`
    >>> result.kpis.summary["oee"], result.drift  # the plant's KPIs (and, in shadow mode, twin vs plant)

At start the sync checks the map against the server: the namespace (by URI), every tag (exists,
right data type). It reads every tag once; the latest source time among these values is the
feed's time 0 (kept in the historian, so that a restarted sync goes on with the same clock). Then
it subscribes (every change queued on the server, with its source timestamp).

A value is acknowledged once the historian has committed it. Exact repeats (same tag, source time,
value and status: re-deliveries after a reconnect) are dropped. When the connection is lost the
sync marks a gap in the historian, reconnects with backoff (0.5 s doubling up to 30 s), fetches
from the server's history (HistoryRead) everything since the last value it had, reads every tag
again and subscribes again; a restarted sync does the same from where its historian ends.
Counters show whether anything was missed (a server without history keeps only current values).
A value the map cannot use (an unknown state code, a bad status) is logged, counted and stored;
the feed goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from connectors.opcua.forecasting import accuracy, make_forecast, score_forecast
from connectors.opcua.historian import Historian, HistorianWriter, to_us
from connectors.opcua.logsource import decode_history
from connectors.opcua.plantlog import Decoded
from connectors.opcua.shadow import Shadow, drift
from connectors.opcua.tagmap import TagMap, tag_map_text
from connectors.opcua.uabase import ClientOptions, connect, namespace_index
from twin.errors import InputError, Problem, SpecError
from twin.eventlog import EventLog
from twin.kpis.report import KpiReport, compute_kpis
from twin.spec.model import LineSpec

log = logging.getLogger(__name__)

_INTEGER_TYPES = {
    ua.ObjectIds.SByte,
    ua.ObjectIds.Byte,
    ua.ObjectIds.Int16,
    ua.ObjectIds.UInt16,
    ua.ObjectIds.Int32,
    ua.ObjectIds.UInt32,
    ua.ObjectIds.Int64,
    ua.ObjectIds.UInt64,
    ua.ObjectIds.Integer,
    ua.ObjectIds.UInteger,
}
RECENT = 512  # per tag: the last values kept to recognise exact repeats (re-deliveries after a restart)
_TYPE_NAMES = {"integer": _INTEGER_TYPES, "string": {ua.ObjectIds.String}, "boolean": {ua.ObjectIds.Boolean}}


@dataclass(frozen=True)
class SyncOptions:
    client: ClientOptions
    historian: Path
    retention_hours: float | None = None
    until: float | None = None  # plant hours after which the sync stops by itself
    warmup: float = 0.0
    shadow: bool = False
    seed: int = 1
    kpi_every: float = 5.0  # seconds between KPI refreshes
    publishing_ms: float = 25.0
    queue_size: int = 10000
    extra_tags: tuple[str, ...] = ()  # more tags to keep in the historian (no meaning for the event log)
    report: Any = None  # called with each KPI snapshot (the CLI prints it)
    measure_latency: bool = False  # keep commit time - source time of every value (benchmarks)
    forecast_every: float | None = None  # shadow mode: plant hours between forecasts (None: none)
    forecast_horizon: float = 24.0  # hours each forecast looks ahead
    forecast_replications: int = 30
    on_value: Any = None  # called with (tag, source_us, value, status) of each new value (the live USD scene)


@dataclass
class SyncStats:
    received: int = 0
    duplicates: int = 0
    backfilled: int = 0  # values fetched from the server's history after a gap
    reconnects: int = 0
    gaps: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass
class SyncResult:
    decoded: Decoded
    kpis: KpiReport
    twin_kpis: KpiReport | None
    drift: dict[str, Any] | None
    stats: SyncStats
    acknowledged: int
    forecasts: dict[str, Any] | None = None  # accuracy of the shadow twin's forecasts (``forecasting.accuracy``)


class Feed(Subscription):
    """A subscription that hands each publish response's values over in one call (no task per value)."""

    def __init__(self, client: Client, params: ua.CreateSubscriptionParameters, on_values: Any):
        super().__init__(client.uaclient.session, params, handler=None)
        self.on_values = on_values

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        message = publish_result.NotificationMessage
        if not message.NotificationData:
            return
        self.last_sequence_number = int(message.SequenceNumber)
        for notification in message.NotificationData:
            if isinstance(notification, ua.DataChangeNotification):
                self.on_values([(item.ClientHandle, item.Value) for item in notification.MonitoredItems])
            elif isinstance(notification, ua.StatusChangeNotification):
                log.warning("subscription status: %s", notification.Status)


class PlantSync:
    """One plant feed: connection, validation, subscription, historian, KPIs and shadow twin."""

    def __init__(self, spec: LineSpec, tags: TagMap, options: SyncOptions, map_source: str = "<tag map>"):
        self.spec, self.tags, self.options, self.map_source = spec, tags, options, map_source
        self.roles = tags.all_tags() | {t: "extra" for t in options.extra_tags}
        self.stats = SyncStats()
        self.writer: HistorianWriter | None = None
        self.tag_ids: dict[str, int] = {}
        self.origin_us: int | None = None
        self.plant_us = 0  # the latest source time received
        self.state = "starting"
        self._recent: dict[int, tuple[deque[tuple[int, Any, int]], set[tuple[int, Any, int]]]] = {}
        self._handles: dict[int, int] = {}
        self._last_us: dict[int, int] = {}  # tag id -> latest source time stored
        self._lost = asyncio.Event()
        self.shadow: Shadow | None = None
        self.last_snapshot: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ values

    def _accept(self, tag_id: int, dv: ua.DataValue, received_us: int) -> None:
        source = dv.SourceTimestamp or dv.ServerTimestamp
        source_us = to_us(source) if source is not None else received_us
        server_us = to_us(dv.ServerTimestamp) if dv.ServerTimestamp is not None else None
        raw = dv.Value.Value if dv.Value is not None else None
        value = raw if raw is None or isinstance(raw, bool | int | float | str) else str(raw)
        status = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
        key = (source_us, value, status)
        self.stats.received += 1
        if not self._remember(tag_id, key):
            self.stats.duplicates += 1
            return
        self.plant_us = max(self.plant_us, source_us)
        self.writer.put(tag_id, source_us, server_us, received_us, value, status)
        if self.options.on_value is not None:
            self.options.on_value(self._tag_names[tag_id], source_us, value, status)
        if source_us > self._last_us.get(tag_id, -1):
            self._last_us[tag_id] = source_us

    def _remember(self, tag_id: int, key: tuple[int, Any, int]) -> bool:
        """Keep ``key`` among the tag's recent values; False if it was there already (an exact repeat)."""
        recent = self._recent.get(tag_id)
        if recent is None:
            recent = self._recent[tag_id] = (deque(), set())
        order, seen = recent
        if key in seen:
            return False
        order.append(key)
        seen.add(key)
        if len(order) > RECENT:
            seen.discard(order.popleft())
        return True

    def _on_values(self, items: list[tuple[int, ua.DataValue]]) -> None:
        received_us = to_us(time.time())
        handles = self._handles
        for handle, dv in items:
            tag_id = handles.get(handle)
            if tag_id is not None:
                self._accept(tag_id, dv, received_us)

    # ------------------------------------------------------------------------------------------ connection

    async def _open(self) -> tuple[Client, dict[str, ua.NodeId]]:
        client = await connect(self.options.client, "sync")
        try:
            ns = await namespace_index(client, self.tags.namespace)
            nodes = {tag: ua.NodeId(tag, ns) for tag in self.roles}
            await self._check_types(client, nodes)
        except BaseException:
            await _quiet_disconnect(client)
            raise
        return client, nodes

    async def _check_types(self, client: Client, nodes: dict[str, ua.NodeId]) -> None:
        names = list(nodes)
        results = await client.read_attributes([client.get_node(nodes[n]) for n in names], ua.AttributeIds.DataType)
        expected = self._expected_types()
        problems = []
        for name, result in zip(names, results, strict=True):
            where = self.roles[name]
            if not result.StatusCode.is_good():
                problems.append(
                    Problem(self.map_source, where, f"tag {name!r} not found on the server ({result.StatusCode.name})")
                )
                continue
            dtype = result.Value.Value
            want = expected.get(name)
            if want and (dtype.NamespaceIndex != 0 or dtype.Identifier not in _TYPE_NAMES[want]):
                got = ua.ObjectIdNames.get(dtype.Identifier, str(dtype)) if dtype.NamespaceIndex == 0 else str(dtype)
                problems.append(Problem(self.map_source, where, f"tag {name!r} is {got}; expected {want}"))
        if problems:
            raise SpecError(problems)

    def _expected_types(self) -> dict[str, str]:
        out: dict[str, str] = {}
        t = self.tags
        if t.heartbeat:
            out[t.heartbeat.tag] = "integer"
        if t.release and t.release.count:
            out[t.release.count.tag] = "integer"
        for _s, _u, unit in t.units():
            codes = t.codes_for(unit)
            out[unit.state] = "string" if all(isinstance(c, str) for c in codes) else "integer"
            out[unit.done.tag] = "integer"
            for counter in (unit.count, unit.scrap, unit.reject):
                if counter:
                    out[counter.tag] = "integer"
            if unit.alarm:
                out[unit.alarm] = "boolean"
            if unit.product and t.products:
                out[unit.product] = "string" if all(isinstance(c, str) for c in t.products) else "integer"
        return out

    async def _read_all(self, client: Client, nodes: dict[str, ua.NodeId]) -> int:
        """Read every tag once and store the values; returns the latest source time among them."""
        names = list(nodes)
        received_us = to_us(time.time())
        values = await client.read_attributes([client.get_node(nodes[n]) for n in names], ua.AttributeIds.Value)
        latest = 0
        for name, dv in zip(names, values, strict=True):
            self._accept(self.tag_ids[name], dv, received_us)
            source = dv.SourceTimestamp or dv.ServerTimestamp
            if source is not None:
                latest = max(latest, to_us(source))
        return latest or received_us

    async def _backfill(self, client: Client, nodes: dict[str, ua.NodeId]) -> int:
        """Fetch from the server's history each tag's values since the last one stored (none from servers
        without history; nothing for tags never seen)."""
        received_us, fetched, without = to_us(time.time()), 0, 0
        for name, node_id in nodes.items():
            tag_id = self.tag_ids[name]
            since = self._last_us.get(tag_id)
            if since is None:
                continue
            start = datetime.fromtimestamp(since / 1e6, UTC)
            try:
                values = await client.get_node(node_id).read_raw_history(start, None, 0, return_bounds=False)
            except ua.UaError:
                without += 1
                continue
            for dv in values:
                self._accept(tag_id, dv, received_us)
            fetched += len(values)
        self.stats.backfilled += fetched
        if without:
            log.info("the server keeps no history of %d of %d tags", without, len(nodes))
        return fetched

    async def _catch_up(self, client: Client, nodes: dict[str, ua.NodeId], backfill: bool) -> int:
        """History since each tag's last value, current values, the subscription, history again (what changed
        while subscribing). Returns the latest source time among the current values (where a gap ends)."""
        if backfill:
            await self._backfill(client, nodes)
        latest = await self._read_all(client, nodes)
        await self._subscribe(client, nodes)
        if backfill:
            await self._backfill(client, nodes)
        return latest

    async def _subscribe(self, client: Client, nodes: dict[str, ua.NodeId]) -> Feed:
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=self.options.publishing_ms,
            RequestedLifetimeCount=10000,
            RequestedMaxKeepAliveCount=client.get_keepalive_count(self.options.publishing_ms),
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        feed = Feed(client, params, self._on_values)
        await feed.init()
        flt = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        names = list(nodes)
        self._handles = {}
        for i in range(0, len(names), 500):
            requests = []
            for name in names[i : i + 500]:
                request = feed._make_monitored_item_request(
                    client.get_node(nodes[name]),
                    ua.AttributeIds.Value,
                    flt,
                    self.options.queue_size,
                    ua.MonitoringMode.Reporting,
                    0.0,
                )
                self._handles[request.RequestedParameters.ClientHandle] = self.tag_ids[name]
                requests.append(request)
            results = await feed.create_monitored_items(requests)
            failed = [n for n, r in zip(names[i : i + 500], results, strict=True) if isinstance(r, ua.StatusCode)]
            if failed:
                raise InputError(f"the server refused to monitor {', '.join(failed[:5])}")
        return feed

    # ------------------------------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> SyncResult:
        opts = self.options
        client, nodes = await self._open()  # InputError / SpecError: exit code 2 before anything is written
        self.writer = HistorianWriter(opts.historian, opts.retention_hours, measure_latency=opts.measure_latency)
        h = self.writer.historian
        self.tag_ids = h.register_tags(self.roles)
        self._tag_names = {tag_id: name for name, tag_id in self.tag_ids.items()}
        meta = h.meta()
        self._load_recent(h)
        try:
            since = int(meta["plant_us"]) if meta.get("plant_us") else None  # a restarted sync catches up
            latest = await self._catch_up(client, nodes, backfill=since is not None)
            self.origin_us = int(meta.get("origin_us") or latest)
            h.set_meta(
                origin_us=self.origin_us,
                endpoint=opts.client.endpoint,
                line=self.spec.name,
                spec_hash=self.spec.spec_hash,
                map=self.map_source,
                namespace=self.tags.namespace,
                state="connected",
                warmup=opts.warmup,
                spec=self.spec.to_data(),  # the historian describes itself: calibrate and snapshot read it alone
                tag_map=tag_map_text(self.tags),
            )
            if since:  # the time it was away is a gap (filled from the server's history where it has one)
                self._gap(since, latest, "sync restarted")
            if opts.shadow:
                horizon = max(opts.until or 0.0, self.spec.horizon_hours, 24 * 365 * 10)
                self.shadow = Shadow(self.spec, opts.seed, horizon, opts.warmup)
            self.state = "connected"
            log.info("subscribed to %d tags at %s", len(nodes), opts.client.endpoint)
            client = await self._follow(client, nodes, stop)
        finally:
            await _quiet_disconnect(client)
            self.writer.close()
        return self._finish()

    async def _follow(self, client: Client, nodes: dict[str, ua.NodeId], stop: asyncio.Event) -> Client:
        """Run until stopped or `until`; reconnect whenever the connection drops."""
        self._lost = lost = asyncio.Event()
        client.connection_lost_callback = on_lost_factory(lost)
        next_kpis = time.monotonic() + self.options.kpi_every
        while not stop.is_set():
            if self.writer.failed:
                raise InputError(f"{self.options.historian}: the historian stopped writing ({self.writer.failed})")
            if self.options.until is not None and self.plant_hours() >= self.options.until:
                await asyncio.sleep(2 * self.options.publishing_ms / 1000)  # what is in flight lands
                break
            if lost.is_set() or client.uaclient.state.name in ("DISCONNECTED", "CLOSED"):
                client = await self._reconnect(client, nodes, stop)
                lost = self._lost
                client.connection_lost_callback = on_lost_factory(lost)
                continue
            if time.monotonic() >= next_kpis:
                next_kpis = time.monotonic() + self.options.kpi_every
                self._store(await asyncio.to_thread(self.snapshot))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
        return client

    async def _reconnect(self, client: Client, nodes: dict[str, ua.NodeId], stop: asyncio.Event) -> Client:
        self.state = "reconnecting"
        gap_start = self.plant_us
        log.warning("connection to %s lost; reconnecting", self.options.client.endpoint)
        await _quiet_disconnect(client)
        delay = 0.5
        while not stop.is_set():
            try:
                client, nodes2 = await self._open()
                latest = await self._catch_up(client, nodes2, backfill=True)
            except (TimeoutError, InputError, SpecError, OSError, ua.UaError) as err:
                log.warning("reconnect failed (%s); next try in %.1f s", err, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, 30.0)
                continue
            self.stats.reconnects += 1
            self._gap(gap_start, latest, "connection lost")
            self._lost = asyncio.Event()
            self.state = "connected"
            log.info("reconnected; gap marked from the last value before the loss to the first after it")
            return client
        return client

    def _gap(self, start_us: int, end_us: int, reason: str) -> None:
        self.stats.gaps.append((start_us, end_us))
        self.writer.historian.mark_gap(start_us, end_us, reason)

    def _load_recent(self, h: Historian) -> None:
        """The values at each tag's last stored time, so that their re-delivery after a restart is recognised."""
        for row in h.last_values().itertuples():
            tag_id = self.tag_ids.get(row.tag)
            if tag_id is not None:
                self._remember(tag_id, (int(row.source_us), row.value, int(row.status)))
                self._last_us[tag_id] = max(self._last_us.get(tag_id, 0), int(row.source_us))
        meta = h.meta()
        self.plant_us = int(meta.get("plant_us") or 0)

    def plant_hours(self) -> float:
        return max(self.plant_us - (self.origin_us or self.plant_us), 0) / 3.6e9

    # ------------------------------------------------------------------------------------------ KPIs

    def decode(self, end_us: int | None = None) -> Decoded:
        """The plant's event log so far, from the historian."""
        reader = Historian(self.options.historian, readonly=True)
        try:
            end = self.plant_us if end_us is None else end_us
            return decode_history(reader, self.spec, self.tags, self.origin_us, end, self.options.warmup)
        finally:
            reader.close()

    def snapshot(self, decoded: Decoded | None = None) -> dict[str, Any]:
        """Plant KPIs now, or at the end of ``decoded`` (and the twin's, in shadow mode); stored in the
        historian for the dashboard."""
        decoded = decoded or self.decode()
        hours = decoded.log.meta.horizon
        plant = compute_kpis(decoded.log).summary if hours > self.options.warmup else None
        twin = drift_ = None
        if self.shadow is not None and plant is not None:
            twin = compute_kpis(self.shadow.log_until(hours)).summary
            drift_ = drift(plant, twin)
        snap = {
            "plant_hours": hours,
            "plant": plant,
            "twin": twin,
            "drift": drift_,
            "received": self.stats.received,
            "acknowledged": self.writer.acknowledged,
            "duplicates": self.stats.duplicates,
            "bad_values": sum(decoded.bad_values.values()),
            "missed": sum(decoded.missed.values()),
            "reconnects": self.stats.reconnects,
            "state": self.state,
        }
        if self.shadow is not None and self.options.forecast_every:
            snap["forecasts"] = self._forecasts(decoded.log, decoded.log.meta.horizon)
        if decoded.bad_values:
            log.warning("bad values so far: %s", decoded.bad_values)
        return snap

    def _forecasts(self, plant_log: EventLog, hours: float) -> dict[str, Any]:
        """Score the forecasts whose horizon has passed; make those now due.

        Forecasts are made at whole multiples of ``forecast_every`` of plant time (past the warm-up),
        each from the plant's state at that time, however fast the plant's clock runs against the wall."""
        reader = Historian(self.options.historian, readonly=True)
        try:
            stored = reader.forecasts()
        finally:
            reader.close()
        opts = self.options
        every = opts.forecast_every or 0.0
        scores = [s for s in stored["score"] if s]
        due = stored[stored["score"].isna() & (stored["at_hours"] + stored["horizon"] <= hours + 1e-9)]
        new_scores = [(int(i), score_forecast(p, plant_log)) for i, p in zip(due["id"], due["predicted"], strict=True)]
        scores += [score for _, score in new_scores]
        last = float(stored["at_hours"].max()) if len(stored) else None
        k = max(1, math.ceil(opts.warmup / every - 1e-9)) if last is None else round(last / every) + 1
        new = []
        while k * every <= hours + 1e-9:
            made = make_forecast(
                self.spec, plant_log, k * every, opts.forecast_horizon, opts.forecast_replications, opts.seed
            )
            score = score_forecast(made, plant_log) if made["at"] + made["horizon"] <= hours + 1e-9 else None
            new.append((made, score))
            scores += [score] if score else []
            k += 1
        return {"new": new, "scores": new_scores, "accuracy": accuracy(scores), "made": len(stored) + len(new)}

    def _store(self, snap: dict[str, Any]) -> None:
        """Keep a snapshot in the historian (for the dashboard) and report it."""
        db = self.writer.historian
        forecasts = snap.pop("forecasts", None)
        if forecasts is not None:
            self._keep_forecasts(db, forecasts)
            snap["forecasts"] = {"made": forecasts["made"], **forecasts["accuracy"]}
        db.add_kpis(snap["plant_hours"], snap)
        db.set_meta(plant_us=self.plant_us, state=self.state, updated=datetime.now().isoformat(timespec="seconds"))
        self.last_snapshot = snap
        if self.options.report is not None:
            self.options.report(snap)

    @staticmethod
    def _keep_forecasts(db: Historian, forecasts: dict[str, Any]) -> None:
        for forecast_id, score in forecasts["scores"]:
            db.set_forecast_score(forecast_id, score)
        for made, score in forecasts["new"]:
            forecast_id = db.add_forecast(made["at"], made["horizon"], made)
            if score is not None:
                db.set_forecast_score(forecast_id, score)

    def _finish(self) -> SyncResult:
        """The plant's KPIs up to ``until``; the last snapshot (scored forecasts included) stored."""
        self.state = "stopped"
        end_us = self.plant_us
        if self.options.until is not None:
            end_us = min(end_us, self.origin_us + round(self.options.until * 3.6e9))
        decoded = self.decode(end_us)
        if decoded.bad_values or decoded.missed:
            log.warning("bad values: %s; counter steps missed: %s", decoded.bad_values, decoded.missed)
        kpis = compute_kpis(decoded.log)
        twin = drift_ = None
        if self.shadow is not None:
            twin = compute_kpis(self.shadow.log_until(decoded.log.meta.horizon))
            drift_ = drift(kpis.summary, twin.summary)
        self._store(self.snapshot(decoded))  # the feed's end, for the dashboard's Live page
        scored = (self.last_snapshot or {}).get("forecasts")
        return SyncResult(decoded, kpis, twin, drift_, self.stats, self.writer.acknowledged, scored)


def on_lost_factory(event: asyncio.Event) -> Any:
    async def on_lost(exc: Exception) -> None:
        event.set()

    return on_lost


async def _quiet_disconnect(client: Client) -> None:
    with contextlib.suppress(Exception):  # the connection may be gone already
        await asyncio.wait_for(client.disconnect(), timeout=3)
