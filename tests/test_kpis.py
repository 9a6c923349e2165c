"""KPIs as pure functions of the event log, checked on lines whose values are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import serial_line

from twin.engine import simulate
from twin.eventlog import EventLog
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec


def deterministic_unbalanced() -> LineSpec:
    # s1 1 h, s2 2 h, one buffer place: s2 works without pause from t = 1; s1 is blocked half the time
    return serial_line([1.0, 2.0], [None, 1], dist="constant", horizon=100.0, warmup=10.0)


def test_flow_kpis_of_a_deterministic_line():
    report = compute_kpis(simulate(deterministic_unbalanced()))
    row = report.per_replication.iloc[0]
    assert row["throughput_per_hour"] == pytest.approx(0.5)  # departures at 11, 13, ..., 99
    # in steady state three batches are in the line (one blocked in s1, one waiting, one in s2)
    assert row["lead_time_hours"] == pytest.approx(6.0)
    assert row["wip"] == pytest.approx(3.0, abs=0.02)
    assert row["s1.state.processing"] == pytest.approx(0.5, abs=0.012)
    assert row["s1.state.blocked"] == pytest.approx(0.5, abs=0.012)
    assert row["s2.state.processing"] == pytest.approx(1.0)
    assert row["s2.oee"] == pytest.approx(1.0, abs=0.012)
    assert row["oee"] == pytest.approx(1.0)  # the constraint (2 h) runs flat out
    assert row["bottleneck"] == "s2"
    assert row["s2.bottleneck_sole"] == pytest.approx(1.0)


def test_oee_factors_follow_iso_22400():
    # one station, 1 h per batch but a nameplate of 0.8 h, down 10% of operating time
    spec = LineSpec.from_dict(
        {
            "name": "oee", "horizon": 1000.0, "warmup": 0.0,
            "stations": [{"name": "m", "process_time": 1.0, "ideal_time": 0.8,
                          "failures": {"mtbf": 9.0, "mttr": 1.0}}],
        }
    )  # fmt: skip
    row = compute_kpis(simulate(spec)).per_replication.iloc[0]
    assert row["m.availability"] == pytest.approx(0.9, abs=1e-3)  # 9 h processing per 10 h
    assert row["m.performance"] == pytest.approx(0.8, abs=1e-3)  # ideal 0.8 h per 1 h batch
    assert row["m.quality"] == pytest.approx(1.0)
    assert row["m.oee"] == pytest.approx(0.72, abs=1e-3)
    assert row["m.oee"] == pytest.approx(row["m.availability"] * row["m.performance"] * row["m.quality"])


def test_state_fractions_partition_time_and_bottleneck_finds_the_slow_station():
    spec = serial_line([1.0, 1.6, 0.8, 1.0], [None, 1, 1, 1], horizon=3000.0, warmup=300.0)
    report = compute_kpis(simulate(spec, replications=4, seed=2))
    df = report.per_replication
    for station in ("s1", "s2", "s3", "s4"):
        total = df[[c for c in df.columns if c.startswith(f"{station}.state.")]].sum(axis=1)
        np.testing.assert_allclose(total, 1.0, atol=1e-9)
    assert report.summary["bottleneck"]["station"] == "s2"
    assert report.summary["bottleneck"]["replications"]["s2"] == 4
    shares = report.summary["bottleneck"]["share"]
    assert shares["s2"] > 2 * max(shares["s1"], shares["s3"], shares["s4"])


def test_summary_has_the_documented_shape_and_intervals():
    report = compute_kpis(simulate(serial_line([1.0, 1.2], [None, 2], horizon=2000.0), replications=6, seed=1))
    s = report.summary
    for key in ("throughput_per_hour", "lead_time_hours", "wip", "oee", "units_per_hour"):
        lo, hi = s[key]["ci95"]
        assert lo < s[key]["mean"] < hi
    assert s["replications"] == 6 and s["seed"] == 1 and len(s["spec_hash"]) == 64
    assert set(s["stations"]["s1"]) >= {"states", "utilization", "oee", "availability", "performance", "quality"}
    assert s["lead_time_hours"]["p50"]["mean"] < s["lead_time_hours"]["p90"]["mean"]


def test_kpis_are_a_function_of_the_log_alone(tmp_path):
    log = simulate(serial_line([1.0, 1.2], [None, 2], horizon=500.0), replications=3, seed=4)
    path = tmp_path / "events.parquet"
    log.to_parquet(path)
    again = EventLog.from_parquet(path)
    a, b = compute_kpis(log).per_replication, compute_kpis(again).per_replication
    assert a.equals(b)


def test_single_replication_has_no_interval():
    report = compute_kpis(simulate(serial_line([1.0], horizon=100.0, warmup=10.0), replications=1))
    assert report.summary["throughput_per_hour"]["ci95"] == [None, None]
    assert math.isfinite(report.summary["throughput_per_hour"]["mean"])


def test_kpis_per_unit_add_up_to_the_station():
    # two units share one station; the station's figures are the units' summed time
    spec = serial_line([1.0, 1.9], [None, 2], horizon=3000.0, warmup=300.0, units=[1, 2])
    report = compute_kpis(simulate(spec, replications=3, seed=6))
    df = report.per_replication
    for state in ("processing", "starved", "blocked"):
        units = (df[f"s2.unit0.state.{state}"] + df[f"s2.unit1.state.{state}"]) / 2
        np.testing.assert_allclose(units, df[f"s2.state.{state}"], atol=1e-12)
    station = report.summary["stations"]["s2"]
    assert [u["unit"] for u in station["per_unit"]] == [0, 1]
    for unit in station["per_unit"]:
        assert 0.5 < unit["utilization"]["mean"] < 1.0
        assert unit["oee"]["mean"] == pytest.approx(
            unit["availability"]["mean"] * unit["performance"]["mean"], rel=0.02
        )


def test_split_and_merge_line_is_valued_in_the_constraints_own_units():
    # granulation 2 h a batch, split into 3 lots; compression 30 min a lot; blending merges 2 lots in 45 min.
    # Per batch: granulation 2 h, compression 1.5 h, blending 1.125 h: granulation is the constraint and
    # runs flat out, so line OEE is 100%. Valued per leaving lot as a whole batch, it read 150%.
    spec = LineSpec.from_dict(
        {
            "name": "split-merge", "horizon": 400.0, "warmup": 40.0, "products": [{"name": "A", "batch_size": 300}],
            "stations": [{"name": "granulation", "process_time": 2.0, "split": 3},
                         {"name": "compression", "process_time": 0.5},
                         {"name": "blending", "process_time": 0.75, "merge": 2}],
        }
    )  # fmt: skip
    report = compute_kpis(simulate(spec))
    row = report.per_replication.iloc[0]
    assert row["units_per_hour"] == pytest.approx(150.0, rel=0.01)  # a 300-unit batch every 2 h
    assert row["oee"] == pytest.approx(1.0, abs=0.01)
    assert row["oee"] <= 1.0
    assert row["constraint"] == "granulation"
    assert report.summary["constraint"] == {
        "station": "granulation",
        "replications": {"granulation": 1, "compression": 0, "blending": 0},
    }
    for station in ("granulation", "compression", "blending"):
        assert 0.0 <= row[f"{station}.performance"] <= 1.0
    assert row["compression.oee"] == pytest.approx(0.75, abs=0.01)  # 1.5 h of work per 2 h


def test_line_oee_counts_only_what_the_window_holds():
    # s1 2 h, s2 6 min, no warm-up effects but a window starting at 11 h: the batch leaving at 12.1 h was
    # made at s1 from 10 h to 12 h; the window holds 1 h of it. Over (11, 13] s1 earned 2 h of its 2 h.
    spec = serial_line([2.0, 0.1], dist="constant", horizon=13.0, warmup=11.0)
    row = compute_kpis(simulate(spec)).per_replication.iloc[0]
    assert row["throughput_per_hour"] == pytest.approx(0.5)  # one batch leaves in the 2 h window (12.1 h)
    assert row["constraint"] == "s1"
    # valued at s1: the leaving batch needs 2 h, but s1 earned 1 h (10-12 batch) + 1 h (12-14 batch, in process)
    assert row["oee"] == pytest.approx(1.0)
    # station performance counts finished batches: the window holds half of the 10-12 h batch (1 h of ideal time
    # in 2 h processing); the 12-14 h batch has produced nothing yet when the log ends
    assert row["s1.performance"] == pytest.approx(0.5)
    short = compute_kpis(simulate(spec), warmup=11.9).per_replication.iloc[0]  # a 1.1 h window, 0.1 h of s1's batch
    assert short["oee"] <= 1.0 and short["s1.performance"] <= 1.0 and short["s2.performance"] <= 1.0
    assert short["oee"] == pytest.approx(1.0)  # s1 busy all the window: 1.1 h earned, 2 h needed
