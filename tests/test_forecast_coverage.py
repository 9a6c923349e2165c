"""Forecast intervals cover what they claim, over many seeds; and what a forecast prints agrees with itself.

For each seed, a run of a random line is the "plant": a forecast from its snapshot at 20 h says how
many batches leave the line in the next hours and when each batch in the line leaves it (90%
prediction intervals of 30 runs, as the shadow twin makes them); the run itself says what happened.
Coverage is counted over 300 seeds, with its 95% confidence interval (batches of one forecast are
correlated, so their interval treats forecasts as the sampled units). A batch's 5th-95th percentile
interval claims 90%, or 95% where its 95th percentile is "after the horizon" (then only the lower 5%
lies outside it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import run_cli
from scipy import stats
from test_forecast import varied_line

from twin.calibrate.proportions import batch_yield, wilson
from twin.engine import simulate
from twin.forecast import TIME_BASE, forecast, prediction_interval, remaining_time_unknown_start
from twin.snapshot import snapshot_from_log

SEEDS, RUNS, AT, HORIZON, LEVEL = range(300), 30, 20.0, 8.0, 0.9


@pytest.fixture(scope="module")
def scored() -> dict[str, list]:
    return score()


def score() -> dict[str, list]:
    """Per seed: whether the count interval covered the count, and the share of the forecast's runs inside it;
    per forecast, its batches' outcomes (covered, claim), and the same for the old percentiles."""
    spec = varied_line()
    counts, counts_old, batches, batches_old = [], [], [], []
    for seed in SEEDS:
        log = simulate(spec, seed=seed, horizon=AT + HORIZON, warmup=0.0)
        table = log.table
        out = table[(table["event"] == "leave") & (table["station"] == "s3")]
        done = int((out["time"] > AT).sum())
        fc = forecast(spec, snapshot_from_log(log, at=AT), HORIZON, replications=RUNS, seed=seed + 10_000)
        draws = fc.totals["completed"].to_numpy()
        low, _, high = prediction_interval(draws, LEVEL, whole=True)
        counts.append((low <= done <= high, float(np.mean((draws >= low) & (draws <= high)))))
        p5, p95 = np.quantile(draws, [0.05, 0.95])  # numpy's default (type 7), as the forecasts used before
        counts_old.append(p5 <= done <= p95)
        left = dict(zip(out["batch"], out["time"] - AT, strict=True))
        mine, mine_old = [], []
        for batch, times in fc.times["leave"].items():
            actual = left.get(batch, math.inf)  # inf: after the horizon
            low, _, high = prediction_interval(times, LEVEL)
            mine.append((low <= actual <= high, _claim(low, high)))
            within = times[np.isfinite(times)]  # before: percentiles of the runs where it left, type 7
            mine_old.append(bool(len(within)) and np.quantile(within, 0.05) <= actual <= np.quantile(within, 0.95))
        batches.append(mine)
        batches_old.append(mine_old)
    return {"counts": counts, "counts_old": counts_old, "batches": batches, "batches_old": batches_old}


def _claim(low: float, high: float) -> str:
    """What a batch's interval claims: 90% between two times; 95% where it reaches past the horizon (only its
    lower 5% tail is outside); "after" where even its 5th percentile is after the horizon."""
    return "90%" if math.isfinite(high) else "95%" if math.isfinite(low) else "after"


def _clustered(per_forecast: list[list[bool]]):
    """Share covered over all batches, with a 95% interval that treats forecasts as the sampled units."""
    n = [len(b) for b in per_forecast if b]
    missed = [len(b) - sum(b) for b in per_forecast if b]
    return batch_yield(n, missed)


@pytest.mark.slow
@pytest.mark.parametrize(("claim", "nominal"), [("90%", 0.90), ("95%", 0.95)])
def test_batch_completion_intervals_cover_what_they_claim(scored, claim, nominal):
    mine = [[covered for covered, c in forecast if c == claim] for forecast in scored["batches"]]
    assert sum(len(b) for b in mine) > 300  # enough batches for the interval to mean something
    coverage = _clustered(mine)
    assert coverage.high - coverage.low < 0.08, coverage
    assert coverage.low <= nominal <= coverage.high, (claim, coverage)


def test_the_old_batch_percentiles_fall_short(scored):
    # percentiles of the runs in which the batch left (conditional on leaving within the horizon, numpy's
    # interpolation): what the forecasts printed before; they cover far less than 90%
    assert _clustered(scored["batches_old"]).high < LEVEL - 0.05


def test_count_intervals_cover_at_least_90_percent_and_what_they_claim(scored):
    # a count is whole: its interval's bounds are whole numbers rounded outwards, so it covers at least 90%;
    # a small count is discrete, so more: as much as the forecast's own runs say the interval holds
    covered = [c for c, _ in scored["counts"]]
    share = wilson(sum(covered), len(covered))
    assert share.high >= LEVEL, share
    claimed = float(np.mean([p for _, p in scored["counts"]]))
    assert share.low <= claimed <= share.high, (share, claimed)
    assert sum(covered) >= sum(scored["counts_old"])  # never below the old interpolated interval


def test_prediction_interval_ranks():
    draws = np.arange(1.0, 30.0 + 1)  # 30 draws: rank p (n + 1) = 1.55 and 29.45
    low, mid, high = prediction_interval(draws, 0.9)
    assert (low, mid, high) == pytest.approx((1.55, 15.5, 29.45))
    assert prediction_interval(np.array([1.0, 2.0, math.inf, math.inf]), 0.9)[2] == math.inf  # after the horizon
    assert prediction_interval(np.array([3.0, 4.0, 4.0, 5.0]), 0.9, whole=True) == (3, 4.0, 5)
    # a new draw falls inside with chance 0.9: exactly where the distribution is uniform between order
    # statistics, a little more in a skewed tail (interpolating linearly where the density falls), never less
    rng = np.random.default_rng(3)
    for draw, most in ((lambda n: rng.uniform(0, 1, n), 0.915), (lambda n: rng.lognormal(0, 1, n), 0.93)):
        hits = []
        for x in draw((4000, 31)):
            low, _, high = prediction_interval(x[:30], 0.9)
            hits.append(low <= x[30] <= high)
        share = wilson(sum(hits), len(hits))
        assert share.high >= 0.9 and share.value <= most, share
        if most < 0.92:  # uniform: exact
            assert share.low <= 0.9, share


def test_remaining_time_of_a_duration_under_way_when_the_data_began():
    # durations uniform(1, 3) back to back; the data begin at a random moment; 0.5 h later it still runs
    rng = np.random.default_rng(5)
    ends = np.cumsum(rng.uniform(1.0, 3.0, 400_000))
    moments = rng.uniform(10.0, ends[-1] - 10.0, 40_000)
    left = ends[np.searchsorted(ends, moments)] - moments  # what was left when the data began
    truth = left[left > 0.5] - 0.5
    uniform = lambda g, n: g.uniform(1.0, 3.0, n)  # noqa: E731
    drawn = np.array([remaining_time_unknown_start(uniform, 0.5, rng) for _ in range(3000)])
    assert stats.ks_2samp(truth, drawn).pvalue > 0.01
    known = np.array([remaining_time_unknown_start(uniform, 0.0, rng) for _ in range(3000)])
    assert stats.ks_2samp(left, known).pvalue > 0.01
    assert drawn.max() <= 2.5 + 1e-9  # never more than the longest duration less what was seen


def test_the_table_and_json_list_every_batch_in_the_same_time_base(tmp_path):
    import json

    import yaml

    spec = varied_line()
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(spec.to_data()))
    snap = snapshot_from_log(simulate(spec, seed=7, horizon=40.0, warmup=0.0), at=20.0)
    state = snap.save(tmp_path / "s.json")
    live = sorted({u.batch for u in snap.units if u.batch >= 0} | {b for w in snap.buffers.values() for b in w})
    done = run_cli("forecast", str(path), "--state", str(state), "--horizon", "2h", "-r", "20", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [b["batch"] for b in data["batches"]] == live and data["time_base"].startswith(TIME_BASE)
    fc = forecast(spec, snap, 2.0, replications=20, seed=1)
    assert data["batches"] == json.loads(json.dumps(fc.batch_records()))
    # a 2 h horizon leaves some batches after it: their later percentiles say so, not a time within the horizon
    later = [b for b in data["batches"] if b["leaves_line"]["p95"] is None]
    assert later and all(b["leaves_line"]["chance"] < 0.95 for b in later)
    for b in data["batches"]:
        times = [b["leaves_line"][k] for k in ("p5", "p50", "p95")]
        finite = [t for t in times if t is not None]
        assert finite == sorted(finite) and all(0 <= t <= 2.0 for t in finite)
        if b["leaves_line"]["chance"] < 0.5:
            assert b["leaves_line"]["p50"] is None  # the median is after the horizon
    table = run_cli("forecast", str(path), "--state", str(state), "--horizon", "2h", "-r", "20")
    assert table.returncode == 0, table.stderr
    assert TIME_BASE in " ".join(table.stdout.split())
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    listed = [int(r.strip("│").split("│")[0]) for r in rows[1:]]  # the first row is the totals'
    assert listed == live
    assert any("after" in r for r in rows[1:])


if __name__ == "__main__":  # the figures in the README: python tests/test_forecast_coverage.py
    result = score()
    for claim in ("90%", "95%"):
        mine = [[covered for covered, c in forecast if c == claim] for forecast in result["batches"]]
        share = _clustered(mine)
        print(f"batch intervals claiming {claim}: {share.value:.1%} [{share.low:.1%}, {share.high:.1%}] "
              f"of {sum(map(len, mine))}")
    old = _clustered(result["batches_old"])
    print(f"old batch percentiles: {old.value:.1%} [{old.low:.1%}, {old.high:.1%}]")
    covered = [c for c, _ in result["counts"]]
    share = wilson(sum(covered), len(covered))
    print(f"count intervals: {share.value:.1%} [{share.low:.1%}, {share.high:.1%}] of {len(covered)}, "
          f"claimed {np.mean([p for _, p in result['counts']]):.1%}; old {np.mean(result['counts_old']):.1%}")
