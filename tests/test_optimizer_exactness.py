"""The JAX evaluator's departures equal the SimPy engine's, batch by batch, on the same draws (1e-9)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizers.evaluator import Evaluator
from optimizers.kernel import STATES
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


def assert_same_departures(spec: LineSpec, seed: int, replications: int = 1) -> Any:
    """Compare every departure the evaluator makes before the horizon with the engine's, in each replication (one
    compilation serves them all); return the evaluator's result."""
    ev = Evaluator(spec, seed=seed, replications=replications, record=True)
    res = ev.evaluate()
    assert_departures_match(res, simulate(spec, seed=seed, replications=replications).table, spec)
    return res


def assert_departures_match(res: Any, table: Any, spec: LineSpec) -> None:
    """Every departure of the evaluator's first design before the horizon equals the engine's (``table``) to 1e-9,
    in each replication, and the engine has no other."""
    for r in range(res.extra["departure"].shape[1]):
        dep, batch, valid = (res.extra[k][0, r] for k in ("departure", "batch", "valid"))
        engine = engine_departures(table[table["replication"] == r], [s.name for s in spec.stations])
        compared = 0
        for t, j in zip(*np.nonzero(valid & (dep <= spec.horizon_hours)), strict=True):
            key = (int(j), int(batch[t, j]))
            assert key in engine, f"replication {r}: batch {key[1]} leaves station {key[0]} in the evaluator only"
            assert abs(engine[key] - dep[t, j]) < 1e-9, (r, key, engine[key], dep[t, j])
            compared += 1
        assert compared == sum(1 for t in engine.values() if t <= spec.horizon_hours), r


def assert_same_states(res: Any, core: Any, stations: list[str]) -> None:
    """Each station's share of each kernel state equals ``compute_kpis``'s, per replication (a state the engine's
    log never shows: 0)."""
    for j, name in enumerate(stations):
        for k, state in enumerate(STATES):
            column = f"{name}.state.{state}"
            np.testing.assert_allclose(res.states[0, :, j, k], core.get(column, 0.0), atol=1e-9, err_msg=column)


CHANGEOVER_CLEANS = [
    {"A->B": {"time": 0.5, "major_clean": True}, "B->A": {"time": 0.3, "line_clearance": True}},
    {"*->*": {"major_clean": True}, "A->A": {"time": 0.1}},
    {"A->B": {"major_clean": True, "line_clearance": True}, "B->A": {"time": {"dist": "exponential", "mean": 0.3}}},
]
CLEAN_TIMES = [0.3, {"dist": "uniform", "low": 0.05, "high": 0.4}, {"dist": "exponential", "mean": 0.6}]


@st.composite
def cleaning_rules(draw: Any) -> dict[str, Any]:
    """A station's cleaning rule: minor and/or major cleans, cleans due, dirty and clean hold times."""
    rule: dict[str, Any] = {}
    minor = draw(st.booleans())
    if minor:
        rule["minor"] = draw(st.sampled_from(CLEAN_TIMES))
    due = {
        k: v
        for k, v in (
            ("batches", draw(st.one_of(st.none(), st.integers(1, 6)))),
            ("hours", draw(st.one_of(st.none(), st.sampled_from([3.0, 7.5, 20.0])))),
            ("kg", draw(st.one_of(st.none(), st.sampled_from([60.0, 250.0])))),
        )
        if v is not None
    }
    for hold, choices in (("dirty_hold", [0.2, 1.0]), ("clean_hold", [0.5, 2.0])):
        if draw(st.booleans()):
            rule[hold] = draw(st.sampled_from(choices))
    if due or not minor or "dirty_hold" in rule or draw(st.booleans()):  # (a late clean is a major one)
        rule["major"] = draw(st.sampled_from([1.0, {"dist": "gamma", "mean": 1.2, "sd": 0.3}]))
    if due:
        rule["due"] = due
    return rule


def release_block(draw: Any, release: str, two_products: bool) -> dict[str, Any] | None:
    """The spec's ``release`` for a release kind of the strategies (None: saturated, one product)."""
    if release.startswith("plan"):
        plan = [{"product": "A" if two_products else "batch", "batches": draw(st.integers(1, 4))}]
        if two_products:
            plan.append({"product": "B", "batches": draw(st.integers(1, 3))})
        out: dict[str, Any] = {"mode": "plan", "plan": plan, "repeat": release != "plan-once"}
        if release == "plan-once":
            out["plan"] = [{"product": c["product"], "batches": c["batches"] * 10} for c in plan]
        if release == "plan-arrivals":
            out["interarrival"] = {"dist": "exponential", "mean": 1.5}
        return out
    if release == "interarrival":
        out = {"mode": "interarrival", "interarrival": {"dist": "exponential", "mean": 1.6}}
        if two_products:
            out["mix"] = {"A": 2, "B": 1}
        return out
    return {"mode": "saturated", "mix": {"A": 1, "B": 3}} if two_products else None


@st.composite
def line_specs(draw: Any, rules: bool = False) -> LineSpec:
    """Random flow lines; ``rules``: with the batch rules the kernel is exact for (cleaning and rejects on
    single-unit stations, yields, rate-based stations, hold times, changeover cleans, CONWIP)."""
    n = draw(st.integers(1, 5))
    two_products = draw(st.booleans())
    release = draw(st.sampled_from(["saturated", "plan", "plan-once", "interarrival", "plan-arrivals"]))
    products = [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}] if two_products else None
    if rules:
        named = products or [{"name": "batch", "batch_size": 1}]
        products = [{**p, "mass_kg": m} for p, m in zip(named, (40, 90)[: len(named)], strict=True)]
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
            if units == 1 and draw(st.integers(0, 2)) == 0:  # on the wall clock (failures while waiting too)
                station["failures"]["basis"] = "calendar"
        if rules and units == 1 and draw(st.booleans()):
            station["cleaning"] = draw(cleaning_rules())
        if rules and draw(st.booleans()):
            quality = {"yield": draw(st.sampled_from([1.0, 0.97, 0.8]))}
            if units == 1 and draw(st.booleans()):
                quality["reject_probability"] = draw(st.sampled_from([0.05, 0.3]))
            station["quality"] = quality
        if rules and j > 0 and draw(st.integers(0, 3)) == 0:  # rate-based: its time follows the batch's units
            del station["process_time"]
            station["rate"] = {"units_per_hour": 12.0, "startup": 0.2, "cv": draw(st.sampled_from([0.0, 0.3]))}
        if setups:
            station["setup"] = draw(
                st.sampled_from(
                    [{"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}}, {"*->*": 0.4, "A->A": 0.1}]
                )
            )
            if "cleaning" in station and draw(st.booleans()):  # changeovers that need a major clean, a clearance
                station["setup"] = draw(st.sampled_from(CHANGEOVER_CLEANS))
                station["cleaning"].setdefault("major", 1.0)
                station["cleaning"]["line_clearance"] = {"dist": "uniform", "low": 0.1, "high": 0.3}
        stations.append(station)
    data: dict[str, Any] = {"name": "prop", "horizon": 120.0, "warmup": 20.0, "stations": stations}
    if rules and n > 1 and draw(st.booleans()):  # a hold time ending at a later single-unit station
        to = draw(st.sampled_from([j for j in range(1, n) if stations[j]["units"] == 1] or [None]))
        if to is not None:
            source = draw(st.integers(0, to - 1))
            limit = draw(st.sampled_from([0.3, 1.5, 4.0]))
            data["hold_times"] = [{"from": stations[source]["name"], "to": stations[to]["name"], "max": limit}]
    if products:
        data["products"] = products
    wip = None
    if rules and n > 1 and release in ("saturated", "plan", "plan-once") and draw(st.booleans()):  # CONWIP
        until = draw(st.integers(1, n - 1))
        extra = sum(stations[i]["units"] - 1 for i in range(until))
        wip = {"batches": extra + draw(st.integers(1, 3)), "until": stations[until]["name"]}
    if (drawn := release_block(draw, release, two_products)) is not None:
        data["release"] = drawn
    if wip is not None:
        data.setdefault("release", {"mode": "saturated"})["wip_limit"] = wip
    spec = LineSpec.from_dict(data)
    if wip is not None and Evaluator(spec).approximations():  # e.g. rejects before the limit's station
        del data["release"]["wip_limit"]
        spec = LineSpec.from_dict(data)
    return spec


# -- random lines that share a kernel -------------------------------------------------------------------------------
# Compiling the kernel is nearly all of an example's cost (1-6 s on a cold cache; the run and the engine's, a few
# hundredths). So the random lines come in structures: a structure fixes what shapes the kernel (stations and their
# units, release mode, products, which stations have changeovers, failures on which clock, cleaning, changeovers
# that need a major clean, yields, rejects, rate-based time, hold-time rules, CONWIP), and its examples draw the rest
# (distributions, buffers, changeover pairs, failure, cleaning, hold and WIP numbers, plans, seeds), with the
# kernel's sizes fixed, so that one compilation serves all of a structure's examples. The structures together try
# every rule and flag the one-kernel-per-example lines tried, more often (tests/exactness_coverage.py counts both).

# The kernel's sizes are fixed: buffer places, failures per unit and a structure's batches (at least the evaluator's
# own estimate for each of its examples; it doubles one and compiles again if a run needs more).
MAX_BUFFER = 3
FAILURES = 384
PLAIN_EXAMPLES, RULES_EXAMPLES = 10, 10  # per structure


class Structure(NamedTuple):
    """What shapes the kernel. A station's kind: its units (1-3), then s: changeovers, f: failures on operating time,
    c: on the wall clock, C: cleaning, x: changeovers that need a major clean, X: and a line clearance, y: a yield
    below 1, r: rejects, R: rate-based."""

    release: str
    two_products: bool
    kinds: tuple[str, ...]
    batches: int
    hold: tuple[int, int] | None = None  # a hold-time rule (from, to)
    until: int | None = None  # CONWIP until this station


PLAIN_STRUCTURES = {
    "saturated-1": Structure("saturated", True, ("1sc",), 320),
    "arrivals-2": Structure("interarrival", True, ("2f", "1sc"), 224),
    "plan-3": Structure("plan", True, ("1sc", "3f", "1s"), 352),
    "plan-once-4": Structure("plan-once", True, ("1sf", "2f", "1c", "3"), 80),
    "plan-arrivals-5": Structure("plan-arrivals", True, ("1s", "2f", "1sc", "1", "3f"), 224),
}
RULES_STRUCTURES = {
    "saturated-1": Structure("saturated", True, ("1XCfr",), 352),
    "plan-2": Structure("plan", True, ("2fy", "1xCcr"), 576, (0, 1), 1),
    "arrivals-3": Structure("interarrival", True, ("1sCf", "3fR", "1Ccyr"), 224, (0, 2)),
    "plan-once-4": Structure("plan-once", False, ("1C", "2f", "1Rc", "1yr"), 80, (1, 3), 2),
    "plan-arrivals-5": Structure("plan-arrivals", False, ("1Cc", "1f", "2fy", "3R", "1Cr"), 224, (0, 4)),
}


@st.composite
def structured_lines(draw: Any, structure: Structure) -> LineSpec:
    """A random line of ``structure``: what shapes the kernel is fixed, the numbers are drawn."""
    release, two_products, kinds, _, hold, until = structure
    rules = any(set(kind) & set("CxXyrR") for kind in kinds) or hold is not None or until is not None
    products = [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}] if two_products else None
    if rules:
        named = products or [{"name": "batch", "batch_size": 1}]
        products = [{**p, "mass_kg": m} for p, m in zip(named, (40, 90)[: len(named)], strict=True)]
    stations = []
    for j, kind in enumerate(kinds):
        units = int(kind[0])
        pt: Any = draw(st.sampled_from(DISTS))
        if two_products and draw(st.booleans()):
            pt = {"A": pt, "B": draw(st.sampled_from(DISTS))}
        station: dict[str, Any] = {"name": f"s{j + 1}", "units": units, "process_time": pt}
        buffer = draw(st.one_of(st.none(), st.integers(0, MAX_BUFFER)))
        if buffer is not None:
            station["buffer"] = buffer
        if "f" in kind or "c" in kind:
            mtbf = draw(
                st.sampled_from([{"dist": "exponential", "mean": 6.0}, 5.0, {"dist": "uniform", "low": 2, "high": 9}])
            )
            station["failures"] = {
                "mtbf": mtbf,
                "mttr": draw(st.sampled_from([{"dist": "exponential", "mean": 0.8}, 0.5])),
            }
            if "c" in kind:  # on the wall clock (failures while waiting too)
                station["failures"]["basis"] = "calendar"
        if "C" in kind:
            station["cleaning"] = draw(cleaning_rules())
        if rules and ("y" in kind or "r" in kind or draw(st.booleans())):
            quality: dict[str, Any] = {"yield": draw(st.sampled_from([0.97, 0.8])) if "y" in kind else 1.0}
            if "r" in kind:
                quality["reject_probability"] = draw(st.sampled_from([0.05, 0.3]))
            station["quality"] = quality
        if "R" in kind:  # rate-based: its time follows the batch's units
            del station["process_time"]
            station["rate"] = {"units_per_hour": 12.0, "startup": 0.2, "cv": draw(st.sampled_from([0.0, 0.3]))}
        if "s" in kind:
            station["setup"] = draw(
                st.sampled_from(
                    [{"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}}, {"*->*": 0.4, "A->A": 0.1}]
                )
            )
        if "x" in kind or "X" in kind:  # changeovers that need a major clean (X: a line clearance too)
            station["setup"] = CHANGEOVER_CLEANS[1] if "x" in kind else draw(st.sampled_from(CHANGEOVER_CLEANS[::2]))
            station["cleaning"].setdefault("major", 1.0)
            if "X" in kind:
                station["cleaning"]["line_clearance"] = {"dist": "uniform", "low": 0.1, "high": 0.3}
        stations.append(station)
    data: dict[str, Any] = {"name": "prop", "horizon": 120.0, "warmup": 20.0, "stations": stations}
    if hold is not None:  # a hold time ending at a later single-unit station
        limit = draw(st.sampled_from([0.3, 1.5, 4.0]))
        data["hold_times"] = [{"from": stations[hold[0]]["name"], "to": stations[hold[1]]["name"], "max": limit}]
    if products:
        data["products"] = products
    if (drawn := release_block(draw, release, two_products)) is not None:
        data["release"] = drawn
    if until is not None:  # CONWIP
        extra = sum(stations[i]["units"] - 1 for i in range(until))
        limit = extra + draw(st.integers(1, 3))
        data.setdefault("release", {"mode": "saturated"})["wip_limit"] = {"batches": limit, "until": f"s{until + 1}"}
    return LineSpec.from_dict(data)


def shared_kernel_evaluator(spec: LineSpec, seed: int, batches: int, replications: int = 3) -> Evaluator:
    """An evaluator whose kernel shape depends on the line's structure only (batches, failures per unit, buffer
    places and the largest WIP limit fixed); as exact as the default one (``approximations``)."""
    wip = spec.release.wip_limit
    limits = None
    if wip is not None:  # the largest limit a structure draws: its extra units before the limit's station, + 3
        until = next(j for j, s in enumerate(spec.stations) if s.name == wip.until)
        most = sum(s.units - 1 for s in spec.stations[:until]) + 3
        limits = (wip.batches, most)
    ev = Evaluator(spec, seed=seed, replications=replications, record=True, max_buffer=MAX_BUFFER, batches=batches,
                   wip_limits=limits)  # fmt: skip
    ev.failures = FAILURES
    return ev


def assert_same_departures_shared(spec: LineSpec, seed: int, batches: int) -> None:
    """``assert_same_departures`` on the structure's shared kernel (three replications)."""
    ev = shared_kernel_evaluator(spec, seed, batches)
    assert ev.approximations() == () == Evaluator(spec).approximations()
    assert_departures_match(ev.evaluate(), simulate(spec, seed=seed, replications=3).table, spec)


@pytest.mark.slow
@pytest.mark.parametrize("structure", list(PLAIN_STRUCTURES))
@settings(max_examples=PLAIN_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**31))
def test_departures_equal_engine(structure: str, data: st.DataObject, seed: int) -> None:
    shape = PLAIN_STRUCTURES[structure]
    assert_same_departures_shared(data.draw(structured_lines(shape), label="spec"), seed, shape.batches)


@pytest.mark.slow
@pytest.mark.parametrize("structure", list(RULES_STRUCTURES))
@settings(max_examples=RULES_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**31))
def test_departures_with_batch_rules_equal_engine(structure: str, data: st.DataObject, seed: int) -> None:
    shape = RULES_STRUCTURES[structure]
    assert_same_departures_shared(data.draw(structured_lines(shape), label="spec"), seed, shape.batches)


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
    assert_same_states(res, core, ["m1", "m2", "m3"])


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


def _cleaning_line(cleaning: dict[str, Any], downstream: dict[str, Any], release: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "clean",
        "horizon": 150.0,
        "warmup": 10.0,
        "products": [{"name": "A", "batch_size": 10, "mass_kg": 40}, {"name": "B", "batch_size": 20, "mass_kg": 90}],
        "release": release,
        "stations": [
            {"name": "c1", "process_time": {"dist": "exponential", "mean": 0.8}, "cleaning": cleaning},
            {"name": "c2", "buffer": 0, **downstream},
        ],
    }


SATURATED = {"mode": "saturated", "mix": {"A": 1, "B": 1}}
SLOW = {"process_time": {"dist": "exponential", "mean": 1.5}}  # blocks c1 often: it stands dirty
STARVING = {"mode": "interarrival", "interarrival": {"dist": "exponential", "mean": 2.0}, "mix": {"A": 1, "B": 1}}
FAST = {"process_time": 0.1}
MINOR, MAJOR = {"dist": "uniform", "low": 0.1, "high": 0.3}, {"dist": "gamma", "mean": 1.2, "sd": 0.3}

CLEANING_BRANCHES = {
    # branch: (rule, the rule without the branch, downstream, release)
    "minor clean after a long block is major (dirty hold)": (
        {"minor": MINOR, "major": MAJOR, "dirty_hold": 0.4}, {"minor": MINOR, "major": MAJOR}, SLOW, SATURATED),
    "clean again before a batch after standing clean (clean hold)": (
        {"minor": MINOR, "clean_hold": 1.0}, {"minor": MINOR}, FAST, STARVING),
    "major clean before a batch after standing dirty (no minor clean)": (
        {"major": MAJOR, "dirty_hold": 0.5, "due": {"batches": 50}}, {"major": MAJOR, "due": {"batches": 50}},
        FAST, STARVING),
    "major clean due after N batches": ({"minor": MINOR, "major": MAJOR, "due": {"batches": 4}}, {"minor": MINOR},
                                        FAST, SATURATED),
    "major clean due after T hours": ({"minor": MINOR, "major": MAJOR, "due": {"hours": 6.0}}, {"minor": MINOR},
                                      FAST, SATURATED),
    "major clean due after M kg": ({"minor": MINOR, "major": MAJOR, "due": {"kg": 300}}, {"minor": MINOR},
                                   FAST, SATURATED),
}  # fmt: skip


@pytest.mark.parametrize("branch", list(CLEANING_BRANCHES))
def test_each_cleaning_branch_fires_and_the_kernel_matches_it(branch: str) -> None:
    rule, without, downstream, release = CLEANING_BRANCHES[branch]
    spec = LineSpec.from_dict(_cleaning_line(rule, downstream, release))
    assert Evaluator(spec).approximations() == ()
    for seed in (3, 4):
        assert_same_departures(spec, seed)
    # the branch changes the run (so the comparison above exercised it)
    base = LineSpec.from_dict(_cleaning_line(without, downstream, release))
    stations = [s.name for s in spec.stations]
    assert engine_departures(simulate(spec, seed=3).table, stations) != engine_departures(
        simulate(base, seed=3).table, stations
    )


def test_cleaning_kpis_equal_compute_kpis() -> None:
    rule = {"minor": MINOR, "major": MAJOR, "dirty_hold": 0.4, "clean_hold": 1.5, "due": {"batches": 5, "kg": 500}}
    spec = LineSpec.from_dict(_cleaning_line(rule, SLOW, SATURATED))
    res = Evaluator(spec, seed=5, replications=3).evaluate()
    core = compute_kpis(simulate(spec, replications=3, seed=5)).per_replication
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)
    assert_same_states(res, core, ["c1", "c2"])
    assert (res.states[0, :, 0, 4] > 0.05).all()  # c1 spends real time cleaning


def test_rejects_and_yields_match_the_engine_and_end_a_finite_plan_when_the_last_batch_leaves() -> None:
    data = {
        "name": "quality",
        "horizon": 10000.0,
        "products": [{"name": "A", "batch_size": 100, "mass_kg": 50}],
        "release": {"mode": "plan", "plan": [{"product": "A", "batches": 60}]},
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "quality": {"yield": 0.9}},
            {"name": "m2", "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.1, "sd": 0.4},
             "quality": {"yield": 0.95, "reject_probability": 0.25},
             "cleaning": {"minor": 0.1, "major": 1.0, "due": {"kg": 120}}},
            {"name": "m3", "buffer": 0, "rate": {"units_per_hour": 90, "startup": 0.1, "cv": 0.2},
             "quality": {"reject_probability": 0.2}},
        ],
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    assert Evaluator(spec).approximations() == ()
    makespans = {}
    for seed in (5, 6, 7):
        res = assert_same_departures(spec, seed)
        makespans[seed] = res.makespan[0, 0]
        log = simulate(spec, seed=seed)
        assert res.makespan[0, 0] == pytest.approx(log.end_times()[0], abs=1e-9)
        assert (log.table["event"] == "reject").sum() > 5  # rejects happened at both stations
    # without the rejects the run is another one (the comparison above exercised them)
    for station in data["stations"][1:]:
        station["quality"].pop("reject_probability")
    assert assert_same_departures(LineSpec.from_dict(data), 5).makespan[0, 0] != pytest.approx(makespans[5])


def test_kpis_with_rejects_equal_compute_kpis() -> None:
    spec = LineSpec.from_dict(
        {
            "name": "rejects", "horizon": 300.0, "warmup": 30.0,
            "products": [{"name": "A", "batch_size": 100}, {"name": "B", "batch_size": 50}],
            "release": {"mode": "saturated", "mix": {"A": 1, "B": 1}},
            "stations": [
                {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0},
                 "quality": {"yield": 0.9, "reject_probability": 0.1}},
                {"name": "m2", "buffer": 2, "rate": {"units_per_hour": 80, "startup": 0.2, "cv": 0.3},
                 "quality": {"reject_probability": 0.15}},
            ],
        }
    )  # fmt: skip
    res = Evaluator(spec, seed=9, replications=4).evaluate()
    core = compute_kpis(simulate(spec, replications=4, seed=9)).per_replication
    np.testing.assert_array_equal(res.rejected[0], core["rejected_batches"])
    assert (res.rejected[0] > 10).all()
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)
    assert_same_states(res, core, ["m1", "m2"])


def test_hold_times_scrap_late_batches_as_the_engine_does() -> None:
    data = {
        "name": "holds",
        "horizon": 400.0,
        "warmup": 20.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {"mode": "saturated", "mix": {"A": 1, "B": 1}},
        "stations": [
            {"name": "granulate", "process_time": {"dist": "exponential", "mean": 0.9}},
            {"name": "dry", "units": 2, "buffer": 3, "process_time": {"dist": "gamma", "mean": 1.7, "sd": 0.6}},
            {"name": "compress", "buffer": 2, "process_time": {"dist": "exponential", "mean": 1.0},
             "cleaning": {"minor": 0.2}},
        ],
        "hold_times": [{"from": "granulate", "to": "compress", "max": 4.0}],
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    assert Evaluator(spec).approximations() == ()
    for seed in (1, 2):
        assert_same_departures(spec, seed)
        assert (simulate(spec, seed=seed).table["event"] == "hold_violation").sum() > 5
    res = Evaluator(spec, seed=1, replications=3).evaluate()
    core = compute_kpis(simulate(spec, replications=3, seed=1)).per_replication
    np.testing.assert_array_equal(res.rejected[0], core["rejected_batches"])
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    # investigating late batches (they come back later, out of order): the event kernel would step the line, but
    # not its two dryers; the scan kernel runs them as scraps, and says so
    data["hold_times"][0] |= {"action": "investigate", "investigation": 2.0}
    assert Evaluator(LineSpec.from_dict(data)).approximations() == (
        "stations.dry.units: 2 units (the event kernel steps single units)",
        "hold_times: granulate->compress investigates late batches (not scraps)",
    )


CHANGE_RELEASES = {
    "plan": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}]},
    "mix": {"mode": "saturated", "mix": {"A": 1, "B": 1}},
    "arrivals": {"mode": "interarrival", "interarrival": {"dist": "exponential", "mean": 1.2}, "mix": {"A": 1, "B": 1}},
}


def _changeover_line(release: str, buffer: int, flags: bool = True) -> LineSpec:
    def change(time: Any, **flag: bool) -> dict[str, Any]:
        return {**({"time": time} if time is not None else {}), **(flag if flags else {})} or {"time": 0.05}

    cleaning = {"minor": MINOR, "major": 1.5, "line_clearance": {"dist": "uniform", "low": 0.2, "high": 0.4}}
    return LineSpec.from_dict(
        {
            "name": "changes", "horizon": 300.0, "warmup": 20.0,
            "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
            "release": CHANGE_RELEASES[release],
            "stations": [
                {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "cleaning": cleaning,
                 "setup": {"A->B": change(0.5, major_clean=True), "B->A": change(0.7, line_clearance=True)}},
                {"name": "m2", "buffer": buffer, "process_time": {"dist": "gamma", "mean": 0.9, "sd": 0.5},
                 "setup": {"A->B": change(None, major_clean=True), "B->A": change(0.2, major_clean=True)},
                 "cleaning": {"minor": 0.2, "major": {"dist": "exponential", "mean": 0.6}, "due": {"batches": 6}}},
                {"name": "m3", "buffer": 1, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.4}},
            ],
        }
    )  # fmt: skip


@pytest.mark.parametrize("release", list(CHANGE_RELEASES))
def test_changeover_cleans_and_line_clearances_match_the_engine(release: str) -> None:
    """A change that needs a major clean gets one after the batch before it when the next batch is already
    waiting (``cleaning.after`` looks at the buffer), else before the change; clearances after it."""
    for buffer in (0, 2):
        spec = _changeover_line(release, buffer)
        assert Evaluator(spec).approximations() == ()
        for seed in (1, 2):  # one kernel for both buffers: made for 2 places, as a search over the buffer makes it
            ev = Evaluator(spec, seed=seed, replications=1, record=True, max_buffer=2)
            assert_departures_match(ev.evaluate(), simulate(spec, seed=seed).table, spec)
    table = simulate(spec, seed=1).table
    assert {"major_clean", "line_clearance"} <= set(table["event"].astype(str))
    stations = [s.name for s in spec.stations]
    plain = simulate(_changeover_line(release, 2, flags=False), seed=1).table
    assert engine_departures(table, stations) != engine_departures(plain, stations)


@pytest.mark.parametrize("start", [None, "2026-12-02T07:30"])
@pytest.mark.parametrize("release", ["plan", "mix"])
def test_a_release_calendar_matches_the_engine(release: str, start: str | None) -> None:
    """Batches released only on weekday mornings and a Sunday night shift across midnight (from a Wednesday
    07:30 start too: the calendar moves with the start)."""
    shifts = [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "06:00", "end": "14:00"},
        {"days": ["sun"], "start": "22:00", "end": "02:00"},
    ]
    data = {
        "name": "released", "horizon": 600.0, "warmup": 20.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {**CHANGE_RELEASES[release], "calendar": "day"},
        "calendars": {"day": {"shifts": shifts}},
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "cleaning": {"minor": 0.3}},
            {"name": "m2", "buffer": 2, "units": 2, "process_time": {"dist": "gamma", "mean": 1.9, "sd": 0.5}},
        ],
        **({"start": start} if start else {}),
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    assert Evaluator(spec).approximations() == ()
    for seed in (1, 2):
        assert_same_departures(spec, seed)
    # with a WIP limit (CONWIP) too: the gate looks at the calendar, waits for room, then at the calendar again
    # (on one of the four cases: each compiles a kernel of its own)
    data["release"]["wip_limit"] = {"batches": 2, "until": "m2"}
    spec = LineSpec.from_dict(data)
    assert Evaluator(spec).approximations() == ()
    if release == "plan" and start is not None:
        assert_same_departures(spec, 1, replications=3)
    # ... but not where the scan makes the starts it waits for only later, and it says so
    data["stations"][0]["units"] = 3
    data["stations"][0].pop("cleaning")
    (why,) = Evaluator(LineSpec.from_dict(data)).approximations()
    assert why.startswith("release.wip_limit: CONWIP of 2 batches within the extra units before m2")


def test_a_wip_limit_holds_releases_back_as_the_engine_does() -> None:
    """CONWIP at a later station of a saturated line: releases wait for starts there (the limit binds: without
    it the departures differ), with a clean and a multi-unit station before the limit's station."""
    data = {
        "name": "conwip", "horizon": 300.0, "warmup": 20.0,
        "release": {"mode": "saturated", "wip_limit": {"batches": 3, "until": "m3"}},
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 0.5}, "cleaning": {"minor": 0.1}},
            {"name": "m2", "units": 2, "process_time": {"dist": "gamma", "mean": 1.0, "sd": 0.5}},
            {"name": "m3", "process_time": {"dist": "uniform", "low": 0.8, "high": 1.4}, "buffer": 3},
        ],
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    assert Evaluator(spec).approximations() == ()
    res = assert_same_departures(spec, seed=4, replications=3)
    stations = [s.name for s in spec.stations]
    del data["release"]["wip_limit"]
    free = engine_departures(simulate(LineSpec.from_dict(data), seed=4).table, stations)
    assert free != engine_departures(simulate(spec, seed=4).table, stations)
    core = compute_kpis(simulate(spec, replications=3, seed=4)).per_replication
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)  # from each release
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)


def test_a_failure_due_exactly_when_a_rated_batch_ends_is_decided_as_the_engine_does() -> None:
    """Constant times to failure and rated batches of 1.0333 h and 1.8667 h: a failure falls due exactly when a
    batch ends, and the last bit of the batch's time decides whether it fails. XLA would divide by the rate as a
    product with its reciprocal, one ulp off the engine's division (found by the replications of the random test)."""
    spec = LineSpec.from_dict(
        {
            "name": "tie",
            "horizon": 120.0,
            "warmup": 20.0,
            "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
            "release": {"mode": "saturated", "mix": {"A": 1, "B": 3}},
            "stations": [
                {"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0}},
                {
                    "name": "s2",
                    "rate": {"units_per_hour": 12.0, "startup": 0.2},
                    "failures": {"mtbf": 5.0, "mttr": {"dist": "exponential", "mean": 0.8}},
                },
            ],
        }
    )
    assert_same_departures(spec, seed=2, replications=2)


def _calendar_failure_line(basis: str = "calendar", units: int = 1) -> LineSpec:
    fails = {"mtbf": {"dist": "exponential", "mean": 3.0}, "mttr": {"dist": "exponential", "mean": 0.6},
             "basis": basis}  # fmt: skip
    data = {
        "name": "wall-clock", "horizon": 300.0, "warmup": 20.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {"mode": "saturated", "mix": {"A": 1, "B": 1}},
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 0.8}, "failures": fails,
             "setup": {"A->B": {"time": 0.3, "major_clean": True}, "B->A": 0.2},
             "cleaning": {"minor": 0.2, "major": 0.5, "due": {"batches": 4}}},
            {"name": "m2", "buffer": 0, "process_time": {"dist": "exponential", "mean": 0.9}, "failures": fails,
             "cleaning": {"minor": {"dist": "uniform", "low": 0.2, "high": 0.6}}},
            {"name": "m3", "buffer": 1, "units": units, "process_time": {"dist": "gamma", "mean": 1.1, "sd": 0.4},
             "failures": fails},
        ],
    }  # fmt: skip
    return LineSpec.from_dict(data)


def test_calendar_basis_failures_match_the_engine() -> None:
    """Failures on the wall clock: while a unit waits for a batch or for a place downstream, and during
    changeovers and cleans, which they extend; a repair under way when the wait ends holds the unit."""
    spec = _calendar_failure_line()
    assert Evaluator(spec).approximations() == ()
    for seed in (1, 2):
        assert_same_departures(spec, seed, replications=3)
    stations = [s.name for s in spec.stations]
    # the state shares too: a failure inside a changeover, a clean or a blocked wait is down time, not theirs
    res = Evaluator(spec, seed=3, replications=3).evaluate()
    core = compute_kpis(simulate(spec, replications=3, seed=3)).per_replication
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    assert_same_states(res, core, stations)
    operating = simulate(_calendar_failure_line("operating"), seed=1).table
    assert engine_departures(simulate(spec, seed=1).table, stations) != engine_departures(operating, stations)
    # on several units a repair can free them out of departure order: a surrogate, and it says so
    (why,) = Evaluator(_calendar_failure_line(units=2)).approximations()
    assert why == "stations.m3.failures: calendar basis on 2 units (exact on one unit)"
