"""Plant tag samples -> the core's event log, so that the plant's KPIs come from the same code as the twin's.

    >>> samples = historian.query(raw_times=True)                 # tag, source_us, value, status, seq
    >>> decoded = plant_event_log(spec, tag_map, samples, origin_us, end_us)
    >>> compute_kpis(decoded.log).summary["oee"]; decoded.bad_values; decoded.missed

Time is the samples' source time in hours since ``origin_us`` (values older than the origin count
as the state at time 0). Per unit:

- each state value (or alarm change) gives a state row: the plant code mapped to a twin state,
  ``down`` while the alarm is on; codes the map lacks are bad values (counted, skipped);
- each step of the finished-batches counter is a ``finish`` row of the batch the unit held just
  before (its batch tag), with the units counter's step at that time as the quantity (when the
  map has no such counter, the units of a lot at that station: the product's batch size, divided
  by the splits before it and multiplied by the merges up to it) and the spec's ideal time; at the last
  station it is also the batch's ``leave``, less the units scrapped then;
- each step of the scrap counter is a ``scrap`` row of that many units, each step of the reject
  counter a ``reject`` of the batch the unit held (a rejected batch does not leave the line);
- each new value of the release tag is a ``release`` row.

Counters unwrap at their ``wrap``; a step of more than one counts the values missed in between.
Samples with a status other than Good are bad values.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectors.opcua.live import complete
from connectors.opcua.tagmap import Counter, TagMap
from twin.eventlog import EVENTS, EventLog, LogMeta, normalize_table
from twin.spec.model import LineSpec

US_PER_HOUR = 3.6e9


@dataclass
class Decoded:
    """The event log of a plant feed and what could not be used."""

    log: EventLog
    bad_values: dict[str, int] = field(default_factory=dict)  # tag -> samples that could not be used
    missed: dict[str, int] = field(default_factory=dict)  # counter tag -> steps missed (jumps of more than one)


@dataclass
class _Series:
    times: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def before(self, t: float, default: Any = None) -> Any:
        """The value strictly before ``t``."""
        i = bisect.bisect_left(self.times, t)
        return self.values[i - 1] if i > 0 else default

    def at(self, t: float, default: Any = None) -> Any:
        """The value at ``t``, after every change at ``t``."""
        i = bisect.bisect_right(self.times, t)
        return self.values[i - 1] if i > 0 else default


def _good(status: Any) -> bool:
    return int(status) & 0xC0000000 == 0


def plant_event_log(
    spec: LineSpec,
    tags: TagMap,
    samples: pd.DataFrame,
    origin_us: int,
    end_us: int,
    warmup: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> Decoded:
    """Decode historian samples (columns tag, source_us, value, status; arrival order kept) into an event log."""
    bad: dict[str, int] = defaultdict(int)
    missed: dict[str, int] = defaultdict(int)
    by_tag: dict[str, _Series] = defaultdict(_Series)
    if len(samples):
        ordered = samples.sort_values(["source_us", "seq"] if "seq" in samples else ["source_us"], kind="stable")
        hours = (ordered["source_us"].to_numpy(np.int64) - origin_us) / US_PER_HOUR  # < 0: before the feed began
        for tag, t, v, status in zip(ordered["tag"], hours, ordered["value"], ordered["status"], strict=True):
            if not _good(status):
                bad[tag] += 1
                continue
            series = by_tag[tag]
            series.times.append(float(t))
            series.values.append(v)
    end = max((end_us - origin_us) / US_PER_HOUR, 0.0)
    rows: list[tuple[Any, ...]] = []
    batch_ids: dict[Any, int] = {}
    batch_product: dict[int, str] = {}

    def intern(plant_id: Any) -> int:
        return batch_ids.setdefault(plant_id, len(batch_ids))

    product_names = {p.name for p in spec.products}
    product_codes = tags.products or {}

    def product_of(value: Any) -> str | None:
        if value is None or value == "":
            return None
        name = product_codes.get(value, value)
        return name if name in product_names else None

    # batches and their products, from every unit's batch and product tags
    for _station, _u, unit in tags.units():
        if not unit.batch:
            continue
        b_series = by_tag.get(unit.batch, _Series())
        p_series = by_tag.get(unit.product, _Series()) if unit.product else _Series()
        for t, plant_id in zip(b_series.times, b_series.values, strict=True):
            if plant_id in (None, ""):
                continue
            product = product_of(p_series.at(t))
            if product is not None:
                batch_product.setdefault(intern(plant_id), product)

    last_station = spec.stations[-1].name
    for station_name, u, unit in tags.units():
        station = spec.station(station_name)
        codes = tags.codes_for(unit)
        b_series = by_tag.get(unit.batch, _Series()) if unit.batch else _Series()
        p_series = by_tag.get(unit.product, _Series()) if unit.product else _Series()

        # states: the state tag, overridden by the alarm while it is on
        events: list[tuple[float, str, Any]] = []
        for t, v in zip(*_columns(by_tag.get(unit.state)), strict=True):
            if v not in codes:
                bad[unit.state] += 1
                continue
            events.append((t, "state", codes[v]))
        if unit.alarm:
            for t, v in zip(*_columns(by_tag.get(unit.alarm)), strict=True):
                if not isinstance(v, bool | int | np.integer):
                    bad[unit.alarm] += 1
                    continue
                events.append((t, "alarm", bool(v)))
        events.sort(key=lambda e: e[0])  # stable: each tag keeps its own order at equal times
        plant_state, alarm, shown = None, False, None
        for t, kind, v in events:
            if kind == "state":
                plant_state = v
            else:
                alarm = v
            state = "down" if alarm else plant_state
            if state is None or state == shown:
                continue
            event = (
                "fail"
                if state == "down"
                else "repair"
                if shown == "down"
                else {"processing": "start", "setup": "setup"}.get(state, "state")
            )
            plant_id = b_series.at(t) if state in ("processing", "setup") else None
            batch = intern(plant_id) if plant_id not in (None, "") else -1
            rows.append((max(t, 0.0), batch, batch_product.get(batch), station_name, u, event, state, np.nan, np.nan))
            shown = state

        # finishes: steps of the finished-batches counter
        quantities = _steps(by_tag.get(unit.count.tag), unit.count) if unit.count else {}
        scrapped = _steps(by_tag.get(unit.scrap.tag), unit.scrap) if unit.scrap else {}
        rejected = _steps(by_tag.get(unit.reject.tag), unit.reject) if unit.reject else {}
        for t, step in _steps(by_tag.get(unit.done.tag), unit.done).items():
            if step > 1:
                missed[unit.done.tag] += step - 1
            if t < 0:
                continue
            plant_id = b_series.before(t)
            batch = intern(plant_id) if plant_id not in (None, "") else -1
            product = product_of(p_series.before(t)) or batch_product.get(batch)
            if product is None:
                bad[unit.done.tag] += 1
                continue
            qty = float(quantities.get(t, lot_units(spec, station_name, product)))
            ideal = station.ideal_hours(product, spec.time_unit, batch_units=qty)
            rows.append((t, batch, product, station_name, u, "finish", None, qty, ideal))
            if station_name == last_station and not rejected.get(t):  # what leaves the line: made less scrapped
                rows.append((t, batch, product, station_name, u, "leave", None, qty - scrapped.get(t, 0), np.nan))

        # units scrapped, batches rejected whole: steps of the scrap and reject counters
        for event, steps in (("scrap", scrapped), ("reject", rejected)):
            if event not in EVENTS:
                continue
            for t, step in steps.items():
                if t < 0:
                    continue
                plant_id = b_series.before(t)
                batch = intern(plant_id) if plant_id not in (None, "") else -1
                product = product_of(p_series.before(t)) or batch_product.get(batch)
                rows.append((t, batch, product, station_name, u, event, None, float(step), np.nan))

    if tags.release is not None:
        release = by_tag.get(tags.release.batch, _Series())
        changes: dict[float, int] = defaultdict(int)
        previous: Any = None
        for i, (t, plant_id) in enumerate(zip(release.times, release.values, strict=True)):
            new = plant_id not in (None, "") and plant_id != previous
            previous = plant_id
            if not new or (i == 0 and t <= 0):  # the first value, from before the feed, is where it starts
                continue
            changes[t] += 1
            if t >= 0:
                batch = intern(plant_id)
                rows.append((t, batch, batch_product.get(batch), None, -1, "release", None, np.nan, np.nan))
        if tags.release.count:
            for t, step in _steps(by_tag.get(tags.release.count.tag), tags.release.count).items():
                if step > changes.get(t, 0):
                    missed[tags.release.count.tag] += step - changes.get(t, 0)

    rows = [r for r in rows if r[0] <= end]
    order = {"finish": 0, "leave": 1, "release": 2}  # at equal times: what ends, what enters, then states
    rows.sort(key=lambda r: (r[0], order.get(r[5], 3)))
    rows.append((end, -1, None, None, -1, "end", None, np.nan, np.nan))
    table = pd.DataFrame(
        rows, columns=["time", "batch", "product", "station", "unit", "event", "state", "quantity", "ideal"]
    )
    table = complete(table)
    meta = LogMeta(
        line=spec.name,
        stations=[s.name for s in spec.stations],
        units=[s.units for s in spec.stations],
        products=[p.name for p in spec.products],
        batch_sizes=[p.batch_size for p in spec.products],
        horizon=end,
        warmup=warmup,
        replications=1,
        seed=None,
        spec_hash=spec.spec_hash,
        source="plant",
        extra={
            "origin_us": origin_us,
            "bad_values": dict(bad),
            "missed": dict(missed),
            "plant_batches": [_plain(plant_id) for plant_id in batch_ids],  # the plant's id of batch 0, 1, ...
            **(extra or {}),
        },
    )
    return Decoded(EventLog(normalize_table(table, meta), meta), dict(bad), dict(missed))


def lot_units(spec: LineSpec, station: str, product: str) -> float:
    """Units of one lot of ``product`` at ``station``: the batch size, split and merged on the way there."""
    units = float(next(p.batch_size for p in spec.products if p.name == product))
    for s in spec.stations:
        units *= s.merge or 1
        if s.name == station:
            return units
        units /= s.split or 1
    raise KeyError(station)


def _plain(value: Any) -> Any:
    """A plant id as a plain JSON value."""
    return value.item() if isinstance(value, np.generic) else value


def _columns(series: _Series | None) -> tuple[list[float], list[Any]]:
    return (series.times, series.values) if series is not None else ([], [])


def _steps(series: _Series | None, counter: Counter) -> dict[float, int]:
    """Time -> increase of a wrapping counter at that time (its first value is the baseline)."""
    out: dict[float, int] = {}
    if series is None:
        return out
    previous = None
    for t, v in zip(series.times, series.values, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            continue
        v = int(v)
        if previous is not None and v != previous:
            step = (v - previous) % counter.wrap
            out[t] = out.get(t, 0) + step
        previous = v
    return out
