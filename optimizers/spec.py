"""The ``extensions.optimize`` block of a line spec: what an optimizer may change, and what it aims for.

    extensions:
      optimize:
        vary:
          - {path: stations.*.buffer, range: 0..10}
          - {path: stations.coating.units, range: 1..3, cost: 250000}
          - {path: stations.press.speed, range: 0.8..1.5, cost: 40000}
          - {path: release.plan, range: order}
        budget: {buffers: 20}
        objective: throughput          # or cost (with target), makespan, lead_time, or [throughput, cost]
        target: {throughput_per_hour: 0.9}

Only read by ``twin optimize`` (the ``optimizers`` package), registered as the ``optimize`` entry of
``twin.spec_extensions``; the engine ignores it and ``spec_hash`` leaves it out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from twin.spec.limits import MAX_COUNT, MAX_REPLICATIONS
from twin.spec.types import SpecModel

Objective = str  # checked by the optimizer against its objective table (optimizers.objectives)


class Variable(SpecModel):
    """A decision variable: ``stations.NAME|*.buffer|units|speed`` over a range, or ``release.plan`` order."""

    path: str = Field(
        description="stations.NAME.buffer|units|speed ('*' = every station), release.plan (the order of campaigns), "
        "or a lever: operators.POOL.headcount, stations.NAME.cleaning.due.batches|hours|kg, "
        "release.plan.PRODUCT.batches, qc.analysts, release.wip_limit.batches, skids.NAME.capacity."
    )
    range: str = Field(description="LOW..HIGH (integers for buffer and units, numbers for speed), or 'order'.")
    cost: float | None = Field(None, ge=0, allow_inf_nan=False, description="Cost per buffer place, unit or speed.")


class Optimize(SpecModel):
    """Decision variables, budget, objectives and effort of an optimization."""

    vary: tuple[Variable, ...] = Field(min_length=1, description="The decision variables.")
    objective: Objective | tuple[Objective, ...] = Field(
        "throughput", description="throughput, oee, output_per_week (max); cost (min, needs a target), makespan, "
        "lead_time, release_lead_time, scrapped_batches (min); [KPI, cost] gives a Pareto front."
    )  # fmt: skip
    budget: dict[Literal["buffers", "units", "operators", "cost"], float] | None = Field(
        None, description="Upper limits on the total of varied buffer places, units, operators (headcount), or cost."
    )
    target: dict[Literal["throughput_per_hour"], float] | None = Field(
        None, description="Throughput the cost objective must reach (batches per hour)."
    )
    constraints: tuple[str, ...] = Field(
        (), max_length=100, description="Bounds the best design must meet, e.g. 'scrapped_batches<=2', 'oee>=0.4'."
    )
    evaluations: int = Field(2000, ge=1, le=MAX_COUNT, description="Designs the evaluator may simulate.")
    replications: int = Field(5, ge=1, le=MAX_REPLICATIONS, description="Replications per design during the search.")
    confirm: int = Field(
        10, ge=2, le=MAX_REPLICATIONS, description="SimPy replications confirming each reported design."
    )

    @field_validator("budget", "target")
    @classmethod
    def _positive(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and any(not (v >= 0 and v != float("inf")) for v in value.values()):
            raise ValueError("needs finite numbers >= 0")
        return value
