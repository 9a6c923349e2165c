"""Live plant data into the twin: subscribe to a plant's tags, keep them in the historian, compute KPIs.

    >>> sync = PlantSync(spec, tag_map, SyncOptions(ClientOptions("opc.tcp://plant:4840", ...), Path("plant.db")))
    >>> result = await sync.run(stop_event)       # until stopped, or until the plant clock reaches `until`
    >>> result.kpis.summary["oee"], result.drift  # the plant's KPIs (and, in shadow mode, twin vs plant)

A sync is two parts: the ingest (``connectors.opcua.ingest``: connection, type checks, subscription,
dedup, historian writes, reconnect and backfill) and the view (``connectors.opcua.observer``: the
plant's event log decoded incrementally from what arrived since the last tick, KPIs, shadow twin,
forecasts, the stored view the dashboard reads). Every ``kpi_every`` seconds the view takes a tick:
its duration, the lag of the decoded state behind the newest value, the values per second, the
writer's queue and the historian's size are logged, stored with the KPIs and, with ``metrics_port``,
served as Prometheus text on ``http://127.0.0.1:PORT/metrics`` (``connectors.opcua.metrics``). The
decoder's state is checkpointed in the historian every ``checkpoint_every`` seconds, so that a
restarted sync decodes only what came after it, and old raw samples can be compacted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.opcua.historian import Historian
from connectors.opcua.ingest import Feed, Ingest, IngestStats, on_lost_factory, quiet_disconnect  # noqa: F401
from connectors.opcua.metrics import MetricsServer
from connectors.opcua.observer import PlantView, decode_historian
from connectors.opcua.plantlog import Decoded
from connectors.opcua.shadow import drift
from connectors.opcua.tagmap import TagMap
from connectors.opcua.uabase import ClientOptions
from twin.kpis.report import KpiReport, compute_kpis
from twin.spec.model import LineSpec

log = logging.getLogger(__name__)

SyncStats = IngestStats  # the name it had when the sync was one class


@dataclass(frozen=True)
class SyncOptions:
    client: ClientOptions
    historian: Path
    retention_hours: float | None = None  # raw samples kept this long, then compacted (``Historian.compact``)
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
    metrics_port: int | None = None  # serve /metrics (Prometheus text) on 127.0.0.1:PORT
    checkpoint_every: float = 300.0  # seconds between decoder checkpoints kept in the historian
    kpis_since: Any = None  # a calendar time (naive, UTC): also keep the KPIs since then (the view's ``since`` window)


@dataclass
class SyncResult:
    decoded: Decoded
    kpis: KpiReport
    twin_kpis: KpiReport | None
    drift: dict[str, Any] | None
    stats: IngestStats
    acknowledged: int
    forecasts: dict[str, Any] | None = None  # accuracy of the shadow twin's forecasts (``forecasting.accuracy``)
    windows: dict[str, Any] | None = None  # this shift's and the last 24 h's KPIs at the end (``running.RunningKpis``)


class PlantSync:
    """One plant feed: the ingest into the historian, and the view (KPIs, shadow twin, forecasts) over it."""

    def __init__(self, spec: LineSpec, tags: TagMap, options: SyncOptions, map_source: str = "<tag map>"):
        self.spec, self.tags, self.options, self.map_source = spec, tags, options, map_source
        self.ingest = Ingest(spec, tags, options, map_source)
        self.view: PlantView | None = None
        self.last_snapshot: dict[str, Any] | None = None
        self._last_checkpoint = time.monotonic()
        self._metrics: MetricsServer | None = None

    # the ingest's state, as the one-class sync had it
    @property
    def state(self) -> str:
        return self.ingest.state

    @property
    def stats(self) -> IngestStats:
        return self.ingest.stats

    @property
    def writer(self) -> Any:
        return self.ingest.writer

    @property
    def plant_us(self) -> int:
        return self.ingest.plant_us

    @property
    def origin_us(self) -> int | None:
        return self.ingest.origin_us

    def plant_hours(self) -> float:
        return self.ingest.plant_hours()

    @property
    def shadow(self) -> Any:
        """The shadow twin (``connectors.opcua.shadow.Shadow``) in shadow mode, once the feed has begun; else None."""
        return self.view.shadow if self.view is not None else None

    async def run(self, stop: asyncio.Event) -> SyncResult:
        opts = self.options
        if opts.metrics_port is not None:  # before connecting: a port in use is exit code 2 at once
            self._metrics = MetricsServer(opts.metrics_port, self.metrics)
            await self._metrics.start()
        ingest = self.ingest
        try:
            client, nodes = await ingest.open()  # InputError / SpecError: exit code 2 before anything is written
        except BaseException:
            await self._stop_metrics()
            raise
        ingest.start_writer()
        try:
            await ingest.begin(client, nodes)
            self.view = PlantView(self.spec, self.tags, ingest.origin_us, opts, str(opts.historian))
            client = await ingest.follow(client, nodes, stop, self._tick)
        finally:
            await quiet_disconnect(client)
            ingest.writer.close()
            await self._stop_metrics()
        try:
            return self._finish()
        finally:
            if self.view is not None:
                self.view.close()

    async def _stop_metrics(self) -> None:
        if self._metrics is not None:
            await self._metrics.stop()

    def counters(self) -> dict[str, Any]:
        """The ingest's counters, as a snapshot carries them."""
        s = self.ingest.stats
        writer = self.ingest.writer
        return {
            "received": s.received,
            "acknowledged": writer.acknowledged if writer else 0,
            "duplicates": s.duplicates,
            "reconnects": s.reconnects,
            "lost": s.lost,
            "queue": writer.queue_depth() if writer else 0,
            "state": self.ingest.state,
        }

    async def _tick(self) -> None:
        self._store(await asyncio.to_thread(self.snapshot))

    def snapshot(self) -> dict[str, Any]:
        """The plant's KPIs now (and the twin's, in shadow mode), with the service's own figures."""
        return self.view.tick(self.ingest.plant_us, self.counters())

    def decode(self, end_us: int | None = None) -> Decoded:
        """The plant's event log so far, from the historian (a whole decode, from its newest checkpoint)."""
        reader = Historian(self.options.historian, readonly=True)
        try:
            end = self.plant_us if end_us is None else end_us
            return decode_historian(reader, self.spec, self.tags, self.origin_us, end, self.options.warmup)
        finally:
            reader.close()

    def metrics(self) -> dict[str, Any]:
        """The figures ``/metrics`` serves: the last snapshot's service figures and the live counters."""
        snap = self.last_snapshot or {}
        out = {k: snap.get(k) for k in ("tick_s", "lag_s", "values_per_s", "historian_bytes", "rebuilds")}
        out.update({k: v for k, v in self.counters().items() if k != "state"})
        out["plant_hours"] = self.plant_hours()
        out["connected"] = 1 if self.ingest.state == "connected" else 0
        return out

    def _store(self, snap: dict[str, Any]) -> None:
        """Keep a snapshot in the historian (a compact row and the latest view) and report it."""
        db = self.writer.historian
        forecasts = snap.pop("forecasts", None)
        if forecasts is not None:
            self._keep_forecasts(db, forecasts)
            snap["forecasts"] = {"made": forecasts["made"], **forecasts["accuracy"]}
        db.add_kpis(snap["plant_hours"], snap)
        db.set_meta(
            plant_us=self.plant_us, state=self.ingest.state, updated=datetime.now().isoformat(timespec="seconds")
        )
        if self.view is not None and time.monotonic() - self._last_checkpoint >= self.options.checkpoint_every:
            self.save_checkpoint()
        self.last_snapshot = snap
        log.info(
            "tick %.3f s, lag %.1f plant s, %s values/s, queue %d, historian %.1f MB",
            snap.get("tick_s") or 0.0,
            snap.get("lag_s") or 0.0,
            f"{snap['values_per_s']:.0f}" if snap.get("values_per_s") is not None else "-",
            snap.get("queue") or 0,
            (snap.get("historian_bytes") or 0) / 1e6,
        )
        if self.options.report is not None:
            self.options.report(snap)

    def save_checkpoint(self) -> None:
        """Keep the decoder's state in the historian (a restart and compaction go on from it)."""
        observer = self.view.observer
        if observer.decoder is not None:
            self.writer.historian.save_checkpoint(observer.key, *observer.checkpoint())
        self._last_checkpoint = time.monotonic()

    @staticmethod
    def _keep_forecasts(db: Historian, forecasts: dict[str, Any]) -> None:
        for forecast_id, score in forecasts["scores"]:
            db.set_forecast_score(forecast_id, score)
        for made, score in forecasts["new"]:
            forecast_id = db.add_forecast(made["at"], made["horizon"], made)
            if score is not None:
                db.set_forecast_score(forecast_id, score)
        for made, score in forecasts.get("remade", ()):  # made again: late data corrected its inputs
            db.replace_forecast(made["at"], made, score)
        for at, score in forecasts.get("rescored", ()):  # scored again: late data corrected its horizon
            db.replace_forecast(at, None, score)

    def _finish(self) -> SyncResult:
        """The plant's KPIs up to ``until``; the last snapshot (scored forecasts included) and a checkpoint stored."""
        self.ingest.state = "stopped"
        end_us = self.plant_us
        if self.options.until is not None:
            end_us = min(end_us, self.origin_us + round(self.options.until * 3.6e9))
        view = self.view
        decoded = view.observer.advance(view.reader(), end_us)  # everything committed, incrementally
        if decoded.bad_values or decoded.missed:
            log.warning("bad values: %s; counter steps missed: %s", decoded.bad_values, decoded.missed)
        kpis = compute_kpis(decoded.log)
        snap = view.snapshot(end_us, self.counters(), complete=True)
        twin = view.twin_report(snap["plant_hours"])  # from the accumulators: the shadow keeps no whole log
        drift_ = drift(kpis.summary, twin.summary) if twin is not None else None
        snap.update(tick_s=view.tick_s, rebuilds=view.observer.rebuilds, lag_s=0.0)
        self._store(snap)  # the feed's end, for the dashboard's Live page (the writer's own connection stays open)
        self.save_checkpoint()
        scored = (self.last_snapshot or {}).get("forecasts")
        windows = (self.last_snapshot or {}).get("windows")
        return SyncResult(decoded, kpis, twin, drift_, self.stats, self.writer.acknowledged, scored, windows)
