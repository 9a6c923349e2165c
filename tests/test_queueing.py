"""The engine against queueing theory (docs/reference/queueing.md), through confidence intervals."""

from __future__ import annotations

import math

import pytest
from conftest import assert_exact_in_ci, serial_line

from twin.engine import simulate
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec


def single_station(arrival_mean: float, service: dict, units: int = 1, horizon: float = 20000.0) -> LineSpec:
    return LineSpec.from_dict(
        {
            "name": "queue",
            "horizon": horizon,
            "warmup": horizon / 10,
            "release": {"mode": "interarrival", "interarrival": {"dist": "exponential", "mean": arrival_mean}},
            "stations": [{"name": "server", "units": units, "process_time": service}],
        }
    )


def kpis(spec: LineSpec, replications: int, seed: int = 11):
    return compute_kpis(simulate(spec, replications=replications, seed=seed)).per_replication


def test_mm1_light_load():
    # lambda = 0.5, mu = 1: L = 1, W = 2
    df = kpis(single_station(2.0, {"dist": "exponential", "mean": 1.0}), replications=20)
    assert_exact_in_ci(df["lead_time_hours"], 2.0, 0.03)
    assert_exact_in_ci(df["wip"], 1.0, 0.03)
    assert_exact_in_ci(df["throughput_per_hour"], 0.5, 0.01)


def test_mm1_heavy_load():
    # lambda = 0.9, mu = 1: L = 9, W = 10 (strong autocorrelation: long runs)
    df = kpis(single_station(1 / 0.9, {"dist": "exponential", "mean": 1.0}, horizon=60000.0), replications=20)
    assert_exact_in_ci(df["lead_time_hours"], 10.0, 0.08)
    assert_exact_in_ci(df["wip"], 9.0, 0.08)


def test_mmc_erlang_c():
    # lambda = 1.8, mu = 1, c = 2: C = 0.852632, Wq = 4.263158, W = 5.263158, L = 9.473684
    df = kpis(single_station(1 / 1.8, {"dist": "exponential", "mean": 1.0}, units=2, horizon=40000.0), replications=20)
    assert_exact_in_ci(df["lead_time_hours"], 4.263158 + 1.0, 0.06)
    assert_exact_in_ci(df["wip"], 9.473684, 0.06)


def test_md1_pollaczek_khinchine():
    # M/D/1, D = 1, lambda = 0.5: Wq = 0.5, W = 1.5
    df = kpis(single_station(2.0, {"dist": "constant", "value": 1.0}), replications=20)
    assert_exact_in_ci(df["lead_time_hours"], 1.5, 0.02)
    assert_exact_in_ci(df["wip"], 0.75, 0.02)


def two_station_bas(mu1: float, mu2: float, b: int) -> float:
    rho, k = mu1 / mu2, b + 2
    if math.isclose(rho, 1.0):
        return mu1 * k / (k + 1)
    return mu1 * (1 - rho**k) / (1 - rho ** (k + 1))


def test_two_station_formula_table():
    # the reference's table: (1,1,0) 0.666667, (1,1,1) 0.75, (1,2,0) 0.857143
    assert math.isclose(two_station_bas(1, 1, 0), 0.666667, abs_tol=1e-6)
    assert math.isclose(two_station_bas(1, 1, 1), 0.75, abs_tol=1e-6)
    assert math.isclose(two_station_bas(1, 2, 0), 0.857143, abs_tol=1e-6)


def test_two_station_finite_buffer_throughput():
    cases = [(1.0, 1.0, 0), (1.0, 1.0, 1), (1.0, 2.0, 0), (1.0, 1.0, 4), (2.0, 1.0, 2), (1.0, 1.5, 3)]
    for mu1, mu2, b in cases:
        spec = serial_line([1 / mu1, 1 / mu2], [None, b], horizon=5000.0, warmup=500.0)
        df = kpis(spec, replications=20, seed=5)
        assert_exact_in_ci(df["throughput_per_hour"], two_station_bas(mu1, mu2, b), 0.01)


def test_littles_law_line_and_station_windows():
    # L = lambda W for the whole line over the window of every replication (edge effects only)
    spec = serial_line([1.0, 1.1, 0.9], [None, 1, 2], horizon=20000.0, warmup=1000.0)
    df = kpis(spec, replications=10)
    gap = df["wip"] - df["throughput_per_hour"] * df["lead_time_hours"]
    assert (gap.abs() / df["wip"]).max() < 0.005


def test_reversibility():
    forward = serial_line([1.0, 1.25, 0.8], [None, 0, 2], horizon=8000.0, warmup=500.0)
    reverse = serial_line([0.8, 1.25, 1.0], [None, 2, 0], horizon=8000.0, warmup=500.0)
    a = kpis(forward, 20, seed=3)["throughput_per_hour"].to_numpy()
    b = kpis(reverse, 20, seed=4)["throughput_per_hour"].to_numpy()
    # the difference of two independent samples: its 99% CI must contain 0 and be narrow
    from scipy import stats

    diff = a.mean() - b.mean()
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    half = stats.t.ppf(0.995, len(a) + len(b) - 2) * se
    assert abs(diff) <= half, f"throughputs differ: {a.mean():.4f} vs {b.mean():.4f} (±{half:.4f})"
    assert half < 0.02 * a.mean()


@pytest.mark.slow
def test_zero_buffer_limit_with_operating_failures():
    # equal deterministic times, no buffers, failures only while processing:
    # one machine with efficiency 1 / (1 + sum MTTR/MTBF). The other units finish their batch while
    # one is down and may fail too; MTBF >> cycle time keeps such overlaps (and their bias) negligible.
    ratios = [(200.0, 20.0), (300.0, 15.0), (250.0, 50.0)]
    stations = []
    for j, (mtbf, mttr) in enumerate(ratios):
        stations.append(
            {
                "name": f"s{j}",
                "process_time": 1.0,
                "buffer": 0,
                "failures": {"mtbf": {"dist": "exponential", "mean": mtbf}, "mttr": mttr, "basis": "operating"},
            }
        )
    spec = LineSpec.from_dict({"name": "zb", "horizon": 60000.0, "warmup": 2000.0, "stations": stations})
    exact = 1 / (1 + sum(r / f for f, r in ratios))
    df = kpis(spec, replications=16)
    assert_exact_in_ci(df["throughput_per_hour"], exact, 0.02)


def test_infinite_buffer_limit():
    # throughput = min over stations of units * availability / mean time
    stations = [
        {"name": "a", "process_time": {"dist": "exponential", "mean": 1.0}},
        {
            "name": "b",
            "process_time": {"dist": "exponential", "mean": 1.2},
            "failures": {"mtbf": {"dist": "exponential", "mean": 10.0}, "mttr": {"dist": "exponential", "mean": 1.0}},
        },
        {"name": "c", "units": 2, "process_time": {"dist": "gamma", "mean": 2.0, "sd": 1.0}},
    ]
    spec = LineSpec.from_dict({"name": "inf", "horizon": 20000.0, "warmup": 2000.0, "stations": stations})
    exact = min(1 / 1.0, (1 / 1.1) / 1.2, 2 / 2.0)
    df = kpis(spec, replications=10)
    assert_exact_in_ci(df["throughput_per_hour"], exact, 0.02)
