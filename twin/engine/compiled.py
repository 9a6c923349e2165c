"""A spec compiled for the engine: durations in hours, products by index, samplers ready to draw.

>>> line = compile_line(spec)
>>> line.stations[0].ideal   # nominal hours per batch, one per product
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from twin.engine.rules.compiled import CompiledRules, compile_rules
from twin.eventlog import LogMeta
from twin.spec.distributions import Sampler
from twin.spec.model import LineSpec


@dataclass(frozen=True)
class CompiledFailures:
    time_to_failure: Sampler
    time_to_repair: Sampler
    calendar: bool


@dataclass(frozen=True)
class CompiledStation:
    index: int
    name: str
    units: int
    buffer: float  # places in front of the station; math.inf when unlimited
    process: tuple[Sampler, ...]  # per product; empty for rate-based stations
    ideal: tuple[float, ...]  # nominal processing hours per product (of a full batch)
    rate: float | None  # nameplate units per hour of a rate-based station
    failures: CompiledFailures | None
    setup: dict[tuple[int, int], tuple[str, Sampler]]  # (previous, next) product -> (stream key, sampler)


@dataclass(frozen=True)
class CompiledRelease:
    mode: str
    interarrival: Sampler | None
    plan: tuple[int, ...]  # product index of each batch of the plan, in order
    repeat: bool
    mix: tuple[float, ...]  # cumulative product shares (saturated and interarrival modes)


@dataclass(frozen=True)
class CompiledLine:
    name: str
    products: tuple[str, ...]
    batch_sizes: tuple[float, ...]
    stations: tuple[CompiledStation, ...]
    release: CompiledRelease
    horizon: float
    warmup: float
    spec_hash: str
    rules: CompiledRules | None = None  # the batch rules; None runs the lean loop

    def log_meta(self, **run: Any) -> LogMeta:
        """The metadata of an event log of this line; ``run`` gives the rest (horizon, warmup, seed, ...).

        >>> line.log_meta(horizon=500.0, warmup=50.0, replications=3, seed=1, source="simulation")
        """
        return LogMeta(
            line=self.name,
            stations=[s.name for s in self.stations],
            units=[s.units for s in self.stations],
            products=list(self.products),
            batch_sizes=list(self.batch_sizes),
            **run,
        )


def compile_line(spec: LineSpec) -> CompiledLine:
    """Turn a validated spec into engine parameters (all times in hours)."""
    unit = spec.time_unit
    products = tuple(p.name for p in spec.products)
    stations = []
    for index, station in enumerate(spec.stations):
        dists = [station.process_time_for(p) for p in products] if station.rate is None else []
        failures = None
        if station.failures is not None:
            failures = CompiledFailures(
                station.failures.mtbf.sampler(unit),
                station.failures.mttr.sampler(unit),
                station.failures.basis == "calendar",
            )
        setup = {}
        for a, prev in enumerate(products):
            for b, product in enumerate(products):
                dist = station.setup_for(prev, product)
                if dist is not None:
                    setup[(a, b)] = (f"setup:{prev}->{product}", dist.sampler(unit))
        stations.append(
            CompiledStation(
                index=index,
                name=station.name,
                units=station.units,
                buffer=math.inf if station.buffer is None else station.buffer,
                process=tuple(d.sampler(unit) for d in dists),
                ideal=tuple(station.ideal_hours(p.name, unit, p.batch_size) for p in spec.products),
                rate=station.rate.units_per_hour if station.rate is not None and station.ideal_time is None else None,
                failures=failures,
                setup=setup,
            )
        )
    release = spec.release
    plan: list[int] = []
    for campaign in release.plan or ():
        plan.extend([products.index(campaign.product)] * campaign.batches)
    weights = [(release.mix or {}).get(p, 0.0) if release.mix else 1.0 for p in products]
    total = sum(weights)
    cumulative, running = [], 0.0
    for w in weights:
        running += w / total
        cumulative.append(running)
    return CompiledLine(
        name=spec.name,
        products=products,
        batch_sizes=tuple(p.batch_size for p in spec.products),
        stations=tuple(stations),
        release=CompiledRelease(
            mode=release.mode,
            interarrival=release.interarrival.sampler(unit) if release.interarrival is not None else None,
            plan=tuple(plan),
            repeat=release.repeat,
            mix=tuple(cumulative),
        ),
        horizon=spec.horizon_hours,
        warmup=spec.warmup_hours,
        spec_hash=spec.spec_hash,
        rules=compile_rules(spec),
    )
