"""Calibration changes only what the data contradict, and its estimators are unbiased for every family.

Data are drawn from a spec's own distribution (every family the spec language has, triangular and
uniform included); the calibration of that spec from them must keep the value nearly always, the
interval of the mean must cover the true mean at its stated 95% over many seeds, and a spec that is
wrong must still be changed. Proportions: a value inside the Wilson interval is kept, and no zero
count writes a probability of 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_calibrate_recovery import binomial_range

from twin.calibrate.estimate import Settings, estimate
from twin.calibrate.fit import Durations, restricted_mean
from twin.calibrate.targets import Target
from twin.spec.distributions import parse_distribution

FAMILIES = {
    "exponential": {"dist": "exponential", "mean": 2.0},
    "gamma": {"dist": "gamma", "mean": 2.0, "sd": 0.7},
    "lognormal": {"dist": "lognormal", "mean": 2.0, "sd": 1.0},
    "weibull": {"dist": "weibull", "shape": 2.0, "scale": 2.0},
    "normal": {"dist": "normal", "mean": 2.0, "sd": 0.5},
    "triangular": {"dist": "triangular", "low": 0.5, "mode": 1.0, "high": 2.0},  # dispensing's, in hours
    "uniform": {"dist": "uniform", "low": 1.0, "high": 3.0},
}


def draws(spec: dict, n: int, seed: int, censor: bool = False) -> Durations:
    """``n`` durations of ``spec``; with ``censor``, one in ten or so still running when the data end."""
    rng = np.random.default_rng(seed)
    values = parse_distribution(spec).sampler("h")(rng, n)
    if not censor:
        return Durations.of(values)
    limits = rng.uniform(0, 12 * values.mean(), n)
    return Durations(np.minimum(values, limits), values > limits)


def target(old: dict, data: Durations) -> Target:
    return Target(("stations", "s", "process_time"), "processing", "s: processing time", "s", old, data)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_mean_interval_covers_the_true_mean_whatever_the_family(family):
    spec = FAMILIES[family]
    truth = parse_distribution(spec).mean_hours("h")
    seeds = 400
    for censor in (False, True):
        estimates = [restricted_mean(draws(spec, 150, seed, censor)) for seed in range(seeds)]
        # an interval without an upper end (the longest duration still running) reaches to infinity
        hits = sum(e.low <= truth <= (np.inf if e.high is None else e.high) for e in estimates)
        low, high = binomial_range(seeds)
        assert low <= hits <= high, f"{family} (censored: {censor}): {hits} of {seeds} cover {truth:.3f} h"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_calibrating_the_spec_on_its_own_data_keeps_it(family):
    spec = FAMILIES[family]
    seeds, kept, means_cover = 60, 0, 0
    for seed in range(seeds):
        result = estimate(target(spec, draws(spec, 300, seed + 1000)), Settings())
        kept += result.status == "kept"
        assert result.code in ("consistent", "changed"), result.reason
        means_cover += result.old_inside
        # whatever family is written, its mean agrees with the data's (no biased family wins)
        if result.status == "changed":
            data_mean = restricted_mean(draws(spec, 300, seed + 1000))
            assert data_mean.low <= result.mean_hours.value <= data_mean.high, (family, seed, result.reason)
    # a 95% interval of the mean and a 5% KS test: kept at least about 90% of the time (binomial slack)
    assert kept >= 0.8 * seeds, f"{family}: kept in {kept} of {seeds}"
    assert means_cover >= 0.85 * seeds


@pytest.mark.parametrize("family", ["gamma", "triangular", "uniform"])
def test_a_wrong_spec_is_changed(family):
    spec = FAMILIES[family]
    wrong = {"dist": "gamma", "mean": 1.3 * parse_distribution(spec).mean_hours("h"), "sd": 0.5}
    changed = sum(
        estimate(target(wrong, draws(spec, 300, seed)), Settings()).status == "changed" for seed in range(10)
    )
    assert changed == 10
    shape = {"dist": "constant", "value": parse_distribution(spec).mean_hours("h")}  # right mean, wrong shape
    result = estimate(target(shape, draws(spec, 300, 1)), Settings())
    assert result.status == "changed", result.reason


def test_the_triangular_dispensing_time_is_not_refitted_to_a_biased_mean():
    spec = FAMILIES["triangular"]  # triangular(30 min, 1 h, 2 h): mean 1.167 h
    covered = 0
    for seed in range(40):
        result = estimate(target({"dist": "gamma", "mean": 3.0, "sd": 1.0}, draws(spec, 400, seed)), Settings())
        assert result.status == "changed"
        covered += result.mean_hours.covers(7 / 6)
    low, _ = binomial_range(40)
    assert covered >= low, f"{covered} of 40 intervals of the written mean cover 1.167 h"


def proportion(old: float | None, k: int, n: int, kind: str = "reject_probability"):
    t = Target(("stations", "s", "quality", kind), kind, f"s: {kind}", "s", old, (k, n))
    return estimate(t, Settings())


def test_a_probability_inside_its_interval_is_kept_and_zero_counts_never_write_zero():
    kept = proportion(0.002, 0, 115)  # packaging: 0 rejects in 115 batches, [0, 0.032] holds 0.002
    assert kept.status == "kept" and kept.code == "consistent" and "0.002" in kept.reason
    assert kept.estimates["reject_probability"].value > 0  # not 0, even in the report
    assert proportion(0.02, 9, 243).code == "consistent"  # OOS 0.037 estimated, 0.02 inside its interval
    wrong = proportion(0.2, 0, 115)  # 0 of 115 contradicts 0.2: changed, but not to 0
    assert wrong.status == "changed" and 0 < wrong.new < 0.01 and wrong.new == pytest.approx(0.5 / 116, rel=1e-3)
    assert proportion(None, 0, 115).status == "kept"  # no rejects seen, none in the spec: nothing to write
    changed = proportion(0.002, 12, 115)
    assert changed.status == "changed" and changed.new == pytest.approx(12 / 115, rel=1e-3)
