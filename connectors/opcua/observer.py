"""The observer: the plant's event log, KPIs, shadow twin and forecasts, advanced by what arrived since its last step.

    >>> observer = Observer(spec, tags, origin_us, warmup=0.0)
    >>> decoded = observer.advance(historian, end_us)      # reads only the samples that arrived since the last call
    >>> observer.cursor, observer.decoder.watermark_us     # the last sample read (seq), the plant time decoded
    >>> historian.save_checkpoint(observer.key, *observer.checkpoint())   # a restart goes on from here

Each step reads the samples that arrived after the last one read (``seq``) and feeds them to a
streaming ``PlantDecoder``; its cost is in proportion to them, not to the history stored. A sample
that arrives late (its source time at or before what was decoded: a reconnect's backfill, a commit
split at a tick) rolls the decoder back to the newest in-memory mark before it and decodes again
from there (``rebuilds`` counts them). At start the observer takes up the newest checkpoint the
historian keeps (when no sample arrived since with a time it covers) and decodes only what came
after it, so a restart, or a historian whose old samples were compacted, costs what is new.
``decode_historian`` is the same in one call: the event log of a whole historian.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from connectors.opcua.forecasting import accuracy, make_forecast, score_forecast
from connectors.opcua.historian import Historian
from connectors.opcua.plantlog import US_PER_HOUR, Decoded, PlantDecoder
from connectors.opcua.running import RunningKpis
from connectors.opcua.shadow import Shadow, drift
from connectors.opcua.tagmap import TagMap, tag_map_text
from twin.clock import RunClock, shift_windows
from twin.eventlog import EventLog
from twin.kpis.report import KpiReport
from twin.spec.model import LineSpec

log = logging.getLogger(__name__)

MARKS = 24  # in-memory rollback marks kept (older ones thinned: every other one goes)


def checkpoint_key(spec: LineSpec, tags: TagMap, origin_us: int) -> str:
    """What a checkpoint is valid for: the line, the tag map and the feed's time 0."""
    text = f"{spec.spec_hash}\n{tag_map_text(tags)}\n{origin_us}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Observer:
    """The plant's decoded state, advanced incrementally from a historian (see the module's docstring)."""

    def __init__(self, spec: LineSpec, tags: TagMap, origin_us: int, warmup: float = 0.0):
        self.spec, self.tags, self.origin_us, self.warmup = spec, tags, int(origin_us), warmup
        self.key = checkpoint_key(spec, tags, self.origin_us)
        self.names = list(tags.all_tags())
        self.decoder: PlantDecoder | None = None
        self.cursor = 0  # the seq of the last sample read
        self.marks: list[tuple[int | None, int, dict[str, Any]]] = []  # (watermark_us, cursor, decoder mark)
        self.rebuilds = 0  # late samples taken in by decoding again from a mark
        self.resumed_from: int | None = None  # the checkpoint's watermark a start took up, if any
        self.corrected_us: int | None = None  # the earliest source time of late samples since ``take_correction``

    def advance(self, h: Historian, end_us: int | None = None, extra: dict[str, Any] | None = None) -> Decoded:
        """Read what arrived since the last step, decode it; the event log up to ``end_us``."""
        self.step(h)
        gaps = [[str(g.start), str(g.end)] for g in h.gaps().itertuples()]
        return self.decoder.decoded(end_us, {"gaps": gaps, **(extra or {})})

    def step(self, h: Historian) -> PlantDecoder:
        """Read what arrived since the last step and decode it (the event log is not built)."""
        if self.decoder is None:
            self._start(h, None)
        else:
            new = h.samples_after(self.names, self.cursor)
            if len(new):
                top = int(new["seq"].max())
                earliest = int(new["source_us"].min())
                watermark = self.decoder.watermark_us
                if watermark is not None and earliest <= watermark:
                    self._rollback(h, earliest, top)
                else:
                    self.decoder.feed(new)
                self.cursor = top
        self._mark()
        return self.decoder

    def checkpoint(self) -> tuple[int | None, int, bytes]:
        """(watermark_us, seq, data) for ``Historian.save_checkpoint``."""
        return self.decoder.watermark_us, self.cursor, self.decoder.state()

    def _start(self, h: Historian, before_us: int | None) -> None:
        """A decoder from the newest usable checkpoint (or from nothing), fed every sample after it."""
        top = h.max_seq()
        stored = h.latest_checkpoint(self.key)
        decoder, after = None, None
        if stored is not None:
            data, watermark, seq = stored
            usable = (before_us is None or watermark is None or watermark < before_us) and not h.late_since(
                seq, watermark
            )
            if usable:
                try:
                    decoder = PlantDecoder.from_state(self.spec, self.tags, data, self.warmup)
                    after = watermark
                    self.resumed_from = watermark
                except ValueError as err:
                    log.warning("the historian's checkpoint is not usable (%s); decoding from the start", err)
        if decoder is None:
            decoder = PlantDecoder(self.spec, self.tags, self.origin_us, self.warmup)
        fed = decoder.feed(h.samples_after(self.names, 0, after_us=after, upto_seq=top))
        self.decoder, self.cursor, self.marks = decoder, top, []
        if after is not None:
            log.info("resumed from the historian's checkpoint (%d samples decoded after it)", fed)

    def take_correction(self) -> int | None:
        """The earliest source time (us) of the late samples taken in since the last call: the event log from there
        on was decoded again (None: no late sample)."""
        corrected, self.corrected_us = self.corrected_us, None
        return corrected

    def _rollback(self, h: Historian, earliest: int, top: int) -> None:
        self.rebuilds += 1
        self.corrected_us = earliest if self.corrected_us is None else min(self.corrected_us, earliest)
        for i in range(len(self.marks) - 1, -1, -1):
            watermark, _cursor, mark = self.marks[i]
            if watermark is None or watermark < earliest:
                self.decoder.restore(mark)
                del self.marks[i + 1 :]
                self.decoder.feed(h.samples_after(self.names, 0, after_us=watermark, upto_seq=top))
                return
        log.info("a sample older than every rollback mark arrived; decoding from the stored checkpoint")
        self._start(h, earliest)

    def _mark(self) -> None:
        self.marks.append((self.decoder.watermark_us, self.cursor, self.decoder.checkpoint()))
        if len(self.marks) > MARKS:
            half = len(self.marks) // 2
            self.marks = self.marks[:half:2] + self.marks[half:]


def plant_clock(spec: LineSpec, origin_us: int) -> RunClock:
    """The plant's clock: time 0 at the feed's origin (UTC), with the spec's shift calendars."""
    start = datetime.fromtimestamp(origin_us / 1e6, tz=UTC).replace(tzinfo=None)
    return RunClock(start, shift_windows(getattr(spec, "calendars", {}) or {}))


def decode_historian(
    h: Historian,
    spec: LineSpec,
    tags: TagMap,
    origin_us: int,
    end_us: int,
    warmup: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> Decoded:
    """The plant's event log of a whole historian (from its newest checkpoint and the samples after it)."""
    return Observer(spec, tags, origin_us, warmup).advance(h, end_us, extra)


class PlantView:
    """KPIs of the plant (and of the shadow twin), forecasts and the service's own figures, each tick.

    ``tick`` is called by the sync with the ingest's counters; it returns the snapshot the sync stores
    (``Historian.add_kpis``: a compact row and the latest view) and reports. The KPIs come from running
    accumulators (``running.RunningKpis``) fed only the rows decoded or simulated since the last tick, so a
    tick's cost does not grow with the run; the event log is built only when a forecast is made or scored."""

    def __init__(self, spec: LineSpec, tags: TagMap, origin_us: int, options: Any, historian: str):
        self.spec, self.options, self.historian = spec, options, historian
        self.observer = Observer(spec, tags, origin_us, options.warmup)
        self.clock = plant_clock(spec, origin_us)
        since = getattr(options, "kpis_since", None)
        self.since = None if since is None else self.clock.hours(since)  # plant hours of --kpis-since
        self.shadow: Shadow | None = None
        self.twin_kpis: RunningKpis | None = None
        if options.shadow:
            horizon = max(options.until or 0.0, spec.horizon_hours, 24 * 365 * 10)
            self.shadow = Shadow(spec, options.seed, horizon, options.warmup)
            self.twin_kpis = RunningKpis(self.shadow.meta(0.0), self.clock, self.since, marks=True)
        self.plant_kpis: RunningKpis | None = None
        self._fed_decoder: tuple[int, int] | None = None  # (decoder id, rebuilds) the plant's accumulators follow
        self._forecast_state: dict[str, Any] | None = None
        self._reader: Historian | None = None
        self._last_wall: float | None = None
        self._last_received = 0
        self.tick_s = 0.0

    def reader(self) -> Historian:
        if self._reader is None:
            self._reader = Historian(self.historian, readonly=True)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def tick(self, end_us: int, counters: dict[str, Any]) -> dict[str, Any]:
        """Advance to ``end_us`` (the newest source time received) and take a snapshot; timed."""
        started = time.perf_counter()
        self.observer.step(self.reader())
        snap = self.snapshot(end_us, counters)
        self.tick_s = time.perf_counter() - started
        wall = time.monotonic()
        received = int(counters.get("received", 0))
        rate = None
        if self._last_wall is not None and wall > self._last_wall:
            rate = (received - self._last_received) / (wall - self._last_wall)
        self._last_wall, self._last_received = wall, received
        watermark = self.observer.decoder.watermark_us or end_us
        snap.update(
            tick_s=self.tick_s,
            lag_s=max(end_us - watermark, 0) / 1e6,  # plant seconds the decoded state trails the newest value
            values_per_s=rate,
            historian_bytes=self.reader().size_bytes(),
            rebuilds=self.observer.rebuilds,
        )
        return snap

    def snapshot(self, end_us: int, counters: dict[str, Any], complete: bool = False) -> dict[str, Any]:
        """Plant KPIs at ``end_us`` (and the twin's, in shadow mode) with the ingest's counters, from accumulators fed
        the rows decoded since the last snapshot; the same KPIs for this shift and the last 24 hours (``windows``).

        Forecasts are made and scored only up to what has been decoded (the decoder's watermark), since values
        received may not be stored yet; ``complete``: the feed has ended and everything up to its end is in."""
        decoder = self.observer.decoder
        hours = max((end_us - decoder.origin_us) / US_PER_HOUR, 0.0)
        plant_kpis = self._plant_kpis(decoder, hours)
        live = hours > self.options.warmup
        plant = plant_kpis.summary(hours, decoder.batch_product) if live else None
        windows = plant_kpis.windows(hours, decoder.batch_product)
        for w in windows.values():
            w["plant"] = w.pop("figures")
        twin = drift_ = None
        if self.twin_kpis is not None:
            self.twin_kpis.prepare(hours)
            self.shadow.advance(hours)
            self.twin_kpis.feed(self.shadow.take("kpis"), settled=self.shadow.settled())
            if live:
                twin = self.twin_kpis.summary(hours)
                drift_ = drift(plant, twin)
                for name, w in self.twin_kpis.windows(hours).items():
                    windows[name]["twin"] = w["figures"]
        snap = {
            "plant_hours": hours,
            "marks": plant_kpis.take_marks(),  # the plant's running totals at whole hours (Historian.add_kpis)
            "totals": plant_kpis.acc.totals(hours),  # and now: a window since any whole hour (the Live page)
            "twin_marks": self.twin_kpis.take_marks() if self.twin_kpis is not None else [],  # the same of the twin
            "twin_totals": self.twin_kpis.acc.totals(hours) if self.twin_kpis is not None else None,
            "plant": plant,
            "twin": twin,
            "drift": drift_,
            "windows": windows,
            **counters,
            "bad_values": sum(decoder.bad.values()),
            "missed": sum(decoder.missed.values()),
        }
        if self.shadow is not None and self.options.forecast_every:
            known = hours if complete else min(hours, decoder.hours())
            snap["forecasts"] = self._forecasts(lambda: decoder.decoded(end_us).log, known)
        if decoder.bad:
            log.warning("bad values so far: %s", dict(decoder.bad))
        return snap

    def twin_report(self, hours: float) -> KpiReport | None:
        """The shadow twin's KPIs of (warm-up, ``hours``] from its accumulators (after a snapshot at ``hours``): what
        ``compute_kpis`` of its whole log gives, without holding that log."""
        if self.twin_kpis is None:
            return None
        row = self.twin_kpis.acc.row(hours)
        per_replication = pd.DataFrame([row]).set_index("replication") if row is not None else pd.DataFrame()
        return KpiReport(per_replication, self.twin_kpis.summary(hours))

    def _plant_kpis(self, decoder: PlantDecoder, hours: float) -> RunningKpis:
        """The plant's accumulators fed the rows decoded since the last call (all of them again after a rollback)."""
        key = (id(decoder), self.observer.rebuilds)
        if self.plant_kpis is None or key != self._fed_decoder or len(decoder.rows) < self.plant_kpis.rows:
            before = self.plant_kpis
            self.plant_kpis = RunningKpis(decoder.meta(0.0), self.clock, self.since, marks=True)
            corrected = self.observer.corrected_us  # a rollback: the hourly totals before it stand as stored
            if before is not None and id(decoder) == (self._fed_decoder or (None,))[0] and corrected is not None:
                hour = math.floor((corrected - decoder.origin_us) / US_PER_HOUR - 1e-9)
                self.plant_kpis.skip_marks_upto(min(hour, before.last_mark))
            self._fed_decoder = key
        kpis = self.plant_kpis
        kpis.prepare(hours)
        kpis.feed(decoder.rows_table(kpis.rows, hours), settled=decoder.hours())
        return kpis

    def _forecasts(self, plant_log: Callable[[], EventLog], hours: float) -> dict[str, Any]:
        """Score the forecasts whose horizon has passed; make those now due (``plant_log`` builds the plant's log,
        called only when one is); make again those whose inputs late samples have corrected since.

        Forecasts are made at whole multiples of ``forecast_every`` of plant time (past the warm-up),
        each from the plant's state at that time, however fast the plant's clock runs against the wall.
        The stored forecasts are read once; later ticks read only those due and not yet scored.

        Late data: a forecast is made from what has been decoded, and a value with an earlier source time may
        still arrive (a reconnect's backfill; tags whose values reach the historian out of order, by as many plant
        hours as a loaded machine lets a fast plant run ahead). When the observer takes one in
        (``take_correction``: the log from time c on was decoded again), every stored forecast made at or after c
        is made again from the corrected log (``remade`` counts it; the stored one is replaced) and every one
        scored over a horizon that reaches past c is scored again: scores always use the latest forecast and the
        latest log. Which forecasts those are, the historian says (``forecasts_reaching``), however late the
        values came."""
        reader, opts = self.reader(), self.options
        every = opts.forecast_every or 0.0
        if self._forecast_state is None:
            stored = reader.forecasts()
            self._forecast_state = {
                "scores": {float(a): s for a, s in zip(stored["at_hours"], stored["score"], strict=True) if s},
                "made": len(stored),
                "last": float(stored["at_hours"].max()) if len(stored) else None,
            }
        state = self._forecast_state
        scores = state["scores"]
        corrected_us = self.observer.take_correction()
        touched, c = {}, math.inf  # at -> (prediction, score) of the forecasts late values from c on concern
        if corrected_us is not None:
            c = (corrected_us - self.observer.origin_us) / US_PER_HOUR - 1e-9
            reached = reader.forecasts_reaching(c)
            touched = {float(a): (p, s) for a, p, s in zip(reached["at_hours"], reached["predicted"],
                                                            reached["score"], strict=True)}  # fmt: skip
        remake = [at for at in touched if at >= c]
        rescore = [at for at, (_, score) in touched.items() if at < c and score is not None]
        due = reader.forecasts_due(hours + 1e-9)
        due = due[~due["at_hours"].isin(remake)]  # their stored prediction is replaced below
        last = state["last"]
        k = max(1, math.ceil(opts.warmup / every - 1e-9)) if last is None else round(last / every) + 1
        wanted = len(due) or remake or rescore or k * every <= hours + 1e-9
        log_: EventLog | None = plant_log() if wanted else None

        def scored(made: dict[str, Any]) -> dict[str, Any] | None:
            return score_forecast(made, log_) if made["at"] + made["horizon"] <= hours + 1e-9 else None

        remade = []
        for at in remake:
            before = touched[at][0]
            made = make_forecast(self.spec, log_, at, before["horizon"], opts.forecast_replications, opts.seed)
            made["remade"] = int(before.get("remade", 0)) + 1
            score = scored(made)
            scores.pop(at, None)
            if score:
                scores[at] = score
            remade.append((made, score))
        rescored = []
        for at in rescore:
            scores[at] = score_forecast(touched[at][0], log_)
            rescored.append((at, scores[at]))
        new_scores = []
        for i, at, p in zip(due["id"], due["at_hours"], due["predicted"], strict=True):
            scores[float(at)] = score_forecast(p, log_)
            new_scores.append((int(i), scores[float(at)]))
        new = []
        while k * every <= hours + 1e-9:
            made = make_forecast(
                self.spec, log_, k * every, opts.forecast_horizon, opts.forecast_replications, opts.seed
            )
            score = scored(made)
            new.append((made, score))
            if score:
                scores[made["at"]] = score
            state["last"] = k * every
            k += 1
        state["made"] += len(new)
        return {
            "new": new,
            "scores": new_scores,
            "remade": remade,
            "rescored": rescored,
            "accuracy": accuracy(list(scores.values())),
            "made": state["made"],
        }
