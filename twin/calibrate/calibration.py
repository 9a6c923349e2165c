"""Calibrate a spec from an event log: new values, the calibrated spec file, and what it does to the KPIs.

    >>> result = calibrate(spec, log, spec_text=Path("line.yaml").read_text(), spec_label="line.yaml",
    ...                    source_label="run folder runs/base", replications=5)
    >>> result.report.to_dict()          # per parameter: old, new, interval, n, censored, family, fit
    >>> result.spec                      # the calibrated LineSpec
    >>> result.text                      # the calibrated file (the original with the values put in)

The KPI impact runs the original and the calibrated spec with the same seeds (common random
numbers, ``twin.experiment.compare``) and reports the paired differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from twin.calibrate.estimate import Settings, estimate
from twin.calibrate.fit import FAMILIES
from twin.calibrate.observations import Window, observe
from twin.calibrate.report import CHANGED, CalibrationReport, KpiChange, ParameterResult
from twin.calibrate.targets import targets
from twin.calibrate.write import Edit, calibrated_text, render
from twin.errors import InputError
from twin.eventlog import EventLog
from twin.experiment import compare, with_overrides
from twin.spec.loader import parse_yaml, spec_from_data
from twin.spec.model import LineSpec
from twin.stats import interval


@dataclass(frozen=True)
class Calibration:
    report: CalibrationReport
    spec: LineSpec  # the calibrated spec
    overrides: list[str]  # the same changes as --set overrides of the original
    text: str | None  # the calibrated spec file (None without the original's text)


def check_log(spec: LineSpec, log: EventLog, source: str) -> None:
    """Refuse a log of another line: stations or products the spec does not have."""
    stations = {s.name for s in spec.stations}
    products = {p.name for p in spec.products}
    table = log.table
    seen_stations = set(log.meta.stations) | set(table["station"].dropna().astype(str).unique())
    seen_products = set(table["product"].dropna().astype(str).unique())
    unknown = sorted(seen_stations - stations)
    if unknown:
        raise InputError(
            f"{source}: a log of line {log.meta.line!r} with stations {', '.join(unknown)} that "
            f"{spec.name!r} does not have (stations: {', '.join(s.name for s in spec.stations)})"
        )
    unknown = sorted(seen_products - products)
    if unknown:
        raise InputError(
            f"{source}: a log with products {', '.join(unknown)} that {spec.name!r} does not make "
            f"(products: {', '.join(sorted(products))})"
        )


def _station_filter(spec: LineSpec, stations: Sequence[str] | None) -> set[str] | None:
    if not stations:
        return None
    names = [s.name for s in spec.stations]
    unknown = [s for s in stations if s not in names]
    if unknown:
        raise InputError(f"--stations: {', '.join(unknown)} not in line {spec.name!r} (stations: {', '.join(names)})")
    return set(stations)


def override_path(path: str) -> str:
    """A YAML path as a ``--set`` path (the spec model names ``quality.yield`` ``yield_``)."""
    parts = path.split(".")
    return ".".join("yield_" if p == "yield" and i and parts[i - 1] == "quality" else p for i, p in enumerate(parts))


def calibrate(
    spec: LineSpec,
    log: EventLog,
    *,
    spec_text: str | None = None,
    spec_label: str = "spec",
    source_label: str = "event log",
    stations: Sequence[str] | None = None,
    window: Window | None = None,
    min_observations: int = 10,
    families: Sequence[str] = FAMILIES,
    keep_families: bool = False,
    replications: int = 5,
    seed: int = 1,
    progress: Callable[[float], None] | None = None,
) -> Calibration:
    """Estimate every calibratable value of ``spec`` from ``log`` (see the package docstring)."""
    window = window or Window()
    if min_observations < 1:
        raise InputError(f"--min-observations must be at least 1 (got {min_observations})")
    if replications < 0:
        raise InputError(f"--replications must be 0 (no KPI comparison) or more (got {replications})")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise InputError(f"--families: {', '.join(unknown) or 'none given'}; choose from {', '.join(FAMILIES)}")
    if window.end is not None and window.end <= window.start:
        raise InputError(f"--to-time ({window.end:g} h) must be after --from-time ({window.start:g} h)")
    check_log(spec, log, source_label)
    chosen = _station_filter(spec, stations)
    basis = {s.name: s.failures.basis for s in spec.stations if s.failures is not None}
    observed = observe(log, basis, window, chosen)
    if observed.total() == 0:
        raise InputError(
            f"{source_label}: no events to calibrate from in the data window (no processing, failure, changeover, "
            "cleaning, quality or QC rows of the stations calibrated)"
        )
    ends = log.end_times()
    end = window.end if window.end is not None else (max(ends.values()) if ends else float(log.table["time"].max()))
    created = datetime.now(UTC).isoformat(timespec="seconds")
    reps = log.table["replication"].nunique()
    span = f"data {window.start:g}-{end:g} h" + (f" x {reps} replications" if reps > 1 else "")
    settings = Settings(spec.time_unit, min_observations, tuple(families), keep_families, f"{created[:10]}, {span}")
    results = [estimate(target, settings) for target in targets(spec, observed, log, chosen)]
    overrides = [
        f"{override_path(path)}={render(value)}" for r in results if r.status == CHANGED
        for path, value in r.assignments.items()
    ]  # fmt: skip
    calibrated = with_overrides(spec, overrides, source="calibrated values") if overrides else spec
    text = None
    if spec_text is not None:
        header = [
            f"Calibrated by `twin calibrate` on {created} from {source_label} ({span}):",
            f"{len(overrides)} value(s) changed, each marked 'calibrated'; the report has every estimate and fit.",
        ]
        edits = [
            Edit(tuple(path.split(".")), value, r.comment if i == 0 else "")  # one comment per parameter
            for r in results if r.status == CHANGED for i, (path, value) in enumerate(r.assignments.items())
        ]  # fmt: skip
        text = calibrated_text(spec_text, edits, header if overrides else (), spec_label) if edits else spec_text
        _check_text(text, calibrated, spec_label)
    notes = []
    if observed.unused_failures:
        notes.append(
            f"{observed.unused_failures} failure(s) before the first repair of a unit were not used: "
            "a log that does not start with the run does not say when their time to failure began"
        )
    kpis, kpi_settings = [], {}
    if replications and overrides:
        kpis, kpi_settings = _kpi_impact(spec, overrides, replications, seed, progress)
    elif not overrides:
        notes.append("no value changed: the KPIs do not move")
    report = CalibrationReport(
        line=spec.name,
        spec=spec_label,
        source=source_label,
        window={"from_hours": window.start, "to_hours": end},
        replications_in_data=int(reps),
        observations=observed.total(),
        min_observations=min_observations,
        created=created,
        parameters=results,
        kpis=kpis,
        kpi_settings=kpi_settings,
        notes=notes,
    )
    return Calibration(report, calibrated, overrides, text)


def _check_text(text: str, expected: LineSpec, source: str) -> None:
    """The written file must read back as exactly the calibrated spec."""
    data, _ = parse_yaml(text, source)
    written = spec_from_data(data, source=source)
    if written.spec_hash != expected.spec_hash:
        raise RuntimeError(f"{source}: the calibrated file does not read back as the calibrated spec")


def _kpi_impact(
    spec: LineSpec, overrides: list[str], replications: int, seed: int, progress: Callable[[float], None] | None
) -> tuple[list[KpiChange], dict[str, object]]:
    result = compare(spec, {"calibrated": overrides}, replications=replications, seed=seed, progress=progress)
    base = result.baseline.kpis.per_replication
    new = result.scenarios[0].kpis.per_replication
    rows = []
    for metric, delta in result.deltas["calibrated"].items():
        rows.append(
            KpiChange(metric, interval(base[metric]).as_dict(), interval(new[metric]).as_dict(), delta.as_dict())
        )
    run = result.baseline.settings
    settings = {"replications": replications, "seed": seed, "horizon": run["horizon"], "warmup": run["warmup"]}
    return rows, settings


def with_report_out(calibration: Calibration, out: str | None) -> Calibration:
    """The same calibration, its report saying where the spec was written."""
    return replace(calibration, report=replace(calibration.report, out=out))


__all__ = ["Calibration", "ParameterResult", "Window", "calibrate", "check_log"]
