"""The shape of ``KpiReport.summary``: typed dictionaries, each field with what it means.

    >>> summary: KpiSummary = compute_kpis(log).summary
    >>> summary["throughput_per_hour"]["mean"], summary["stations"]["coating"]["oee"]["ci95"]

The summary is plain JSON (``twin run --json`` prints it; run folders and the run store keep it), so
it is a tree of ``TypedDict`` rather than of classes: readers keep indexing it by key, and a type
checker knows every key. The text after each field's type (``Annotated[..., "..."]``) is its
meaning; the docs' KPI reference is generated from it (``field_rows``).
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict, get_args, get_origin, get_type_hints, is_typeddict


class Interval(TypedDict):
    """A mean across replications and its 95% Student-t confidence interval."""

    mean: Annotated[float | None, "mean over the replications (null when no replication defines it)"]
    ci95: Annotated[list[float | None], "[low, high] of the 95% interval, cut at 0 (and at 1 for shares)"]


class LeadTime(Interval):
    """Lead time (release of the earliest ancestor to leaving the last station) with percentiles."""

    p50: Annotated[Interval, "median lead time of the batches leaving in the window (hours)"]
    p90: Annotated[Interval, "90th percentile of the lead times (hours)"]


class ReleaseLeadTime(Interval):
    """Release lead time (release of the earliest ancestor to QC approval)."""

    p90: Annotated[Interval, "90th percentile of the release lead times (hours)"]


class UnitKpis(TypedDict):
    """One unit (machine) of a station."""

    unit: Annotated[int, "unit number within the station, from 0"]
    states: Annotated[dict[str, float | None], "share of the unit's time in each equipment state (sums to 1)"]
    utilization: Annotated[Interval, "share of the unit's time processing"]
    availability: Annotated[Interval, "ISO 22400-2 availability A = APT / PBT"]
    performance: Annotated[Interval, "ISO 22400-2 effectiveness P = ideal time of the batches produced / APT"]
    quality: Annotated[Interval, "ISO 22400-2 quality Q = good quantity / produced quantity"]
    oee: Annotated[Interval, "OEE = A x P x Q"]


class StationBottleneck(TypedDict):
    """How often a station was the bottleneck (active-period method)."""

    sole: Annotated[float | None, "share of the window it was the sole bottleneck"]
    shifting: Annotated[float | None, "share of the window it was a shifting bottleneck"]
    replications: Annotated[int, "replications in which it was the main bottleneck"]


class StationKpis(TypedDict):
    """One station, over all its units."""

    units: Annotated[int, "parallel units of the station"]
    states: Annotated[dict[str, float | None], "share of the station's unit-time in each equipment state"]
    utilization: Annotated[Interval, "share of unit-time processing"]
    availability: Annotated[Interval, "ISO 22400-2 availability A = APT / PBT"]
    performance: Annotated[Interval, "ISO 22400-2 effectiveness P = ideal time of the batches produced / APT"]
    quality: Annotated[Interval, "ISO 22400-2 quality Q = good quantity / produced quantity"]
    oee: Annotated[Interval, "station OEE = A x P x Q"]
    per_unit: Annotated[list[UnitKpis], "the same, per unit"]
    bottleneck: Annotated[StationBottleneck, "bottleneck shares of the station"]


class Constraint(TypedDict):
    """The station line OEE is valued at."""

    station: Annotated[str | None, "the constraint in the most replications (ties: the earlier station)"]
    replications: Annotated[dict[str, int], "replications in which each station was the constraint"]


class Quality(TypedDict):
    """Losses per replication."""

    rejected_batches: Annotated[Interval, "batches rejected at stations and by QC"]
    lost_units: Annotated[Interval, "units (tablets, vials) lost to scrap and rejects"]
    hold_violations: Annotated[Interval, "hold-time violations (material waited longer than allowed)"]


class Release(TypedDict):
    """Quarantine and QC release after the last station."""

    released_per_hour: Annotated[Interval, "batches approved by QC per hour"]
    lead_time_hours: Annotated[ReleaseLeadTime, "release lead time: release to approval (hours)"]
    qc_time_hours: Annotated[Interval, "QC time: quarantine to approval or rejection (hours)"]
    quarantine: Annotated[Interval, "time-average batches in quarantine"]
    quarantine_max: Annotated[Interval, "most batches in quarantine at once"]
    rejected_batches: Annotated[Interval, "batches QC rejected (out of specification)"]


class LineBottleneck(TypedDict):
    """The line's bottleneck (active-period method, Roser et al.)."""

    station: Annotated[str | None, "the main bottleneck in the most replications (then the largest share)"]
    share: Annotated[dict[str, float], "share of the window each station was a sole or shifting bottleneck"]
    replications: Annotated[dict[str, int], "replications in which each station was the main bottleneck"]


class KpiSummary(TypedDict):
    """Every KPI of a run: means and 95% intervals across replications (``twin run --json``)."""

    line: Annotated[str, "name of the line"]
    spec_hash: Annotated[str | None, "SHA-256 of the simulated spec (null for a plant's log)"]
    seed: Annotated[int | None, "seed of all random streams (null for a plant's log)"]
    replications: Annotated[int, "replications with a window after the warm-up"]
    window_hours: Annotated[list[float | None], "[warm-up, mean end] of the observed window (hours)"]
    throughput_per_hour: Annotated[Interval, "batches leaving the last station per hour"]
    units_per_hour: Annotated[Interval, "units (tablets, vials) leaving the last station per hour"]
    lead_time_hours: Annotated[LeadTime, "lead time of the batches leaving in the window (hours)"]
    wip: Annotated[Interval, "time-average batches in process (Little's law: L = throughput x lead time)"]
    oee: Annotated[Interval, "line OEE: the good output valued at the constraint's ideal hours, over the window"]
    constraint: Annotated[Constraint, "the station line OEE is valued at"]
    quality: Annotated[Quality, "losses"]
    release: Annotated[Release, "quarantine and QC release"]
    stations: Annotated[dict[str, StationKpis], "per station, by name, in flow order"]
    bottleneck: Annotated[LineBottleneck, "the line's bottleneck"]


#: The factors of every station and unit, in the summary's order: its ``{mean, ci95}`` fields.
STATION_FACTORS: tuple[str, ...] = tuple(k for k, v in get_type_hints(UnitKpis).items() if v is Interval)


def field_rows(kind: Any = KpiSummary, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted path, type, meaning) of every field of ``kind``, depth first; ``NAME`` stands for a map key.

    Fields of type ``Interval`` are listed once (``{mean, ci95}``) rather than expanded.
    """
    rows: list[tuple[str, str, str]] = []
    hints = get_type_hints(kind, include_extras=True)
    for name, hint in hints.items():
        meaning = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, str)), "")
        inner = get_args(hint)[0] if getattr(hint, "__metadata__", None) else hint
        path = f"{prefix}{name}"
        rows.append((path, _type_name(inner), meaning))
        child, suffix = _child(inner)
        if child is not None and child is not Interval:
            own = set(Interval.__required_keys__) if _is_interval(child) else set()
            rows.extend(r for r in field_rows(child, f"{path}{suffix}.") if r[0].rsplit(".", 1)[-1] not in own)
    return rows


def _child(hint: Any) -> tuple[Any, str]:
    """The typed dict inside ``hint`` (itself, a map's value, a list's item) and the path suffix to it."""
    if is_typeddict(hint):
        return hint, ""
    origin, args = get_origin(hint), get_args(hint)
    if origin is dict and is_typeddict(args[1]):
        return args[1], ".NAME"
    if origin is list and is_typeddict(args[0]):
        return args[0], "[i]"
    return None, ""


def _is_interval(kind: Any) -> bool:
    """An ``Interval`` or a typed dict that extends it (TypedDicts support no ``issubclass``)."""
    return Interval.__required_keys__ <= kind.__required_keys__


def _type_name(hint: Any) -> str:
    if is_typeddict(hint):
        if hint is Interval:
            return "{mean, ci95}"
        return "{mean, ci95, ...}" if _is_interval(hint) else "object"
    origin, args = get_origin(hint), get_args(hint)
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if args:  # a union
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return {"float": "number", "int": "integer", "str": "text"}.get(getattr(hint, "__name__", str(hint)), str(hint))
