"""A sweep's plan: every point's spec validated before anything runs, and the key of its results.

    >>> sweep = plan_sweep(spec, grid_points(["stations.m2.buffer=0..8"]), replications=10, seed=1)
    >>> sweep.sweep_id, len(sweep.points), sweep.points[0].spec.spec_hash

Every point uses the same seed, so points differ only by what they change (common random
numbers), and a point's results depend on nothing but (spec, seed, replications, horizon, warm-up):
its ``key``. The sweep id is a hash of its points, so the same command gives the same sweep id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twin.engine.simulate import check_run_arguments
from twin.errors import InputError, Problem, SpecError
from twin.experiment import with_overrides
from twin.spec.model import LineSpec
from twin.store.store import point_key
from twin.sweep.points import Point


@dataclass(frozen=True)
class PlannedPoint:
    """A point with its validated spec and run settings."""

    point: Point
    spec: LineSpec
    overrides: tuple[str, ...]  # the spec file's --set overrides, then the point's
    horizon: float
    warmup: float
    key: str

    @property
    def name(self) -> str:
        return self.point.name


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs: planned points with one seed and replication count."""

    sweep_id: str
    source: str
    base: LineSpec
    base_overrides: tuple[str, ...]
    axes: tuple[str, ...]
    points: tuple[PlannedPoint, ...]
    replications: int
    seed: int

    def unique_points(self) -> list[PlannedPoint]:
        """One point per key (two rows asking for the same spec run once)."""
        seen: dict[str, PlannedPoint] = {}
        for p in self.points:
            seen.setdefault(p.key, p)
        return list(seen.values())

    def manifest(self) -> dict[str, Any]:
        """A JSON-ready record of the sweep (stored as ``sweeps/<sweep_id>.json``)."""
        return {
            "sweep_id": self.sweep_id,
            "source": self.source,
            "line": self.base.name,
            "base_spec_hash": self.base.spec_hash,
            "base_overrides": list(self.base_overrides),
            "axes": list(self.axes),
            "replications": self.replications,
            "seed": self.seed,
            "points": [
                {
                    "name": p.name,
                    "assignments": [list(a) for a in p.point.assignments],
                    "overrides": list(p.overrides),
                    "spec_hash": p.spec.spec_hash,
                    "point_key": p.key,
                    "horizon": p.horizon,
                    "warmup": p.warmup,
                }
                for p in self.points
            ],
        }


def plan_sweep(
    base: LineSpec,
    points: Sequence[Point],
    replications: int = 5,
    seed: int = 1,
    horizon: float | None = None,
    warmup: float | None = None,
    source: str = "<spec>",
    base_overrides: Sequence[str] = (),
) -> Sweep:
    """Validate every point (raising one ``SpecError`` with every problem of every point) and plan the sweep.

    ``horizon``/``warmup`` (hours) override each point's; ``base`` already carries ``base_overrides``.
    """
    check_run_arguments(replications, seed, 1.0, 0.0)
    points = list(points) or [Point("baseline", ())]
    planned, problems = [], []
    for point in points:
        labels = {f"--set {o}": origin for o, origin in zip(point.overrides, point.origins, strict=False)}
        try:
            spec = with_overrides(base, point.overrides, source=f"scenario {point.name!r}")
        except SpecError as err:
            problems += [Problem(labels.get(p.source, p.source), p.path, p.message, p.line) for p in err.problems]
            continue
        hours = spec.horizon_hours if horizon is None else float(horizon)
        warm = spec.warmup_hours if warmup is None else float(warmup)
        try:
            check_run_arguments(replications, seed, hours, warm)
        except InputError as err:  # e.g. a warm-up that outlasts the point's horizon
            problems.append(Problem(f"scenario {point.name!r}", "", str(err)))
            continue
        key = point_key(spec.spec_hash, seed, replications, hours, warm)
        planned.append(PlannedPoint(point, spec, (*base_overrides, *point.overrides), hours, warm, key))
    if problems:
        unique = list(dict.fromkeys(problems))  # a bad axis value fails every point that has it: say it once
        raise SpecError(unique)
    axes = tuple(dict.fromkeys(path for p in points for path, _ in p.assignments))
    identity = json.dumps([[p.name, p.key] for p in planned])
    sweep_id = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Sweep(sweep_id, source, base, tuple(base_overrides), axes, tuple(planned), replications, seed)
