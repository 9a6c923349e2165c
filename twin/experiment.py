"""What-if experiments: a run of a spec, and a comparison of scenarios with common random numbers.

>>> result = run(spec, replications=5, seed=1)
>>> result.kpis.summary["throughput_per_hour"]
>>> cmp = compare(spec, {"second coater": ["stations.coating.units=2"]}, replications=5)
>>> cmp.deltas["second coater"]["throughput_per_hour"]      # paired Interval
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twin.engine.budget import check_budget
from twin.engine.simulate import simulate
from twin.eventlog import EventLog
from twin.kpis.line import LINE_KPIS
from twin.kpis.report import KpiReport, compute_kpis
from twin.spec.limits import DEFAULT_MAX_EVENTS
from twin.spec.loader import spec_from_data
from twin.spec.model import LineSpec
from twin.stats import Interval, paired_difference

Overrides = Sequence[str] | Mapping[str, Any]
DELTA_METRICS = tuple(k.column for k in LINE_KPIS if k.column != "lead_time_p50_hours")


@dataclass(frozen=True)
class RunResult:
    """One scenario's spec, event log and KPIs."""

    spec: LineSpec
    log: EventLog
    kpis: KpiReport
    name: str = "baseline"
    overrides: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)


def run(
    spec: LineSpec,
    replications: int = 5,
    seed: int = 1,
    horizon: float | None = None,
    warmup: float | None = None,
    progress: Callable[[float], None] | None = None,
    name: str = "baseline",
    overrides: Sequence[str] = (),
    max_events: float | None = DEFAULT_MAX_EVENTS,
) -> RunResult:
    """Simulate ``spec`` and compute its KPIs (``horizon``/``warmup`` in hours override the spec's).

    A run estimated past ``max_events`` event-log rows is refused before it starts (``InputError``).
    """
    log = simulate(spec, replications, seed, horizon, warmup, progress, max_events=max_events)
    settings = {"replications": replications, "seed": seed, "horizon": log.meta.horizon, "warmup": log.meta.warmup}
    return RunResult(spec, log, compute_kpis(log), name, tuple(overrides), settings)


def with_overrides(spec: LineSpec, overrides: Overrides, source: str = "<scenario>") -> LineSpec:
    """A new spec: ``spec`` with ``path=value`` overrides applied and validated."""
    return spec_from_data(spec.to_data(), source=source, overrides=overrides)


@dataclass(frozen=True)
class Comparison:
    baseline: RunResult
    scenarios: list[RunResult]
    deltas: dict[str, dict[str, Interval]]  # scenario -> metric -> paired interval of (scenario - baseline)


def compare(
    spec: LineSpec,
    scenarios: Mapping[str, Sequence[str]],
    replications: int = 5,
    seed: int = 1,
    horizon: float | None = None,
    warmup: float | None = None,
    progress: Callable[[float], None] | None = None,
    max_events: float | None = DEFAULT_MAX_EVENTS,
) -> Comparison:
    """Run the baseline and each scenario with the same seed; paired deltas of the main KPIs.

    Specs are validated, and each run's work checked against ``max_events``, before anything runs,
    so a bad scenario fails fast.
    """
    variants = {name: with_overrides(spec, list(ov), source=f"scenario {name!r}") for name, ov in scenarios.items()}
    total = 1 + len(variants)
    for variant in (spec, *variants.values()):
        check_budget(variant, horizon, replications, max_events)

    def part(i: int) -> Callable[[float], None] | None:
        return None if progress is None else (lambda f: progress((i + f) / total))

    base = run(spec, replications, seed, horizon, warmup, part(0), max_events=max_events)
    results = [
        run(variant, replications, seed, horizon, warmup, part(i + 1), name, tuple(scenarios[name]), max_events)
        for i, (name, variant) in enumerate(variants.items())
    ]
    deltas = {}
    for result in results:
        metrics = [m for m in DELTA_METRICS if m in base.kpis.per_replication and m in result.kpis.per_replication]
        metrics += [
            f"{s}.{k}" for s in base.log.meta.stations for k in ("oee", "utilization")
            if f"{s}.{k}" in result.kpis.per_replication
        ]  # fmt: skip
        a, b = base.kpis.per_replication, result.kpis.per_replication
        common = a.index.intersection(b.index)
        deltas[result.name] = {m: paired_difference(a.loc[common, m], b.loc[common, m]) for m in metrics}
    return Comparison(base, results, deltas)
