"""The spec's calibratable parameters and the observations that belong to each.

    >>> for target in targets(spec, stations=None, observed=obs):
    ...     target.path, target.kind, target.data        # "stations.press.failures.mtbf", "time_to_failure", Durations

One target per value the spec holds: a processing-time entry (one distribution, or one per product
key; ``*`` pools the products without their own), a rate (its speed loss and variation), time to
failure and repair time, each changeover entry with a time (the changeover pairs whose most specific
matching key it is), minor and major cleans and line clearances, yields and reject probabilities
(also where the spec has none but the data show losses), a hold-time rule's investigation time, and
the QC lab's test, incubation and investigation times and OOS probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.calibrate.fit import Durations
from twin.calibrate.observations import DurationList, Observations, QualityCounts
from twin.eventlog import EventLog
from twin.spec.cleaning import Changeover, changeover_of
from twin.spec.model import ANY, LineSpec, Station


@dataclass(frozen=True)
class Target:
    """One value of the spec to calibrate, with the data for it."""

    path: tuple[str, ...]  # where it lives in the YAML: ("stations", "press", "failures", "mtbf")
    kind: str
    label: str
    station: str | None
    old: Any  # the spec's value as data (None: not in the spec, a default applies)
    data: Durations | QualityCounts | tuple[int, int] | None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _old(data: Any, path: tuple[str, ...]) -> Any:
    """The spec's value at a YAML path, as data (None where the spec leaves it to a default)."""
    node = data
    for part in path:
        if isinstance(node, list):
            match = next((item for item in node if isinstance(item, dict) and item.get("name") == part), None)
            if match is None and part.isdigit() and int(part) < len(node):
                match = node[int(part)]
            node = match
        elif isinstance(node, dict):
            node = node.get("yield_" if part == "yield" else part)
        else:
            return None
        if node is None:
            return None
    return node


def setup_key(station: Station, previous: str, product: str) -> str | None:
    """The changeover-matrix key that decides the change from ``previous`` to ``product`` (None: no change)."""
    if not station.setup:
        return None
    for key in (f"{previous}->{product}", f"{previous}->*", f"*->{product}", f"{ANY}->{ANY}"):
        if key in station.setup:
            if previous == product and key != f"{previous}->{product}":
                continue
            return key
    return None


def targets(spec: LineSpec, observed: Observations, log: EventLog, stations: set[str] | None = None) -> list[Target]:
    """Every calibratable value of ``spec`` (of ``stations`` only, when given) with its observations."""
    data = spec.to_data()
    out: list[Target] = []
    products = [p.name for p in spec.products]
    for station in spec.stations:
        if stations is not None and station.name not in stations:
            continue
        out.extend(_station_targets(spec, station, observed, data, products, log))
    for index, hold in enumerate(spec.hold_times):
        if hold.action != "investigate" or (stations is not None and hold.to not in stations):
            continue
        path = ("hold_times", str(index), "investigation")
        sharing = [h for h in spec.hold_times if h.to == hold.to and h.action == "investigate"]
        durations: Durations | None = observed.hold_investigation[hold.to].durations()
        note = ""
        if len(sharing) > 1:
            durations = None
            note = f"{len(sharing)} hold-time rules investigate at {hold.to}: their investigations cannot be told apart"
        label = f"hold {hold.from_}->{hold.to}: investigation"
        out.append(Target(path, "hold_investigation", label, hold.to, _old(data, path), durations, note=note))
    if spec.qc is not None and stations is None:
        qc = spec.qc
        out.append(Target(("qc", "test_time"), "qc_test", "QC: test time", None, _old(data, ("qc", "test_time")),
                          observed.qc_test.durations()))  # fmt: skip
        if qc.incubation is not None:
            out.append(Target(("qc", "incubation"), "incubation", "QC: incubation", None,
                              _old(data, ("qc", "incubation")), observed.incubation.durations()))  # fmt: skip
        if qc.investigation is not None:
            out.append(Target(("qc", "investigation"), "qc_investigation", "QC: OOS investigation", None,
                              _old(data, ("qc", "investigation")), observed.qc_investigation.durations()))  # fmt: skip
        out.append(Target(("qc", "oos_probability"), "oos_probability", "QC: OOS probability", None,
                          qc.oos_probability, (sum(observed.oos), len(observed.oos))))  # fmt: skip
    return out


def _station_targets(
    spec: LineSpec, station: Station, observed: Observations, data: dict[str, Any], products: list[str], log: EventLog
) -> list[Target]:
    name = station.name
    base = ("stations", name)
    out: list[Target] = []
    processing = observed.processing.get(name, DurationList())
    if station.rate is not None:
        out.append(_rate_target(spec, station, processing, data, log))
    elif isinstance(station.process_time, dict):
        for key in station.process_time:
            covered = {p for p in products if p == key or (key == ANY and p not in station.process_time)}
            path = (*base, "process_time", key)
            label = f"{name}: processing time ({key if key != ANY else 'other products'})"
            out.append(Target(path, "processing", label, name, _old(data, path), processing.durations(covered)))
    else:
        path = (*base, "process_time")
        label = f"{name}: processing time"
        out.append(Target(path, "processing", label, name, _old(data, path), processing.durations()))
    if station.failures is not None:
        for field_name, kind, group, what in (
            ("mtbf", "time_to_failure", observed.time_to_failure, f"time to failure ({station.failures.basis})"),
            ("mttr", "repair", observed.repair, "repair time"),
        ):
            path = (*base, "failures", field_name)
            durations = group[name].durations()
            out.append(Target(path, kind, f"{name}: {what}", name, _old(data, path), durations))
    for key, entry in (station.setup or {}).items():
        change = changeover_of(entry)
        if change.time is None:
            continue
        pairs = {(a, b) for a in products for b in products if setup_key(station, a, b) == key}
        path = (*base, "setup", key, "time") if isinstance(entry, Changeover) else (*base, "setup", key)
        durations = observed.activities[(name, "setup")].durations(pairs)
        out.append(Target(path, "changeover", f"{name}: changeover {key}", name, _old(data, path), durations))
    cleaning = station.cleaning
    if cleaning is not None:
        for field_name, event, what in (("minor", "clean", "minor clean"), ("major", "major_clean", "major clean"),
                                        ("line_clearance", "line_clearance", "line clearance")):  # fmt: skip
            if getattr(cleaning, field_name) is None:
                continue
            path = (*base, "cleaning", field_name)
            durations = observed.activities[(name, event)].durations()
            out.append(Target(path, f"{event}", f"{name}: {what}", name, _old(data, path), durations))
    counts = observed.quality.get(name)
    losses = counts is not None and (any(s > 0 for s in counts.scrapped) or any(counts.rejected))
    if station.quality is not None or losses:
        counts = counts or QualityCounts()
        quality = station.quality
        out.append(Target((*base, "quality", "yield"), "yield", f"{name}: yield", name,
                          quality.yield_ if quality else None, counts))  # fmt: skip
        out.append(Target((*base, "quality", "reject_probability"), "reject_probability", f"{name}: reject probability",
                          name, quality.reject_probability if quality else None,
                          (sum(counts.rejected), counts.batches)))  # fmt: skip
    return out


def _rate_target(
    spec: LineSpec, station: Station, processing: DurationList, data: dict[str, Any], log: EventLog
) -> Target:
    """Processing times as multiples of their nameplate time after start-up: w = (t - startup) / (units / rate)."""
    rate = station.rate
    assert rate is not None
    startup = spec.hours(rate.startup)
    sizes = dict(zip(log.meta.products, log.meta.batch_sizes, strict=True))
    quantities = []
    for (rep, batch, began, quantity), product in zip(processing.extra, processing.keys, strict=True):
        if quantity == quantity:  # not NaN: from the finish row
            quantities.append(quantity)
        else:
            quantities.append(_quantity_before(log, rep, batch, began, sizes.get(product, np.nan)))
    values = np.asarray(processing.values, dtype=float)
    nameplate = np.asarray(quantities, dtype=float) / rate.units_per_hour
    factors = (values - startup) / nameplate
    keep = np.isfinite(factors)
    durations = Durations(factors[keep], np.asarray(processing.censored, dtype=bool)[keep])
    path = ("stations", station.name, "rate")
    label = f"{station.name}: rate (speed loss, variation)"
    return Target(path, "rate", label, station.name, _old(data, path), durations, extra={"startup_hours": startup})


def _quantity_before(log: EventLog, rep: int, batch: int, time: float, default: float) -> float:
    """The batch's units when it started at a station: its last row with a quantity before ``time``."""
    table = log.table
    rows = table[(table["replication"] == rep) & (table["batch"] == batch) & (table["time"] <= time)]
    rows = rows[rows["quantity"].notna() & rows["event"].isin(["leave", "split", "merge", "finish"])]
    return float(rows["quantity"].iloc[-1]) if len(rows) else default
