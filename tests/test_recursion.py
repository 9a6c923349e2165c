"""The engine's departures equal the departure-time recursion of serial BAS lines, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import serial_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.engine import simulate
from twin.engine.compiled import compile_line
from twin.random import first_draws, stream_rng
from twin.spec.model import LineSpec


def recursion(service: np.ndarray, buffers: list[int | None]) -> np.ndarray:
    """D_j(n) = max(max(D_{j-1}(n), D_j(n-1)) + S_j(n), D_{j+1}(n - b_{j+1} - 1))."""
    stations, batches = service.shape
    d = np.zeros((stations, batches))
    for n in range(batches):
        for j in range(stations):
            ready = max(d[j - 1, n] if j else 0.0, d[j, n - 1] if n else 0.0) + service[j, n]
            if j + 1 < stations and buffers[j + 1] is not None:
                m = n - buffers[j + 1] - 1
                if m >= 0:
                    ready = max(ready, d[j + 1, m])
            d[j, n] = ready
    return d


def departures(table: pd.DataFrame, n_stations: int, batches: int) -> np.ndarray:
    leave = table[table["event"] == "leave"]
    out = np.full((n_stations, batches), np.nan)
    for j in range(n_stations):
        rows = leave[leave["station"] == f"s{j + 1}"]
        rows = rows[rows["batch"] < batches]
        out[j, rows["batch"].to_numpy()] = rows["time"].to_numpy()
    return out


def drawn_service(spec: LineSpec, seed: int, batches: int) -> np.ndarray:
    """Processing times straight from the random streams: the n-th draw of a station is batch n's."""
    line = compile_line(spec)
    return np.array(
        [
            first_draws(s.process[0], stream_rng(seed, 0, s.name, f"process:{line.products[0]}"), batches)
            for s in line.stations
        ]
    )


distributions = st.sampled_from(
    [
        {"dist": "exponential", "mean": 1.0},
        {"dist": "uniform", "low": 0.2, "high": 1.8},
        {"dist": "lognormal", "mean": 1.0, "sd": 0.7},
        {"dist": "triangular", "low": 0.1, "mode": 0.5, "high": 2.0},
        {"dist": "constant", "value": 0.75},
        {"dist": "gamma", "mean": 1.2, "sd": 0.4},
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dists=st.lists(distributions, min_size=1, max_size=6),
    buffers=st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=6, max_size=6),
    seed=st.integers(0, 2**31),
)
def test_departures_equal_recursion_from_streams(dists, buffers, seed):
    buffers = [None, *buffers[1 : len(dists)]]
    stations = [
        {"name": f"s{j + 1}", "process_time": d, **({"buffer": b} if b is not None else {})}
        for j, (d, b) in enumerate(zip(dists, buffers, strict=True))
    ]
    spec = LineSpec.from_dict({"name": "prop", "horizon": 150.0, "stations": stations})
    table = simulate(spec, seed=seed).table
    done = table[(table["event"] == "leave") & (table["station"] == f"s{len(dists)}")]
    batches = int(done["batch"].max()) + 1 if len(done) else 0
    if batches == 0:
        return
    expected = recursion(drawn_service(spec, seed, batches), buffers)
    got = departures(table, len(dists), batches)
    assert np.nanmax(np.abs(expected - got)) < 1e-9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 5),
    buffers=st.lists(st.integers(0, 2), min_size=5, max_size=5),
    with_setups=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_failures_and_setups_fold_into_service_times(n, buffers, with_setups, seed):
    # operating failures and changeovers lengthen a unit's occupation by a batch; with those folded into
    # S_j(n) = finish - (time the unit took the batch), the recursion still holds exactly
    stations = []
    for j in range(n):
        station = {
            "name": f"s{j + 1}",
            "process_time": {
                "A": {"dist": "exponential", "mean": 1.0},
                "B": {"dist": "uniform", "low": 0.5, "high": 1},
            },
            "failures": {"mtbf": {"dist": "exponential", "mean": 6.0}, "mttr": {"dist": "exponential", "mean": 0.8}},
        }
        if j:
            station["buffer"] = buffers[j]
        if with_setups:
            station["setup"] = {"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}}
        stations.append(station)
    spec = LineSpec.from_dict(
        {
            "name": "prop",
            "horizon": 150.0,
            "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
            "release": {
                "mode": "plan",
                "repeat": True,
                "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}],
            },
            "stations": stations,
        }
    )
    table = simulate(spec, seed=seed).table
    done = table[(table["event"] == "leave") & (table["station"] == f"s{n}")]
    batches = int(done["batch"].max()) + 1 if len(done) else 0
    if batches < 2:
        return
    d = departures(table, n, batches)
    finish = table[table["event"] == "finish"]
    service = np.zeros((n, batches))
    for j in range(n):
        rows = finish[(finish["station"] == f"s{j + 1}") & (finish["batch"] < batches)]
        f = np.full(batches, np.nan)
        f[rows["batch"].to_numpy()] = rows["time"].to_numpy()
        upstream = d[j - 1] if j else np.zeros(batches)
        previous = np.concatenate(([0.0], d[j, :-1]))
        service[j] = f - np.maximum(upstream, previous)
    expected = recursion(service, [None, *buffers[1:n]])
    assert np.nanmax(np.abs(expected - d)) < 1e-9


def test_adding_a_buffer_place_never_delays_any_batch():
    # monotonicity, batch by batch: streams are per station, so both runs see the same processing times
    base = serial_line([1.0, 1.2, 0.9, 1.1], [None, 0, 1, 0], horizon=500.0, warmup=0.0)
    for j in (1, 2, 3):
        buffers = [None, 0, 1, 0]
        buffers[j] += 1
        more = serial_line([1.0, 1.2, 0.9, 1.1], buffers, horizon=500.0, warmup=0.0)
        a, b = simulate(base, seed=9).table, simulate(more, seed=9).table
        done_a = a[(a["event"] == "leave") & (a["station"] == "s4")].set_index("batch")["time"]
        done_b = b[(b["event"] == "leave") & (b["station"] == "s4")].set_index("batch")["time"]
        common = done_a.index.intersection(done_b.index)
        assert len(common) > 200
        assert (done_b[common] <= done_a[common] + 1e-12).all()
        assert len(done_b) >= len(done_a)
