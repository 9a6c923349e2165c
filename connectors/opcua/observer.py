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
from typing import Any

from connectors.opcua.forecasting import accuracy, make_forecast, score_forecast
from connectors.opcua.historian import Historian
from connectors.opcua.plantlog import Decoded, PlantDecoder
from connectors.opcua.shadow import Shadow, drift
from connectors.opcua.tagmap import TagMap, tag_map_text
from twin.eventlog import EventLog
from twin.kpis.report import compute_kpis
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

    def advance(self, h: Historian, end_us: int | None = None, extra: dict[str, Any] | None = None) -> Decoded:
        """Read what arrived since the last step, decode it; the event log up to ``end_us``."""
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
        gaps = [[str(g.start), str(g.end)] for g in h.gaps().itertuples()]
        return self.decoder.decoded(end_us, {"gaps": gaps, **(extra or {})})

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

    def _rollback(self, h: Historian, earliest: int, top: int) -> None:
        self.rebuilds += 1
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
    (``Historian.add_kpis``: a compact row and the latest view) and reports."""

    def __init__(self, spec: LineSpec, tags: TagMap, origin_us: int, options: Any, historian: str):
        self.spec, self.options, self.historian = spec, options, historian
        self.observer = Observer(spec, tags, origin_us, options.warmup)
        self.shadow: Shadow | None = None
        if options.shadow:
            horizon = max(options.until or 0.0, spec.horizon_hours, 24 * 365 * 10)
            self.shadow = Shadow(spec, options.seed, horizon, options.warmup)
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
        decoded = self.observer.advance(self.reader(), end_us)
        snap = self.snapshot(decoded, counters)
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

    def snapshot(self, decoded: Decoded, counters: dict[str, Any], complete: bool = False) -> dict[str, Any]:
        """Plant KPIs at the end of ``decoded`` (and the twin's, in shadow mode) with the ingest's counters.

        Forecasts are made and scored only up to what has been decoded (the decoder's watermark), since values
        received may not be stored yet; ``complete``: the feed has ended and everything up to its end is in."""
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
            **counters,
            "bad_values": sum(decoded.bad_values.values()),
            "missed": sum(decoded.missed.values()),
        }
        if self.shadow is not None and self.options.forecast_every:
            known = hours if complete else min(hours, self.observer.decoder.hours())
            snap["forecasts"] = self._forecasts(decoded.log, known)
        if decoded.bad_values:
            log.warning("bad values so far: %s", decoded.bad_values)
        return snap

    def _forecasts(self, plant_log: EventLog, hours: float) -> dict[str, Any]:
        """Score the forecasts whose horizon has passed; make those now due.

        Forecasts are made at whole multiples of ``forecast_every`` of plant time (past the warm-up),
        each from the plant's state at that time, however fast the plant's clock runs against the wall."""
        stored = self.reader().forecasts()
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
