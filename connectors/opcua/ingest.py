"""The ingest: connection, type checks, subscription, dedup, historian writes, reconnect and backfill.

    >>> ingest = Ingest(spec, tag_map, options, map_source)
    >>> client, nodes = await ingest.open()               # InputError / SpecError before anything is written
    >>> ingest.start_writer(); await ingest.begin(client, nodes)
    >>> client = await ingest.follow(client, nodes, stop, on_tick)   # on_tick every kpi_every seconds

At start the ingest checks the map against the server: the namespace (by URI), every tag (exists,
right data type: ``roles.expected_types``). It reads every tag once; the latest source time among
these values is the feed's time 0 (kept in the historian, so that a restarted sync goes on with the
same clock). Then it subscribes (every change queued on the server, with its source timestamp).

A value is acknowledged once the historian has committed it. Exact repeats (same tag, source time,
value and status: re-deliveries after a reconnect) are dropped. When the connection is lost the
ingest marks a gap in the historian and tries again at once, then after 0.25 s, doubling up to
``RECONNECT_MAX_S``; it fetches from the server's history (HistoryRead) everything since the last
value it had, reads every tag again and subscribes again; a restarted sync does the same from where
its historian ends. While it catches up, the jumps of the map's counters that count values one by one
(the heartbeat, finished batches, releases) are values lost (a server without history, or with too
short a one): counted in ``stats.lost`` and named in the gap's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Integral
from typing import TYPE_CHECKING, Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from connectors.opcua.historian import Historian, HistorianWriter, to_us
from connectors.opcua.roles import counters, expected_types
from connectors.opcua.tagmap import TagMap, tag_map_text
from connectors.opcua.uabase import connect, namespace_index
from twin.errors import InputError, Problem, SpecError
from twin.spec.model import LineSpec

if TYPE_CHECKING:
    from connectors.opcua.sync import SyncOptions

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
RECONNECT_FIRST_S = 0.25  # the second try after a lost connection (the first is at once)
RECONNECT_MAX_S = 5.0  # the longest wait between tries
LOST_ROLES = ("heartbeat", "done", "release.count")  # counters that step once per value: their jumps are lost values
_TYPE_NAMES = {"integer": _INTEGER_TYPES, "string": {ua.ObjectIds.String}, "boolean": {ua.ObjectIds.Boolean}}


@dataclass
class IngestStats:
    received: int = 0
    duplicates: int = 0
    backfilled: int = 0  # values fetched from the server's history after a gap
    reconnects: int = 0
    lost: int = 0  # values lost over gaps on servers without history (counter jumps)
    gaps: list[tuple[int, int | None]] = field(default_factory=list)


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


class Ingest:
    """One plant feed into the historian (see the module's docstring)."""

    def __init__(self, spec: LineSpec, tags: TagMap, options: SyncOptions, map_source: str = "<tag map>"):
        self.spec, self.tags, self.options, self.map_source = spec, tags, options, map_source
        self.roles = tags.all_tags() | {t: "extra" for t in options.extra_tags}
        self.stats = IngestStats()
        self._counters = {t: c for t, c in counters(tags).items() if c[0] in LOST_ROLES}
        self._value: dict[int, Any] = {}  # counter tag id -> its latest value received
        self._counter_ids: set[int] = set()
        self._wraps: dict[int, int] = {}  # counter tag id -> wrap
        self._catching_up = False  # after a gap: counter jumps not filled by history are values lost
        self._lost_now = 0
        self._gap_from: dict[int, Any] = {}  # counter tag id -> its value before the gap
        self._gap_seen: dict[int, set[int]] = {}  # counter tag id -> values received while catching up
        self.writer: HistorianWriter | None = None
        self.tag_ids: dict[str, int] = {}
        self.origin_us: int | None = None
        self.plant_us = 0  # the latest source time received
        self.state = "starting"
        self._recent: dict[int, tuple[deque[tuple[int, Any, int]], set[tuple[int, Any, int]]]] = {}
        self._handles: dict[int, int] = {}
        self._last_us: dict[int, int] = {}  # tag id -> latest source time stored
        self._lost = asyncio.Event()

    # ------------------------------------------------------------------------------------------ values

    def _accept(self, tag_id: int, dv: ua.DataValue, received_us: int, force: bool = False) -> bool:
        """Store a value (not an exact repeat of a recent one, unless ``force``); True if it was new."""
        source = dv.SourceTimestamp or dv.ServerTimestamp
        source_us = to_us(source) if source is not None else received_us
        server_us = to_us(dv.ServerTimestamp) if dv.ServerTimestamp is not None else None
        raw = dv.Value.Value if dv.Value is not None else None
        value = raw if raw is None or isinstance(raw, bool | int | float | str) else str(raw)
        status = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
        key = (source_us, value, status)
        self.stats.received += 1
        if not self._remember(tag_id, key) and not force:
            self.stats.duplicates += 1
            return False
        self.plant_us = max(self.plant_us, source_us)
        self.writer.put(tag_id, source_us, server_us, received_us, value, status)
        if self.options.on_value is not None:
            self.options.on_value(self._tag_names[tag_id], source_us, value, status)
        if source_us > self._last_us.get(tag_id, -1):
            self._last_us[tag_id] = source_us
            if tag_id in self._counter_ids:
                self._value[tag_id] = value
        if self._catching_up and tag_id in self._counter_ids and _count(value):
            self._gap_seen.setdefault(tag_id, set()).add(int(value))
        return True

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
            await quiet_disconnect(client)
            raise
        return client, nodes

    async def _check_types(self, client: Client, nodes: dict[str, ua.NodeId]) -> None:
        names = list(nodes)
        results = await client.read_attributes([client.get_node(nodes[n]) for n in names], ua.AttributeIds.DataType)
        expected = expected_types(self.tags)
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

    async def _backfill(
        self, client: Client, nodes: dict[str, ua.NodeId], since_us: dict[int, int] | None = None
    ) -> int:
        """Fetch from the server's history each tag's values since the last one stored, or since ``since_us``
        (none from servers without history; nothing for tags never seen)."""
        received_us, fetched, without = to_us(time.time()), 0, 0
        for name, node_id in nodes.items():
            tag_id = self.tag_ids[name]
            since = (self._last_us if since_us is None else since_us).get(tag_id)
            if since is None:
                continue
            start = datetime.fromtimestamp(since / 1e6, UTC)
            try:
                values = await client.get_node(node_id).read_raw_history(start, None, 0, return_bounds=False)
            except ua.UaError:
                without += 1
                continue
            before, late = self._last_us.get(tag_id, -1), None
            for dv in values:
                source_us = to_us(dv.SourceTimestamp or dv.ServerTimestamp or start)
                if self._accept(tag_id, dv, received_us) and source_us <= before:
                    late = source_us if late is None else min(late, source_us)
            if late is not None:  # a value older than one stored already (made at the same instant as the current
                # value read, or one the subscription brought): store the server's order again from there, so that
                # the last value stored at each instant is the server's last
                for dv in values:
                    if to_us(dv.SourceTimestamp or dv.ServerTimestamp or start) >= late:
                        self._accept(tag_id, dv, received_us, force=True)
                log.info("%s: values of one instant arrived out of order; stored again in the server's order", name)
            fetched += len(values)
        self.stats.backfilled += fetched
        if without:
            log.info("the server keeps no history of %d of %d tags", without, len(nodes))
        return fetched

    async def _catch_up(self, client: Client, nodes: dict[str, ua.NodeId], backfill: bool) -> int:
        """History since each tag's last value, current values, the subscription, history again (what changed
        while subscribing). Returns the latest source time among the current values (where a gap ends).

        The second history read starts where the first ended, not at the current values just read: what the
        server published between the two reads is fetched too."""
        self._catching_up = backfill
        self._gap_from = {t: v for t, v in self._value.items() if _count(v)}
        self._gap_seen = {}
        try:
            since: dict[int, int] = {}
            if backfill:
                await self._backfill(client, nodes)
                since = dict(self._last_us)
            latest = await self._read_all(client, nodes)
            await self._subscribe(client, nodes)
            if backfill:
                await self._backfill(client, nodes, since)
        finally:
            self._catching_up = False
        if backfill:
            self._count_lost()
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

    async def open(self) -> tuple[Client, dict[str, ua.NodeId]]:
        """Connect and check the map against the server (InputError / SpecError: nothing written yet)."""
        return await self._open()

    def start_writer(self) -> Historian:
        """Open the historian for writing, register the tags, take up where a previous sync ended."""
        opts = self.options
        self.writer = HistorianWriter(opts.historian, opts.retention_hours, measure_latency=opts.measure_latency)
        h = self.writer.historian
        self.tag_ids = h.register_tags(self.roles)
        self._tag_names = {tag_id: name for name, tag_id in self.tag_ids.items()}
        self._wraps = {self.tag_ids[t]: wrap for t, (_role, wrap) in self._counters.items() if t in self.tag_ids}
        self._counter_ids = set(self._wraps)
        self._load_recent(h)
        return h

    async def begin(self, client: Client, nodes: dict[str, ua.NodeId]) -> None:
        """Catch up (history since a previous sync, current values, the subscription); fix the feed's time 0."""
        opts = self.options
        h = self.writer.historian
        meta = h.meta()
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
            self._gap(since, latest, "sync restarted", self._take_lost())
        self.state = "connected"
        log.info("subscribed to %d tags at %s", len(nodes), opts.client.endpoint)

    def _count_lost(self) -> None:
        """After catching up: a once-per-value counter's step over the gap of more than one, less the values in
        between that history or the subscription brought, is values lost (a step of more than half its wrap is a
        counter that went back or was reset, not a loss)."""
        for tag_id, old in self._gap_from.items():
            new, wrap = self._value.get(tag_id), self._wraps[tag_id]
            if not _count(new):
                continue
            step = (int(new) - int(old)) % wrap
            if 1 < step <= wrap // 2:
                seen = self._gap_seen.get(tag_id, set())
                between = sum(1 for k in range(1, step) if (int(old) + k) % wrap in seen)
                self._lost_now += step - 1 - between

    def _take_lost(self) -> int:
        lost, self._lost_now = self._lost_now, 0
        self.stats.lost += lost
        return lost

    async def follow(
        self,
        client: Client,
        nodes: dict[str, ua.NodeId],
        stop: asyncio.Event,
        on_tick: Callable[[], Awaitable[None]],
    ) -> Client:
        """Run until stopped or `until`; reconnect whenever the connection drops; ``on_tick`` every ``kpi_every``."""
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
                await on_tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
        return client

    async def _reconnect(self, client: Client, nodes: dict[str, ua.NodeId], stop: asyncio.Event) -> Client:
        self.state = "reconnecting"
        gap_start = self.plant_us
        log.warning("connection to %s lost; reconnecting", self.options.client.endpoint)
        await quiet_disconnect(client)
        delay = 0.0  # the first try at once, then RECONNECT_FIRST_S doubling up to RECONNECT_MAX_S
        while not stop.is_set():
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    break
            try:
                client, nodes2 = await self._open()
                latest = await self._catch_up(client, nodes2, backfill=True)
            except (TimeoutError, InputError, SpecError, OSError, ua.UaError) as err:
                delay = min(max(delay * 2, RECONNECT_FIRST_S), RECONNECT_MAX_S)
                log.warning("reconnect failed (%s); next try in %.2f s", err, delay)
                continue
            self.stats.reconnects += 1
            self._gap(gap_start, latest, "connection lost", self._take_lost())
            self._lost = asyncio.Event()
            self.state = "connected"
            log.info("reconnected; gap marked from the last value before the loss to the first after it")
            return client
        return client

    def _gap(self, start_us: int, end_us: int, reason: str, lost: int = 0) -> None:
        self.stats.gaps.append((start_us, end_us))
        if lost:
            reason += f" ({lost} values lost: the server keeps no history)"
            log.warning("%d values lost over the gap: the server keeps no history of them", lost)
        self.writer.historian.mark_gap(start_us, end_us, reason)

    def _load_recent(self, h: Historian) -> None:
        """The values at each tag's last stored time, so that their re-delivery after a restart is recognised."""
        for row in h.last_values().itertuples():
            tag_id = self.tag_ids.get(row.tag)
            if tag_id is not None:
                self._remember(tag_id, (int(row.source_us), row.value, int(row.status)))
                self._last_us[tag_id] = max(self._last_us.get(tag_id, 0), int(row.source_us))
                if tag_id in self._counter_ids:  # the counters' values where the previous sync ended
                    self._value[tag_id] = row.value
        meta = h.meta()
        self.plant_us = int(meta.get("plant_us") or 0)

    def plant_hours(self) -> float:
        return max(self.plant_us - (self.origin_us or self.plant_us), 0) / 3.6e9


def _count(value: Any) -> bool:
    """An integer counter value (numpy's included; not a boolean)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def on_lost_factory(event: asyncio.Event) -> Any:
    async def on_lost(exc: Exception) -> None:
        event.set()

    return on_lost


async def quiet_disconnect(client: Client) -> None:
    with contextlib.suppress(Exception):  # the connection may be gone already
        await asyncio.wait_for(client.disconnect(), timeout=3)
