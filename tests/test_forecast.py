"""Snapshots of a line's state and forecasts from them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli
from scipy import stats

from twin.engine import simulate
from twin.errors import InputError
from twin.forecast import forecast, remaining_time
from twin.models import load_spec
from twin.snapshot import Snapshot, snapshot_from_log
from twin.spec.model import LineSpec


def deterministic_line() -> LineSpec:
    return LineSpec.from_dict(
        {
            "name": "det", "horizon": 60.0,
            "release": {"mode": "plan", "repeat": True, "plan": [{"product": "batch", "batches": 1}]},
            "stations": [
                {"name": "s1", "process_time": 1.5, "cleaning": {"minor": 0.25}},
                {"name": "s2", "process_time": 2.0, "buffer": 1},
                {"name": "s3", "process_time": 1.0, "buffer": 0},
            ],
            "qc": {"analysts": 1, "test_time": 3.0, "incubation": 5.0},
        }
    )  # fmt: skip


def test_snapshot_of_a_deterministic_run():
    # s1 (1.5 h, then a 15 min clean) has just passed batch 5 on and cleans since 10.25 h; s2 and s3 have
    # run batches 4 and 3 for 0.8 h; batch 5 waits at s2; QC: batch 0 incubates (tested 4.5-7.5), batch 1
    # is tested since 7.5, batch 2 waits since 8.5
    log = simulate(deterministic_line(), seed=1)
    snap = snapshot_from_log(log, at=10.3)
    s1, s2, s3 = snap.units
    assert (s1.state, s1.batch, s1.activity, s1.since) == ("cleaning", -1, "clean", 10.25)
    assert (s2.state, s2.batch) == ("processing", 4) and s2.elapsed == pytest.approx(0.8)
    assert (s3.state, s3.batch) == ("processing", 3) and s3.elapsed == pytest.approx(0.8)
    assert snap.buffers == {"s2": [5]}
    assert [(q.batch, q.phase, q.since) for q in snap.quarantine] == [
        (0, "incubating", 7.5), (1, "testing", 7.5), (2, "waiting", 8.5),
    ]  # fmt: skip
    assert snap.released == 6 and snap.next_batch == 6
    assert snap.batches[5].released == pytest.approx(8.75)


def test_a_forecast_of_a_deterministic_line_continues_the_run_exactly(tmp_path):
    spec = deterministic_line()
    log = simulate(spec, seed=1)
    snap = Snapshot.load(snapshot_from_log(log, at=10.3).save(tmp_path / "s.json"))
    fc = forecast(spec, snap, horizon=49.7, replications=2, seed=9)
    actual = log.table[(log.table["time"] > 10.3) & log.table["event"].isin(["leave", "approve", "qc_start"])]
    for rep in (0, 1):
        predicted = fc.log.table[(fc.log.table["replication"] == rep) & (fc.log.table["time"] > 10.3)]
        predicted = predicted[predicted["event"].isin(["leave", "approve", "qc_start"])]
        assert list(
            zip(predicted["time"].round(9), predicted["batch"], predicted["event"].astype(str), strict=True)
        ) == list(zip(actual["time"].round(9), actual["batch"], actual["event"].astype(str), strict=True))


def varied_line() -> LineSpec:
    return LineSpec.from_dict(
        {
            "name": "varied", "horizon": 40.0,
            "stations": [
                {"name": "s1", "process_time": {"dist": "uniform", "low": 0.5, "high": 1.5}},
                {"name": "s2", "buffer": 1, "process_time": {"dist": "triangular", "low": 0.8, "mode": 1.0, "high": 2.0},
                 "failures": {"mtbf": {"dist": "exponential", "mean": 6.0},
                              "mttr": {"dist": "uniform", "low": 1.0, "high": 3.0}}},
                {"name": "s3", "buffer": 0, "process_time": {"dist": "uniform", "low": 1.0, "high": 1.6}},
            ],
        }
    )  # fmt: skip


def completions(spec: LineSpec, seeds: range, at: float, horizon: float, elapsed_known: bool = True):
    """Completions in (at, at + horizon]: of the runs themselves, and of a forecast from each run's snapshot."""
    actual, predicted = [], []
    for seed in seeds:
        log = simulate(spec, seed=seed, horizon=at + horizon, warmup=0.0)
        table = log.table
        out = (table["event"] == "leave") & (table["station"] == "s3")
        actual.append(int((out & (table["time"] > at)).sum()))
        snap = snapshot_from_log(log, at=at)
        if not elapsed_known:  # a careless forecast that forgets how long batches have run
            snap = snap.model_copy(update={"units": [u.model_copy(update={"elapsed": 0.0}) for u in snap.units]})
        fc = forecast(spec, snap, horizon, replications=1, seed=seed + 10_000)
        predicted.append(int(fc.totals["completed"].iloc[0]))
    return np.array(actual), np.array(predicted)


def test_forecast_completions_follow_the_runs_distribution():
    # over many runs, completions forecast from a snapshot at 20 h have the distribution of what the runs did
    spec = varied_line()
    actual, predicted = completions(spec, range(200), at=20.0, horizon=5.0)
    assert stats.ttest_ind(actual, predicted).pvalue > 0.01, (actual.mean(), predicted.mean())
    assert stats.ks_2samp(actual, predicted).pvalue > 0.01
    se = np.sqrt(actual.var(ddof=1) / len(actual) + predicted.var(ddof=1) / len(predicted))
    assert se < 0.05 * actual.mean()  # the test is sharp enough to mean something


def test_the_consistency_test_catches_a_forecast_that_ignores_elapsed_time():
    spec = varied_line()
    actual, careless = completions(spec, range(200), at=20.0, horizon=5.0, elapsed_known=False)
    assert stats.ttest_ind(actual, careless).pvalue < 0.01, (actual.mean(), careless.mean())


def test_remaining_time_is_conditional_on_elapsed():
    rng = np.random.default_rng(0)
    uniform = lambda g, n: g.uniform(1.0, 3.0, n)  # noqa: E731
    left = np.array([remaining_time(uniform, 2.5, rng) for _ in range(2000)])
    assert left.min() >= 0 and left.max() <= 0.5
    assert left.mean() == pytest.approx(0.25, abs=0.01)
    assert remaining_time(uniform, 10.0, rng) == 0.0  # past every possible duration: done now


def test_bad_snapshots_and_horizons(tmp_path):
    spec = deterministic_line()
    snap = snapshot_from_log(simulate(spec, seed=1), at=10.3)
    with pytest.raises(InputError, match="a snapshot of line 'det'"):
        forecast(load_spec("osd-tablet"), snap, 24.0)
    with pytest.raises(InputError, match="horizon must be positive"):
        forecast(spec, snap, 0.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"line": "det", "time": "soon"}', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: "):
        Snapshot.load(bad)
    path = snap.save(tmp_path / "det.json")
    result = run_cli("forecast", "osd-tablet", "--state", str(path), "--horizon", "24h")
    assert result.returncode == 2 and "a snapshot of line 'det'" in result.stderr
    result = run_cli("forecast", "osd-tablet", "--state", str(tmp_path / "none.json"), "--horizon", "24h")
    assert result.returncode == 2 and "no such snapshot file" in result.stderr


def test_snapshot_and_forecast_commands(tmp_path):
    out = tmp_path / "run"
    assert (
        run_cli("run", "osd-tablet", "-r", "1", "--horizon", "900h", "--warmup", "0", "--out", str(out)).returncode == 0
    )
    taken = run_cli("snapshot", str(out), "--at", "700h", "--out", str(tmp_path / "s.json"))
    assert taken.returncode == 0 and "in quarantine" in taken.stdout
    import json

    result = run_cli(
        "forecast", "osd-tablet", "--state", str(tmp_path / "s.json"), "--horizon", "72h", "-r", "10", "--json"
    )
    data = json.loads(result.stdout)
    assert (
        data["totals"]["completed"]["p5"] <= data["totals"]["completed"]["mean"] <= data["totals"]["completed"]["p95"]
    )
    assert data["kpis"]["window_hours"][0] == 700.0


def test_calendar_failures_of_a_forecast_start_at_the_snapshot():
    """A unit's calendar failure clock starts where the forecast starts: no failures from before the snapshot
    pile up on the batches in process, and a late snapshot forecasts as much output as an early one."""
    spec = LineSpec.from_dict(
        {
            "name": "cal", "horizon": 1200.0,
            "release": {"mode": "saturated"},
            "stations": [
                {"name": "s1", "process_time": 1.0,
                 "failures": {"mtbf": {"dist": "exponential", "mean": 20.0}, "mttr": 1.0, "basis": "calendar"}},
                {"name": "s2", "process_time": 0.8, "buffer": 2},
            ],
        }
    )  # fmt: skip
    log = simulate(spec, replications=1, seed=4)
    made = {}
    for at in (100.0, 1100.0):
        result = forecast(spec, snapshot_from_log(log, at), horizon=24.0, replications=40, seed=2)
        table = result.log.table
        assert table.loc[table["event"].isin(["fail", "repair"]), "time"].min() >= at - 1e-9
        made[at] = result.totals["completed"].mean()
    # about 24 h × 20/21 availability of a 1 h station, either way
    assert 19 < made[100.0] < 25 and 19 < made[1100.0] < 25 and abs(made[100.0] - made[1100.0]) < 2
