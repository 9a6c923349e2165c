"""The JAX evaluator's departures equal the SimPy engine's, batch by batch, on the same draws (1e-9)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizers.evaluator import Evaluator
from twin.engine import simulate
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec

DISTS = [
    {"dist": "exponential", "mean": 1.0},
    {"dist": "uniform", "low": 0.2, "high": 1.8},
    {"dist": "lognormal", "mean": 1.0, "sd": 0.7},
    {"dist": "triangular", "low": 0.1, "mode": 0.5, "high": 2.0},
    {"dist": "constant", "value": 0.75},
    {"dist": "gamma", "mean": 1.2, "sd": 0.4},
]


def engine_departures(table: Any, stations: list[str]) -> dict[tuple[int, int], float]:
    leave = table[table["event"] == "leave"]
    codes = {name: j for j, name in enumerate(stations)}
    return {
        (codes[s], int(b)): float(t)
        for s, b, t in zip(leave["station"].astype(str), leave["batch"], leave["time"], strict=True)
    }


def assert_same_departures(spec: LineSpec, seed: int) -> Any:
    """Compare every departure the evaluator makes before the horizon with the engine's; return both KPIs."""
    ev = Evaluator(spec, seed=seed, replications=1, record=True)
    res = ev.evaluate()
    dep, batch, valid = (res.extra[k][0, 0] for k in ("departure", "batch", "valid"))
    engine = engine_departures(simulate(spec, seed=seed).table, [s.name for s in spec.stations])
    compared = 0
    for t, j in zip(*np.nonzero(valid & (dep <= spec.horizon_hours)), strict=True):
        key = (int(j), int(batch[t, j]))
        assert key in engine, f"batch {key[1]} leaves station {key[0]} at {dep[t, j]} in the evaluator only"
        assert abs(engine[key] - dep[t, j]) < 1e-9, (key, engine[key], dep[t, j])
        compared += 1
    assert compared == sum(1 for t in engine.values() if t <= spec.horizon_hours)
    return res


@st.composite
def line_specs(draw: Any) -> LineSpec:
    n = draw(st.integers(1, 5))
    two_products = draw(st.booleans())
    release = draw(st.sampled_from(["saturated", "plan", "plan-once", "interarrival", "plan-arrivals"]))
    products = [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}] if two_products else None
    stations = []
    for j in range(n):
        units = draw(st.sampled_from([1, 1, 2, 3]))
        setups = two_products and units == 1 and draw(st.booleans())
        pt: Any = draw(st.sampled_from(DISTS))
        if two_products and draw(st.booleans()):
            pt = {"A": pt, "B": draw(st.sampled_from(DISTS))}
        station: dict[str, Any] = {"name": f"s{j + 1}", "units": units, "process_time": pt}
        buffer = draw(st.one_of(st.none(), st.integers(0, 3)))
        if buffer is not None:
            station["buffer"] = buffer
        if draw(st.booleans()):
            mtbf = draw(
                st.sampled_from([{"dist": "exponential", "mean": 6.0}, 5.0, {"dist": "uniform", "low": 2, "high": 9}])
            )
            station["failures"] = {
                "mtbf": mtbf,
                "mttr": draw(st.sampled_from([{"dist": "exponential", "mean": 0.8}, 0.5])),
            }
        if setups:
            station["setup"] = draw(
                st.sampled_from(
                    [{"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}}, {"*->*": 0.4, "A->A": 0.1}]
                )
            )
        stations.append(station)
    data: dict[str, Any] = {"name": "prop", "horizon": 120.0, "warmup": 20.0, "stations": stations}
    if products:
        data["products"] = products
    if release.startswith("plan"):
        plan = [{"product": "A" if products else "batch", "batches": draw(st.integers(1, 4))}]
        if products:
            plan.append({"product": "B", "batches": draw(st.integers(1, 3))})
        data["release"] = {"mode": "plan", "plan": plan, "repeat": release != "plan-once"}
        if release == "plan-once":
            data["release"]["plan"] = [{"product": c["product"], "batches": c["batches"] * 10} for c in plan]
        if release == "plan-arrivals":
            data["release"]["interarrival"] = {"dist": "exponential", "mean": 1.5}
    elif release == "interarrival":
        data["release"] = {"mode": "interarrival", "interarrival": {"dist": "exponential", "mean": 1.6}}
        if products:
            data["release"]["mix"] = {"A": 2, "B": 1}
    elif products:
        data["release"] = {"mode": "saturated", "mix": {"A": 1, "B": 3}}
    return LineSpec.from_dict(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=line_specs(), seed=st.integers(0, 2**31))
def test_departures_equal_engine(spec: LineSpec, seed: int) -> None:
    assert_same_departures(spec, seed)


def test_kpis_agree_with_core_on_same_draws() -> None:
    spec = LineSpec.from_dict(
        {
            "name": "kpi",
            "horizon": 400.0,
            "warmup": 50.0,
            "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
            "release": {
                "mode": "plan",
                "repeat": True,
                "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}],
            },
            "stations": [
                {
                    "name": "m1",
                    "process_time": {"dist": "exponential", "mean": 1.0},
                    "setup": {"A->B": 0.5, "B->A": 0.7},
                    "failures": {
                        "mtbf": {"dist": "exponential", "mean": 10.0},
                        "mttr": {"dist": "exponential", "mean": 1.0},
                    },
                },
                {
                    "name": "m2",
                    "units": 2,
                    "buffer": 1,
                    "process_time": {"dist": "gamma", "mean": 1.9, "sd": 0.5},
                    "failures": {"mtbf": {"dist": "exponential", "mean": 8.0}, "mttr": 0.5},
                },
                {"name": "m3", "buffer": 0, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.4}},
            ],
        }
    )
    ev = Evaluator(spec, seed=11, replications=3)
    res = ev.evaluate()
    core = compute_kpis(simulate(spec, replications=3, seed=11)).per_replication
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)
    for j, name in enumerate(["m1", "m2", "m3"]):
        np.testing.assert_allclose(res.utilization[0, :, j], core[f"{name}.utilization"], rtol=1e-9)
        for k, state in enumerate(["processing", "setup", "down", "blocked"]):
            np.testing.assert_allclose(res.states[0, :, j, k], core[f"{name}.state.{state}"], atol=1e-9)


def test_finite_plan_makespan_equals_engine_end() -> None:
    spec = LineSpec.from_dict(
        {
            "name": "plan",
            "horizon": 10000.0,
            "products": [{"name": "A", "batch_size": 1}, {"name": "B", "batch_size": 1}],
            "release": {
                "mode": "plan",
                "plan": [
                    {"product": "A", "batches": 7},
                    {"product": "B", "batches": 5},
                    {"product": "A", "batches": 3},
                ],
            },
            "stations": [
                {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "setup": {"*->*": 3.0}},
                {"name": "m2", "buffer": 1, "process_time": {"A": 1.5, "B": 0.5}, "setup": {"A->B": 1.0, "B->A": 4.0}},
            ],
        }
    )
    res = assert_same_departures(spec, seed=5)
    end = simulate(spec, seed=5).end_times()[0]
    assert res.makespan[0, 0] == pytest.approx(end, abs=1e-9)
