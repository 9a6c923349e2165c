"""Plant tag samples -> the core's event log, so that the plant's KPIs come from the same code as the twin's.

    >>> decoder = PlantDecoder(spec, tag_map, origin_us)           # a streaming decoder (the sync's observer)
    >>> decoder.feed(new_samples)                                  # tag, source_us, value, status, seq
    >>> decoded = decoder.decoded(end_us)                          # Decoded(log, bad_values, missed)
    >>> plant_event_log(spec, tag_map, samples, origin_us, end_us) # the same, in one call

The decoder consumes samples in source-time order (equal times in arrival order, ``seq``), one time at
a time, and keeps only what the next sample needs: each unit's current values, counters and running
counts, the batch ids seen and the event-log rows made so far. Its cost is in proportion to the
samples fed, so a service that feeds it only what arrived since its last step does flat work per step.
``checkpoint()`` / ``restore()`` roll it back (to take a late sample in), ``state()`` /
``from_state()`` write it to and read it from JSON (the historian keeps one, so that a restart, or a
historian whose old samples were compacted, decodes from there).

Time is the samples' source time in hours since ``origin_us`` (values older than the origin count
as the state at time 0). Per unit (the tag roles are those of ``connectors.opcua.roles``):

- each state value (or alarm change) gives a state row: the plant code mapped to a twin state,
  ``down`` while the alarm is on; codes the map lacks are bad values (counted, skipped);
- each step of the finished-batches counter is a ``finish`` row of the batch the unit held just
  before (its batch tag), with the units counted by the unit's good-units counter since its previous
  finish as the quantity (a PLC's counter that rises all through the batch is attributed to the batch
  over its interval; when the map has no such counter, or it did not move, the units of a lot at that
  station: the product's batch size, divided by the splits before it and multiplied by the merges up
  to it) and the spec's ideal time; at the last station it is also the batch's ``leave``, less the
  units scrapped over the same interval (none when the batch was rejected at that time);
- each step of the scrap counter is a ``scrap`` row of that many units, each step of the reject
  counter a ``reject`` of the batch the unit held (a rejected batch does not leave the line);
- each new value of the release tag is a ``release`` row.

A line with one product needs no product tags: every batch is of that product. Counters unwrap at
their ``wrap``; a step of more than one of a finished-batches or release counter counts the values
missed in between. Samples with a status other than Good are bad values.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectors.opcua.live import complete
from connectors.opcua.roles import is_good, unit_roles
from connectors.opcua.tagmap import TagMap
from twin.eventlog import EVENTS, EventLog, LogMeta, normalize_table
from twin.spec.model import LineSpec

US_PER_HOUR = 3.6e9
COLUMNS = ("time", "batch", "product", "station", "unit", "event", "state", "quantity", "ideal")
_ORDER = {"finish": 0, "leave": 1, "release": 2}  # at equal times: what ends, what enters, then states


@dataclass
class Decoded:
    """The event log of a plant feed and what could not be used."""

    log: EventLog
    bad_values: dict[str, int] = field(default_factory=dict)  # tag -> samples that could not be used
    missed: dict[str, int] = field(default_factory=dict)  # counter tag -> steps missed (jumps of more than one)


class LateSample(ValueError):
    """A sample at or before the time the decoder has already passed (roll back to a checkpoint first)."""


@dataclass
class _Unit:
    """What the decoder knows of one unit between samples."""

    batch: Any = None  # the plant's batch id now
    product: Any = None  # the plant's product code now
    plant_state: str | None = None
    alarm: bool = False
    shown: str | None = None  # the state of the last state row
    previous: dict[str, int] = field(default_factory=dict)  # counter role -> last value
    counted: int = 0  # good units counted since the last finish
    scrapped: int = 0  # units scrapped since the last finish


def _good_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | np.integer)


class PlantDecoder:
    """A streaming decoder of one plant feed (see the module's docstring)."""

    def __init__(self, spec: LineSpec, tags: TagMap, origin_us: int, warmup: float = 0.0):
        self.spec, self.tags, self.origin_us, self.warmup = spec, tags, int(origin_us), warmup
        self._units = tags.units()
        self._stations = {s.name: s for s in spec.stations}
        self._last_station = spec.stations[-1].name
        self._product_names = {p.name for p in spec.products}
        self._sole_product = spec.products[0].name if len(spec.products) == 1 else None
        self._lots = {(s, p.name): lot_units(spec, s, p.name) for s in self._stations for p in spec.products}
        self._roles: dict[str, tuple[int, str]] = {}  # tag -> (unit index or -1 for the line, role)
        for i, (_s, _u, unit) in enumerate(self._units):
            for role, tag in unit_roles(unit).items():
                self._roles[tag] = (i, role)
        if tags.release is not None:
            self._roles[tags.release.batch] = (-1, "release.batch")
            if tags.release.count:
                self._roles[tags.release.count.tag] = (-1, "release.count")
        self.units = [_Unit() for _ in self._units]
        self.release_seen, self.release_previous, self.release_count = False, None, None
        self.batch_keys: list[Any] = []  # the plant's batch ids in the order first seen (engine batch 0, 1, ...)
        self.batch_ids: dict[Any, int] = {}
        self.batch_product: dict[int, str] = {}
        self.product_order: list[int] = []  # batches in the order their product became known
        self.bad: dict[str, int] = defaultdict(int)
        self.missed: dict[str, int] = defaultdict(int)
        self.rows: list[tuple[Any, ...]] = []
        self.watermark_us: int | None = None  # the latest source time decoded
        self.samples = 0

    # ------------------------------------------------------------------------------------------ feeding

    def feed(self, samples: pd.DataFrame) -> int:
        """Decode samples (columns tag, source_us, value, status and optionally seq), all later than those
        decoded before (else ``LateSample``, and nothing is changed); returns how many were used."""
        if not len(samples):
            return 0
        if "seq" in samples:
            samples = samples.sort_values(["source_us", "seq"], kind="stable")
        else:
            samples = samples.sort_values("source_us", kind="stable")
        times = samples["source_us"].to_numpy(np.int64)
        if self.watermark_us is not None and times[0] <= self.watermark_us:
            raise LateSample(f"a sample at {int(times[0])} us, not after {self.watermark_us} us")
        roles = self._roles
        tags, values, statuses = samples["tag"].tolist(), samples["value"].tolist(), samples["status"].tolist()
        used, n, i = 0, len(times), 0
        while i < n:
            j = i
            t_us = times[i]
            while j < n and times[j] == t_us:
                j += 1
            group = []
            for k in range(i, j):
                if not is_good(statuses[k]):
                    self.bad[tags[k]] += 1
                    continue
                role = roles.get(tags[k])
                if role is None:  # the heartbeat, extra tags
                    continue
                group.append((role[0], role[1], tags[k], values[k]))
            if group:
                self._group((int(t_us) - self.origin_us) / US_PER_HOUR, group)
                used += len(group)
            i = j
        self.watermark_us = int(times[-1])
        self.samples += used
        return used

    def _intern(self, plant_id: Any) -> int:
        b = self.batch_ids.get(plant_id)
        if b is None:
            b = self.batch_ids[plant_id] = len(self.batch_keys)
            self.batch_keys.append(plant_id)
        return b

    def _batch(self, plant_id: Any) -> int:
        return self._intern(plant_id) if plant_id not in (None, "") else -1

    def _product_of(self, value: Any) -> str | None:
        if value is None or value == "":
            return self._sole_product
        name = (self.tags.products or {}).get(value, value)
        return name if name in self._product_names else None

    def _group(self, t: float, group: list[tuple[int, str, str, Any]]) -> None:
        """Every sample at time ``t`` (hours): batch and product tags first, then states, counters, releases."""
        by_unit: dict[int, list[tuple[str, str, Any]]] = defaultdict(list)
        for index, role, tag, value in group:
            by_unit[index].append((role, tag, value))
        before: dict[int, tuple[Any, Any]] = {}
        for index in sorted(i for i in by_unit if i >= 0):
            unit = self.units[index]
            before[index] = (unit.batch, unit.product)
            items = by_unit[index]
            for role, _tag, value in items:
                if role == "batch":
                    unit.batch = value
                elif role == "product":
                    unit.product = value
            for role, _tag, value in items:
                if role == "batch" and value not in (None, ""):
                    product = self._product_of(unit.product)
                    if product is not None:
                        b = self._intern(value)
                        if b not in self.batch_product:
                            self.batch_product[b] = product
                            self.product_order.append(b)
        for index in sorted(before):
            self._unit_group(t, index, by_unit[index], *before[index])
        if -1 in by_unit:
            self._release_group(t, by_unit[-1])

    def _unit_group(self, t: float, index: int, items: list[tuple[str, str, Any]], batch0: Any, product0: Any) -> None:
        station_name, u, tags = self._units[index]
        unit = self.units[index]
        codes = self.tags.codes_for(tags)
        rows = self.rows
        for wanted in ("state", "alarm"):  # the state tag's values first, then the alarm's
            for role, tag, value in items:
                if role != wanted:
                    continue
                if role == "state":
                    if value not in codes:
                        self.bad[tag] += 1
                        continue
                    unit.plant_state = codes[value]
                else:
                    if not isinstance(value, bool | int | np.integer):
                        self.bad[tag] += 1
                        continue
                    unit.alarm = bool(value)
                state = "down" if unit.alarm else unit.plant_state
                if state is None or state == unit.shown:
                    continue
                event = (
                    "fail"
                    if state == "down"
                    else "repair"
                    if unit.shown == "down"
                    else {"processing": "start", "setup": "setup"}.get(state, "state")
                )
                batch = self._batch(unit.batch) if state in ("processing", "setup") else -1
                rows.append((max(t, 0.0), batch, None, station_name, u, event, state, np.nan, np.nan))
                unit.shown = state
        steps = {"count": 0, "scrap": 0, "reject": 0, "done": 0}
        for role, _tag, value in items:
            if role in steps and _good_int(value):
                counter = getattr(tags, role)
                value = int(value)
                previous = unit.previous.get(role)
                unit.previous[role] = value
                if previous is not None and value != previous:
                    steps[role] += (value - previous) % counter.wrap
        unit.counted += steps["count"]
        unit.scrapped += steps["scrap"]
        if steps["done"]:
            if steps["done"] > 1:
                self.missed[tags.done.tag] += steps["done"] - 1
            if t >= 0:
                self._finish(t, index, batch0, product0, rejected=steps["reject"] > 0)
            unit.counted = unit.scrapped = 0
        if t < 0:
            return
        for event in ("scrap", "reject"):
            if steps[event] and event in EVENTS:
                batch = self._batch(batch0)
                product = self._product_of(product0)
                rows.append((t, batch, product, station_name, u, event, None, float(steps[event]), np.nan))

    def _finish(self, t: float, index: int, batch0: Any, product0: Any, rejected: bool) -> None:
        station_name, u, tags = self._units[index]
        unit = self.units[index]
        batch = self._batch(batch0)
        product = self._product_of(product0) or self.batch_product.get(batch)
        if product is None:
            self.bad[tags.done.tag] += 1
            return
        qty = float(unit.counted) if unit.counted else self._lots[(station_name, product)]
        ideal = self._stations[station_name].ideal_hours(product, self.spec.time_unit, batch_units=qty)
        self.rows.append((t, batch, product, station_name, u, "finish", None, qty, ideal))
        if station_name == self._last_station and not rejected:  # what leaves the line: made less scrapped
            self.rows.append((t, batch, product, station_name, u, "leave", None, qty - unit.scrapped, np.nan))

    def _release_group(self, t: float, items: list[tuple[str, str, Any]]) -> None:
        changes, step = 0, 0
        for role, _tag, value in items:
            if role == "release.batch":
                new = value not in (None, "") and value != self.release_previous
                first = not self.release_seen
                self.release_seen, self.release_previous = True, value
                if not new or (first and t <= 0):  # the first value, from before the feed, is where it starts
                    continue
                changes += 1
                if t >= 0:
                    self.rows.append((t, self._intern(value), None, None, -1, "release", None, np.nan, np.nan))
            elif _good_int(value):
                value, previous = int(value), self.release_count
                self.release_count = value
                if previous is not None and value != previous:
                    step += (value - previous) % self.tags.release.count.wrap
        if step > changes:
            self.missed[self.tags.release.count.tag] += step - changes

    # ------------------------------------------------------------------------------------------ reading

    def hours(self) -> float:
        """Plant hours decoded so far."""
        return max(((self.watermark_us or self.origin_us) - self.origin_us) / US_PER_HOUR, 0.0)

    def rows_table(self, since: int = 0, end: float | None = None) -> pd.DataFrame:
        """The event-log rows made after the first ``since`` (up to ``end`` hours), in the log's order, with the
        product of each row's batch as known now; no ``end`` row. Rows are made a whole time at a time, so the
        rows after a count taken between two ``feed`` calls are in the order the whole log has them."""
        table = pd.DataFrame(self.rows[since:], columns=list(COLUMNS))
        if len(table):
            if end is not None:
                table = table[table["time"] <= end]
            product = table["product"].astype(object)
            unknown = product.isna().to_numpy()
            if unknown.any():  # rows whose product is that of their batch, as known now (a look-up per row)
                known = self.batch_product
                product[unknown] = [known.get(b) for b in table["batch"].to_numpy()[unknown].tolist()]
            table["product"] = product
            order = table["event"].map(_ORDER).fillna(3)
            table = table.iloc[np.lexsort((order.to_numpy(), table["time"].to_numpy()))]
        return table

    def decoded(self, end_us: int | None = None, extra: dict[str, Any] | None = None) -> Decoded:
        """The event log of (0, end] (default: up to the latest sample decoded)."""
        end_us = self.watermark_us or self.origin_us if end_us is None else end_us
        end = max((end_us - self.origin_us) / US_PER_HOUR, 0.0)
        table = self.rows_table(0, end)
        end_row = pd.DataFrame([(end, -1, None, None, -1, "end", None, np.nan, np.nan)], columns=list(COLUMNS))
        table = pd.concat([table, end_row], ignore_index=True) if len(table) else end_row
        table = complete(table)
        meta = self.meta(end, extra)
        return Decoded(EventLog(normalize_table(table, meta), meta), meta.extra["bad_values"], meta.extra["missed"])

    def meta(self, end: float, extra: dict[str, Any] | None = None) -> LogMeta:
        """The metadata of the event log of (0, end]."""
        bad, missed = dict(self.bad), dict(self.missed)
        return LogMeta(
            line=self.spec.name,
            stations=[s.name for s in self.spec.stations],
            units=[s.units for s in self.spec.stations],
            products=[p.name for p in self.spec.products],
            batch_sizes=[p.batch_size for p in self.spec.products],
            horizon=end,
            warmup=self.warmup,
            replications=1,
            seed=None,
            spec_hash=self.spec.spec_hash,
            source="plant",
            extra={
                "origin_us": self.origin_us,
                "bad_values": bad,
                "missed": missed,
                "plant_batches": [_plain(plant_id) for plant_id in self.batch_keys],  # plant id of batch 0, 1, ...
                **(extra or {}),
            },
        )

    # ------------------------------------------------------------------------------------------ checkpoints

    def checkpoint(self) -> dict[str, Any]:
        """A cheap in-memory mark to ``restore`` (its cost is per unit, not per row or batch)."""
        return {
            "units": [_copy_unit(u) for u in self.units],
            "release": (self.release_seen, self.release_previous, self.release_count),
            "batches": len(self.batch_keys),
            "products": len(self.product_order),
            "bad": dict(self.bad),
            "missed": dict(self.missed),
            "rows": len(self.rows),
            "watermark_us": self.watermark_us,
            "samples": self.samples,
        }

    def restore(self, mark: dict[str, Any]) -> None:
        """Back to where ``checkpoint`` was taken (a mark taken after it is no longer valid)."""
        self.units = [_copy_unit(u) for u in mark["units"]]
        self.release_seen, self.release_previous, self.release_count = mark["release"]
        for plant_id in self.batch_keys[mark["batches"] :]:
            del self.batch_ids[plant_id]
        del self.batch_keys[mark["batches"] :]
        for b in self.product_order[mark["products"] :]:
            del self.batch_product[b]
        del self.product_order[mark["products"] :]
        self.bad, self.missed = defaultdict(int, mark["bad"]), defaultdict(int, mark["missed"])
        del self.rows[mark["rows"] :]
        self.watermark_us, self.samples = mark["watermark_us"], mark["samples"]

    def state(self) -> bytes:
        """The whole decoder state, as compressed JSON (for the historian's checkpoints)."""
        data = {
            "version": 1,
            "origin_us": self.origin_us,
            "units": [{**u.__dict__} for u in self.units],
            "release": [self.release_seen, self.release_previous, self.release_count],
            "batch_keys": [_plain(k) for k in self.batch_keys],
            "batch_product": [[b, self.batch_product[b]] for b in self.product_order],
            "bad": self.bad,
            "missed": self.missed,
            "rows": [[_plain(x) if not (isinstance(x, float) and x != x) else None for x in r] for r in self.rows],
            "watermark_us": self.watermark_us,
            "samples": self.samples,
        }
        return zlib.compress(json.dumps(data, separators=(",", ":")).encode())

    @classmethod
    def from_state(cls, spec: LineSpec, tags: TagMap, blob: bytes, warmup: float = 0.0) -> PlantDecoder:
        """A decoder as ``state()`` wrote it (``ValueError`` if the blob is not one)."""
        try:
            data = json.loads(zlib.decompress(blob))
            decoder = cls(spec, tags, int(data["origin_us"]), warmup)
            if data.get("version") != 1 or len(data["units"]) != len(decoder.units):
                raise ValueError("a checkpoint of another version or tag map")
            decoder.units = [_Unit(**u) for u in data["units"]]
            decoder.release_seen, decoder.release_previous, decoder.release_count = data["release"]
            for plant_id in data["batch_keys"]:
                decoder._intern(plant_id)
            for b, product in data["batch_product"]:
                decoder.batch_product[int(b)] = product
                decoder.product_order.append(int(b))
            decoder.bad.update(data["bad"])
            decoder.missed.update(data["missed"])
            nan = np.nan
            decoder.rows = [
                (r[0], r[1], r[2], r[3], r[4], r[5], r[6], nan if r[7] is None else r[7], nan if r[8] is None else r[8])
                for r in data["rows"]
            ]
            decoder.watermark_us, decoder.samples = data["watermark_us"], data["samples"]
        except (KeyError, TypeError, zlib.error, json.JSONDecodeError) as err:
            raise ValueError(f"not a decoder checkpoint ({err})") from None
        return decoder


def _copy_unit(unit: _Unit) -> _Unit:
    return _Unit(**{**unit.__dict__, "previous": dict(unit.previous)})


def plant_event_log(
    spec: LineSpec,
    tags: TagMap,
    samples: pd.DataFrame,
    origin_us: int,
    end_us: int,
    warmup: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> Decoded:
    """Decode historian samples (columns tag, source_us, value, status; arrival order ``seq``) into an event log."""
    decoder = PlantDecoder(spec, tags, origin_us, warmup)
    decoder.feed(samples)
    return decoder.decoded(end_us, extra)


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
