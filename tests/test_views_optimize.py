"""Optimize beside the baseline: the spec's own design confirmed on the same horizon and draws as the best."""

from __future__ import annotations

import pytest
from conftest import serial_line

from dashboards.pages.optimize import SPACE_HAS_BASELINE, baseline_space_note, beside_baseline
from optimizers import optimize
from twin.experiment import run
from twin.stats import paired_difference


def _text(component) -> str:
    """All text of a Dash component tree."""
    children = getattr(component, "children", component)
    if children is None:
        return ""
    if isinstance(children, str):
        return children
    if isinstance(children, (list, tuple)):
        return " ".join(_text(c) for c in children)
    return _text(children)


@pytest.fixture(scope="module")
def searched():
    spec = serial_line([1.0, 1.3, 0.9], buffers=[None, 1, 1], horizon=300.0, warmup=30.0)
    return optimize(spec, vary=["stations.s2.buffer=0..4", "stations.s3.buffer=0..4"], budget={"buffers": 6},
                    objective="throughput", evaluations=16, replications=2, confirm_replications=3, seed=5,
                    workers=1)  # fmt: skip


def test_the_baseline_is_the_specs_design_on_the_best_ones_draws(searched):
    box = beside_baseline(searched, "throughput")
    text = _text(box)
    assert "Beside the spec's own design" in text and "paired" in text
    assert SPACE_HAS_BASELINE in text  # buffers 1 and 1 lie in 0..4 and within the budget
    # the same figures by hand: the spec itself on the confirmation's seed and replications
    reps, seed = int(searched.best.simpy["replications"]), int(searched.settings["confirm_seed"])
    own = run(searched.problem.spec_for(searched.problem.baseline()), replications=reps, seed=seed)
    a = own.kpis.per_replication["throughput_per_hour"].sort_index().to_numpy()
    b = searched.best.result.kpis.per_replication["throughput_per_hour"].sort_index().to_numpy()
    delta = paired_difference(a, b)
    rows = box.children[2].children[1].children
    row = _text(next(r for r in rows if r.id == "optimize-baseline-throughput_per_hour"))
    assert f"{a.mean() * 24:,.2f}" in row and f"{delta.mean * 24:,.2f}" in row


def test_a_search_space_without_the_specs_design_says_why(searched):
    spec = serial_line([1.0, 1.3, 0.9], buffers=[None, 1, 1], horizon=300.0, warmup=30.0)
    result = optimize(spec, vary=["stations.s2.buffer=2..4"], objective="throughput", evaluations=8,
                      replications=2, confirm_replications=2, seed=5, workers=1)  # fmt: skip
    note = baseline_space_note(result.problem)
    assert note == "The spec's own design is not in the search space: stations.s2.buffer = 1 lies outside 2..4."
    assert note in _text(beside_baseline(result, "throughput"))
    assert baseline_space_note(searched.problem) is None
