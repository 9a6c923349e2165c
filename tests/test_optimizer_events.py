"""The event-stepping kernel (``optimizers/events.py``): operator pools and shifts exact in the evaluator, every
departure equal to the SimPy engine's on the same draws (1e-9)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import pytest
import yaml
from hypothesis import strategies as st

from optimizers.evaluator import Evaluator
from optimizers.kernel import STATES
from optimizers.lines import SUBSET, events_outside, line_arrays, steps_events, uses_events
from tests.conftest import run_cli
from tests.test_optimizer_exactness import (
    CHANGEOVER_CLEANS,
    DISTS,
    assert_departures_match,
    assert_same_states,
    release_block,
    shared_kernel_evaluator,
)
from tests.test_optimizer_qc import LAB_SHIFTS, assert_qc_times_match, assert_same_kpis, qc_labs
from twin.engine import simulate
from twin.errors import InputError
from twin.kpis.report import compute_kpis
from twin.spec.model import LineSpec

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def assert_exact(spec: LineSpec, seed: int, batches: int | None = None, replications: int = 3) -> Any:
    """The evaluator steps ``spec``'s events, reports no approximation (but for the state shares of a station with
    wall-clock failures and a crew), and every departure (and QC start, end and outcome) before the horizon equals the
    engine's, in each replication; returns its result."""
    if batches is None:
        ev = Evaluator(spec, seed=seed, replications=replications, record=True)
    else:
        ev = shared_kernel_evaluator(spec, seed, batches, replications)
        ev.max_headcount = (MOST_HEADCOUNT,) * len(spec.operators)  # (operators followed one by one: one shape)
        ev.returns = MOST_RETURNS  # (places for batches in investigation: one shape, not one per doubling)
    assert ev.events and all("logged by the engine when the phase starts" in r for r in ev.approximations())
    res = ev.evaluate()
    log = simulate(spec, seed=seed, replications=replications)
    assert_departures_match(res, log.table, spec)
    if spec.qc is not None:
        assert_qc_times_match(res, log, spec)
    return res


def assert_engine_kpis(res: Any, spec: LineSpec, seed: int, replications: int = 3) -> Any:
    """The evaluator's KPIs of its first design (throughput, lead time, OEE, rejected batches, QC's release lead time,
    each station's state shares) equal ``compute_kpis`` of the engine's run of ``spec`` on the same draws; returns
    the engine's KPIs per replication."""
    core = compute_kpis(simulate(spec, replications=replications, seed=seed)).per_replication
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)
    np.testing.assert_allclose(res.oee[0], core["oee"], rtol=1e-9)
    np.testing.assert_array_equal(res.rejected[0], core["rejected_batches"])
    if "release_lead_time_hours" in core:
        np.testing.assert_allclose(res.release_lead_time[0], core["release_lead_time_hours"], rtol=1e-9)
    assert_same_states(res, core, [station.name for station in spec.stations])
    return core


def assert_lean_lane_agrees(res: Any, spec: LineSpec, seed: int, kpis: tuple[str, ...]) -> None:
    """A lane that does not record keeps only a ring of release times or buffer places (``EventShape.kept``): its
    KPIs equal the recording lane's ``res``."""
    ev = Evaluator(spec, seed=seed, replications=res.throughput.shape[1])
    assert ev.event_shape().kept < ev.batches
    lean = ev.evaluate()
    for kpi in kpis:
        np.testing.assert_allclose(getattr(lean, kpi), getattr(res, kpi), rtol=1e-12, err_msg=kpi)


def assert_units_exact(ev: Evaluator, specs: tuple[LineSpec, ...], seed: int) -> None:
    """``ev``, made for the most units of ``specs`` (the same line with other units), evaluates each spec's units as a
    design: departures, QC times and KPIs equal the engine's run of that spec."""
    replications = ev.replications
    for spec in specs:
        res = ev.evaluate(units=[[s.units for s in spec.stations]])
        log = simulate(spec, seed=seed, replications=replications)
        assert_departures_match(res, log.table, spec)
        assert_qc_times_match(res, log, spec)
        assert_engine_kpis(res, spec, seed=seed, replications=replications)


def departures(res: Any, station: int, replication: int = 0) -> np.ndarray:
    """The evaluator's departures from ``station`` in batch order (inf: not yet)."""
    return res.extra["departure"][0, replication, :, station]


# -- random lines with operator pools ---------------------------------------------------------------------------------
# As in tests/test_optimizer_exactness.py, a structure fixes what shapes the kernel (stations, release, products,
# failures and their clock, changeovers, rate-based stations, pools and which of them work shifts); its examples draw
# the rest (times, buffers, headcounts, crews and the phases they work, qualifications, shift hours, seeds), so that
# one compilation serves them all. A shift calendar is one shift a day on weekdays (ten edges a week), which may run
# past midnight.


class Pooled(NamedTuple):
    release: str
    two_products: bool
    kinds: tuple[str, ...]  # per station: "" plain, "f" failures, "w" on the wall clock, "s" changeovers, "R" rate-based,
    # "c" cleaning, "k" on the skid, "y" a yield, "r" rejects, "m" changeovers that need a major clean or a clearance,
    # "2" or "3" that many units
    shifts: tuple[bool, ...]  # per pool: on a shift calendar (else always on shift)
    batches: int
    hold: tuple[int, int] | None = None  # a hold time (from, to) that scraps a late batch
    investigate: tuple[int, int] | None = None  # one that sends a late batch to investigation (before ``hold``)
    qc: bool = False  # QC release after the line (its lab on a calendar of two shifts a weekday)
    rooms: tuple[int, ...] = ()  # per station, the room it is in (-1: none), each room grade A or B (gowning); the
    # first station in room 0 has a crew qualified in every pool
    gate: int | None = None  # a release calendar (hours of a weekday) and a WIP limit (1 to 3) until this station


POOLED = {
    "saturated-1": Pooled("saturated", False, ("",), (True,), 320),
    "plan-2": Pooled("plan", True, ("f", "R"), (True, False), 320),
    "arrivals-3": Pooled("interarrival", True, ("", "f", ""), (True, True), 256),
    "plan-once-4": Pooled("plan-once", True, ("", "R", "f", ""), (True, False), 80),
    "saturated-5": Pooled("saturated", False, ("f", "", "R", "f", ""), (True, True, False), 320),
    "cleaning-3": Pooled("plan", True, ("c", "fc", "Rc"), (True, False), 320),
    "qc-3": Pooled("plan", True, ("f", "c", ""), (True, False), 320, qc=True),
    "skid-3": Pooled("saturated", True, ("ck", "fck", "c"), (True,), 320),
    "yields-3": Pooled("plan", True, ("y", "Rc", "fy"), (True, False), 320),
    "setups-3": Pooled("plan", True, ("s", "fs", "Rs"), (True, False), 320),
    "calendar-3": Pooled("interarrival", True, ("w", "ws", "w"), (True, True), 256),
    "mixed-3": Pooled("plan", True, ("wsc", "sc", "wy"), (True, False), 320),
    "held-4": Pooled("plan-once", True, ("f", "", "c", "R"), (True, False), 80, hold=(0, 2)),
    "rejects-3": Pooled("plan", True, ("r", "cy", "Rr"), (True, False), 320),
    "investigated-4": Pooled("plan-once", True, ("f", "", "c", "R"), (True, False), 80, hold=(1, 2), investigate=(0, 2)),
    "returns-3": Pooled("interarrival", True, ("", "cy", "s"), (True,), 256, investigate=(0, 2)),
    "change-cleans-3": Pooled("plan", True, ("cm", "ckm", "cm"), (True, False), 320),
    "units-3": Pooled("plan", True, ("c", "2fs", "3cy"), (True, False), 320),
    "units-4": Pooled("plan-once", True, ("2f", "2ck", "2w", "Rr"), (True, False), 80, hold=(0, 3), investigate=(1, 3)),
    "units-changes-3": Pooled("saturated", True, ("2cm", "3sy", "2rw"), (True,), 320),
    "gowning-4": Pooled("plan", True, ("c", "w", "s", "f"), (True, False), 320, rooms=(0, 1, 0, -1)),
    "gate-4": Pooled("plan", True, ("r", "c", "2fs", "y"), (True, False), 320, hold=(0, 2), investigate=(1, 2),
                     gate=2),
}
MOST_HEADCOUNT = 3  # the most operators of a pool the structures draw (one compiled shape: ``EventShape.members``)
MOST_RETURNS = 16  # places for batches in investigation the structures start with (more: the evaluator doubles them)


def cleaning_block(draw: Any) -> dict[str, Any]:
    """A station's cleaning rule: a major clean, perhaps a minor one, cleans due after batches, hours or kg, dirty
    and clean hold times."""
    block: dict[str, Any] = {"major": draw(st.sampled_from([1.5, {"dist": "uniform", "low": 1.0, "high": 2.0}]))}
    if draw(st.booleans()):
        block["minor"] = draw(st.sampled_from([0.3, {"dist": "exponential", "mean": 0.4}]))
    due = {key: draw(st.sampled_from(values)) for key, values in
           (("batches", [2, 5]), ("hours", [10.0, 40.0]), ("kg", [300.0, 900.0])) if draw(st.booleans())}  # fmt: skip
    if due:
        block["due"] = due
    for key, values in (("dirty_hold", [0.5, 2.0, 6.0]), ("clean_hold", [3.0, 12.0])):
        if draw(st.booleans()):
            block[key] = draw(st.sampled_from(values))
    return block


@st.composite
def pooled_lines(draw: Any, structure: Pooled) -> LineSpec:
    release, two_products, kinds, shifts, _, hold, investigate, qc, in_rooms, gate = structure
    n = len(kinds)
    names = [f"s{j + 1}" for j in range(n)]
    stations = []
    for j, kind in enumerate(kinds):
        pt: Any = draw(st.sampled_from(DISTS))
        if two_products and draw(st.booleans()):
            pt = {"A": pt, "B": draw(st.sampled_from(DISTS))}
        station: dict[str, Any] = {"name": names[j], "process_time": pt}
        for units in (c for c in kind if c.isdigit()):
            station["units"] = int(units)
        buffer = draw(st.one_of(st.none(), st.integers(0, 3)))
        if buffer is not None:
            station["buffer"] = buffer
        if "R" in kind:  # rate-based: its time follows the batch's units
            del station["process_time"]
            station["rate"] = {"units_per_hour": 12.0, "startup": 0.2, "cv": draw(st.sampled_from([0.0, 0.3]))}
        if "f" in kind or "w" in kind:
            station["failures"] = {"mtbf": draw(st.sampled_from([{"dist": "exponential", "mean": 6.0}, 5.0])),
                                   "mttr": draw(st.sampled_from([{"dist": "exponential", "mean": 0.8}, 0.5])),
                                   "basis": "calendar" if "w" in kind else "operating"}  # fmt: skip
        if "s" in kind:  # changeovers between the products (no major clean, no line clearance)
            station["setup"] = draw(st.sampled_from([{"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}},
                                                     {"*->*": {"dist": "uniform", "low": 0.1, "high": 0.9}}]))  # fmt: skip
        if "y" in kind:
            station["quality"] = {"yield": draw(st.sampled_from([0.9, 0.97]))}
        if "r" in kind:  # whole batches rejected at the end of processing
            station["quality"] = {"reject_probability": draw(st.sampled_from([0.1, 0.3]))}
        if draw(st.integers(0, 3)) > 0 or (in_rooms and j == in_rooms.index(0)):  # most stations need a crew
            station["operators"] = {"count": draw(st.sampled_from([1, 1, 2]))}
        if "c" in kind:
            station["cleaning"] = cleaning_block(draw)
            if "m" in kind:  # changeovers that need a major clean, a line clearance (the clean after a batch looks ahead)
                station["setup"] = draw(st.sampled_from(CHANGEOVER_CLEANS))
                station["cleaning"]["line_clearance"] = {"dist": "uniform", "low": 0.1, "high": 0.3}
            if "k" in kind:  # the line's one skid, for some kinds of clean (a minor one off it: no dirty hold)
                station["cleaning"]["skid"] = "skid"
                station["cleaning"]["skid_for"] = draw(st.sampled_from([["minor", "major"], ["major"], ["minor"]]))
                if "minor" not in station["cleaning"]["skid_for"]:
                    station["cleaning"].pop("dirty_hold", None)
        if "operators" in station and ("c" in kind or "s" in kind):  # a crew for some of its phases
            phases = ["processing"] + ["cleaning"] * ("c" in kind) + ["setup"] * ("s" in kind or "m" in kind)
            station["operators"]["phases"] = draw(st.lists(st.sampled_from(phases), min_size=1, unique=True))
        stations.append(station)
    crewed = [s["name"] for s in stations if "operators" in s] or names[:1]
    pools, calendars = [], {}
    for p, on_shift in enumerate(shifts):
        qualified = draw(st.lists(st.sampled_from(names), min_size=1, max_size=n, unique=True))
        if in_rooms and names[in_rooms.index(0)] not in qualified:  # (a station of several pools)
            qualified.append(names[in_rooms.index(0)])
        pool: dict[str, Any] = {"name": f"pool{p}", "headcount": draw(st.integers(1, MOST_HEADCOUNT)),
                                "qualified": qualified}  # fmt: skip
        if on_shift:
            start = draw(st.sampled_from([1.5, 6.0, 20.0]))
            end = (start + draw(st.sampled_from([5.0, 8.0, 11.5]))) % 24
            clock = lambda h: f"{int(h):02d}:{round(h % 1 * 60):02d}"  # noqa: E731
            calendars[f"cal{p}"] = {"shifts": [{"days": WEEKDAYS, "start": clock(start), "end": clock(end)}]}
            pool["calendar"] = f"cal{p}"
        pools.append(pool)
    for name in crewed:  # every crew has a pool qualified for it (a crew none can serve waits for ever: dull)
        if not any(name in pool["qualified"] for pool in pools):
            draw(st.sampled_from(pools))["qualified"].append(name)
    for station in stations:  # (a spec asks no more of a crew than its pools' headcount)
        if "operators" in station:
            most = sum(pool["headcount"] for pool in pools if station["name"] in pool["qualified"])
            station["operators"]["count"] = min(station["operators"]["count"], most)
    data: dict[str, Any] = {"name": "pooled", "horizon": 240.0, "warmup": 20.0, "stations": stations,
                            "operators": pools}  # fmt: skip
    if qc:  # (1 to 3 analysts: one compiled kernel)
        data["qc"] = {**draw(qc_labs())[0], "calendar": "lab"}
        calendars["lab"] = {"shifts": LAB_SHIFTS}
    if gate is not None:  # releases in hours of each weekday (which may run past midnight), under a WIP limit
        start = draw(st.sampled_from([0.0, 5.5, 20.0]))
        end = (start + draw(st.sampled_from([6.0, 12.5, 18.0]))) % 24
        clock = lambda h: f"{int(h):02d}:{round(h % 1 * 60):02d}"  # noqa: E731
        calendars["releases"] = {"shifts": [{"days": WEEKDAYS, "start": clock(start), "end": clock(end)}]}
    if calendars:
        data["calendars"] = calendars
    if in_rooms:  # rooms that gown, of at least one crew's headcount
        data["rooms"] = [{"name": f"room{r}", "grade": draw(st.sampled_from(["A", "B"])),
                          "gowning": draw(st.sampled_from([0.1, 0.25, 0.5])), "max_people": draw(st.integers(2, 4)),
                          "stations": [names[j] for j, at in enumerate(in_rooms) if at == r]}
                         for r in range(max(in_rooms) + 1)]  # fmt: skip
    if "k" in "".join(kinds):
        data["skids"] = [{"name": "skid", "capacity": draw(st.sampled_from([1, 1, 2]))}]
    data["hold_times"] = []
    if investigate is not None:  # investigations short and long: batches back while the buffer is full, or not
        data["hold_times"].append({"from": names[investigate[0]], "to": names[investigate[1]], "action": "investigate",
                                   "max": draw(st.sampled_from([0.5, 1.5, 4.0])),
                                   "investigation": draw(st.sampled_from([0.7, {"dist": "exponential", "mean": 3.0}]))})
    if hold is not None:  # short enough to scrap some batches (where both run out, the first decides: investigation)
        data["hold_times"].append({"from": names[hold[0]], "to": names[hold[1]], "action": "scrap",
                                   "max": draw(st.sampled_from([0.5, 1.5, 4.0]))})  # fmt: skip
    if two_products:
        data["products"] = [
            {"name": "A", "batch_size": 10, "mass_kg": 100},
            {"name": "B", "batch_size": 20, "mass_kg": 150},
        ]
    elif "R" in "".join(kinds):
        data["products"] = [{"name": "batch", "batch_size": 10}]
    if (block := release_block(draw, release, two_products)) is not None:
        data["release"] = block
    if gate is not None:
        data["release"] = {**data.get("release", {"mode": "saturated"}), "calendar": "releases",
                           "wip_limit": {"batches": draw(st.integers(1, 3)), "until": names[gate]}}  # fmt: skip
    return LineSpec.from_dict(data)


# (the random lines' test: tests/test_optimizer_events_random.py, a file of its own so that it runs beside this one)


# -- the serve step's rules, one at a time, on lines of constant times (the figures worked by hand) ----------------


def crewed_line(times: list[float], counts: list[int], pools: list[dict[str, Any]], horizon: float = 40.0) -> LineSpec:
    """Stations s1, s2, ... of constant ``times``, each needing ``counts`` operators (0: none), unlimited buffers;
    ``day``: a weekday shift from 06:00 to 14:00 (a run starts on Monday 00:00)."""
    stations = [{"name": f"s{j + 1}", "process_time": t} for j, t in enumerate(times)]
    for station, count in zip(stations, counts, strict=True):
        if count:
            station["operators"] = {"count": count}
    return LineSpec.from_dict({
        "name": "crews", "horizon": horizon, "stations": stations, "operators": pools,
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "14:00"}]}},
    })  # fmt: skip


def test_requests_waiting_at_a_shift_start_are_served_in_key_order() -> None:
    # two operators on the day shift, four stations: at Tuesday 06:00 (30 h) s1 has waited since 13 h, s3 and s4
    # since 14 h, s2 since 15.5 h; the two operators go to s1 and s3 (time of request, then station), s2 waits
    # for the one that s4 gets next (at 31 h, s1's batch done: s4's request is older than s2's)
    team = {"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s1", "s2", "s3", "s4"]}
    res = assert_exact(crewed_line([1.0, 2.5, 4.0, 4.0], [1, 1, 1, 1], [team]), seed=1, replications=1)
    assert departures(res, 0)[5] == 31.0  # s1's sixth batch, from 30 h
    assert departures(res, 2)[1] == 34.0  # s3's second, from 30 h (by station order s2 would have gone first)
    assert departures(res, 3)[0] == 35.0  # s4's first, from 31 h
    assert departures(res, 1)[3] == 36.5  # s2's fourth, from 34 h


def test_a_phase_runs_past_the_end_of_the_shift() -> None:
    # one operator: s1's third batch starts at 13 h and ends at 16 h, two hours into the night; then s2's request
    # (made at 13 h) goes before s1's (16 h) when the shift starts again at 30 h
    team = {"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1", "s2"]}
    res = assert_exact(crewed_line([3.0, 1.0], [1, 1], [team]), seed=1, replications=1)
    assert list(departures(res, 0)[:4]) == [9.0, 12.0, 16.0, 34.0]
    assert list(departures(res, 1)[:3]) == [13.0, 31.0, 35.0]


def test_first_fit_a_request_for_two_is_passed_over_by_a_later_one_for_one() -> None:
    # two operators always on shift: at 7 h s1 (waiting since 6 h) takes one, s2 asks for two and one is left, so
    # s3's later request for one goes ahead of it; s2 starts when s1 is done, at 10 h
    team = {"name": "team", "headcount": 2, "qualified": ["s1", "s2", "s3"]}
    res = assert_exact(crewed_line([3.0, 1.0, 1.0], [1, 2, 1], [team], horizon=12.0), seed=1, replications=1)
    assert departures(res, 2)[0] == 8.0
    assert list(departures(res, 1)[:2]) == [7.0, 11.0]


def test_a_station_served_by_two_pools() -> None:
    # s2 needs two operators: one of the always-on pool A (which s1 also uses), one of pool B on the day shift; it
    # asks at 1 h and starts at 06:00, taking A's operator as s1 lets it go; s1 waits until s2 is done
    pools = [
        {"name": "A", "headcount": 1, "qualified": ["s1", "s2"]},
        {"name": "B", "headcount": 1, "calendar": "day", "qualified": ["s2"]},
    ]
    res = assert_exact(crewed_line([1.0, 2.0], [1, 2], pools, horizon=12.0), seed=1, replications=1)
    assert list(departures(res, 0)[:7]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0]
    assert departures(res, 1)[0] == 8.0


def test_a_changeover_waits_for_the_crew_that_processing_at_another_station_holds() -> None:
    # one operator always on shift; s1 (2 h) needs it to process, s2 (1 h) only for its changeovers (0.5 h), products
    # A, B in turn. At 4 h s1 takes batch 2 and s2 takes batch 1 (a change to B), both asking at 4 h: s1 first (key:
    # time, then station), so s2's changeover waits until 6 h, when its older request goes before s1's for batch 3;
    # s2 processes batch 1 from 6.5 h (no crew), s1 batch 3 from 6.5 h. At 7.5 h s2 takes batch 2 (a change to A) and
    # waits for the operator again, whom s1 holds until 8.5 h: changeover to 9 h, batch 2 out at 10 h.
    team = {"name": "team", "headcount": 1, "qualified": ["s1", "s2"]}
    spec = LineSpec.from_dict({
        "name": "changeover-crew", "horizon": 14.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 10}],
        "release": {"mode": "plan", "repeat": True,
                    "plan": [{"product": "A", "batches": 1}, {"product": "B", "batches": 1}]},
        "operators": [team],
        "stations": [
            {"name": "s1", "process_time": 2.0, "operators": {"count": 1, "phases": ["processing"]}},
            {"name": "s2", "process_time": 1.0, "setup": {"*->*": 0.5}, "operators": {"count": 1, "phases": ["setup"]}},
        ],
    })  # fmt: skip
    res = assert_exact(spec, seed=1, replications=1)
    assert list(departures(res, 0)[:5]) == [2.0, 4.0, 6.0, 8.5, 11.0]
    assert list(departures(res, 1)[:3]) == [3.0, 7.5, 10.0]


def test_a_failure_due_while_the_crew_is_off_shift_is_repaired_within_the_next_phase() -> None:
    # the engine's ``CalendarClock`` has no wait for operators: a failure that falls due in one (here at 20 h, s1
    # waiting since 14 h for the day shift) is repaired when the phase starts (``CalendarClock.work``): batch 8,
    # granted at 30 h, ends at 31.5 h (1 h and the 0.5 h repair), not 31 h; the kernel follows it
    team = {"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1"]}
    spec = crewed_line([1.0], [1], [team])
    data = spec.model_dump(mode="json", exclude_none=True)
    data["stations"][0]["failures"] = {"mtbf": 20.0, "mttr": 0.5, "basis": "calendar"}
    res = assert_exact(LineSpec.from_dict(data), seed=1, replications=1)
    assert list(departures(res, 0)[6:10]) == [13.0, 14.0, 31.5, 32.5]
    # the engine logs that failure at 30 h, so its state shares are not the kernel's: not called exact
    reasons = line_arrays(LineSpec.from_dict(data)).approximations
    assert len(reasons) == 1 and reasons[0].startswith("stations.s1.failures: calendar basis at a station with a crew")


@pytest.mark.parametrize("wait", ["skid", "gate"])
def test_a_wall_clock_station_that_waits_for_a_skid_or_the_release_gate_is_not_called_exact(wait: str) -> None:
    # as for a crew: the engine's ``CalendarClock`` has no ``wait_over`` after the wait for a skid (the event kernel)
    # or at the release gate of a pulling first station (a release calendar or a WIP limit; here the scan kernel), so
    # the state shares of s1, which fails often and long on the wall clock, are not the log's (departures are); the
    # evaluator says so
    fails = {"mtbf": {"dist": "exponential", "mean": 6.0}, "mttr": {"dist": "exponential", "mean": 3.0},
             "basis": "calendar"}  # fmt: skip
    data: dict[str, Any] = {
        "name": "waits", "horizon": 300.0,
        "stations": [{"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0}, "failures": fails},
                     {"name": "s2", "buffer": 2, "process_time": {"dist": "exponential", "mean": 1.0}}],
    }  # fmt: skip
    if wait == "skid":
        data["skids"] = [{"name": "wash", "capacity": 1}]
        for station in data["stations"]:
            station["cleaning"] = {"minor": {"dist": "exponential", "mean": 2.0}, "major": 3.0, "skid": "wash",
                                   "skid_for": ["minor", "major"]}  # fmt: skip
    else:
        data["calendars"] = {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "14:00"}]}}
        data["release"] = {"calendar": "day"}
    spec = LineSpec.from_dict(data)
    ev = Evaluator(spec, seed=1, replications=2)
    (why,) = ev.approximations()
    what = {"skid": "a shared skid", "gate": "a release gate"}[wait]
    assert why.startswith(f"stations.s1.failures: calendar basis at a station with {what}: a failure due while")
    assert ev.events == (wait == "skid")
    res = ev.evaluate()
    core = compute_kpis(simulate(spec, seed=1, replications=2)).per_replication
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    down = res.states[0, :, 0, STATES.index("down")]
    assert (np.abs(down - core["s1.state.down"]) > 0.01).all()  # the kernel counts every repair in full as down
    # with the failures on the operating clock the evaluator calls the same line exact
    data["stations"][0]["failures"] = {**fails, "basis": "operating"}
    assert Evaluator(LineSpec.from_dict(data)).approximations() == ()


def test_a_hand_made_change_with_its_major_clean_and_clearance_is_exact() -> None:
    # s1 (A, A, B, ...) cleans after each batch; the change A->B needs a major clean (unless one was done since the
    # last batch: the clean after an A batch looks at the B waiting and makes it major), then the changeover time and
    # the line clearance with its crew
    team = {"name": "team", "headcount": 1, "qualified": ["s1"]}
    data = {
        "name": "change-cleans", "horizon": 60.0, "operators": [team],
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 10}],
        "release": {"mode": "plan", "repeat": True, "plan": [{"product": "A", "batches": 2}, {"product": "B", "batches": 1}]},
        "stations": [{"name": "s1", "process_time": 1.0, "operators": {"count": 1, "phases": ["setup", "processing"]},
                      "setup": {"A->B": {"time": 0.5, "major_clean": True, "line_clearance": True}},
                      "cleaning": {"minor": 0.2, "major": 0.7, "line_clearance": 0.3}},
                     {"name": "s2", "buffer": 1, "process_time": {"dist": "exponential", "mean": 0.9}}],
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    assert events_outside(line_arrays(spec), (1, 1)) == []
    res = assert_exact(spec, seed=1, replications=1)
    # batch 0 (A): 0-1, minor clean 1-1.2; batch 1 (A): 1.2-2.2, then the next (B) is known: major clean 2.2-2.9;
    # batch 2 (B): a major clean was done since the last batch, so the change's is skipped: changeover 2.9-3.4,
    # clearance 3.4-3.7, processing 3.7-4.7
    np.testing.assert_allclose(departures(res, 0)[:3], [1.0, 2.2, 4.7], rtol=0, atol=1e-12)


def test_cli_optimize_on_a_line_with_operator_shifts_is_exact(tmp_path: Any) -> None:
    line = {
        "name": "crewed", "horizon": "300 h", "warmup": "20 h",
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "22:00"}]}},
        "operators": [{"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s1", "s2", "s3"]}],
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": "1 h"}, "operators": {"count": 1}},
            {"name": "s2", "process_time": {"dist": "gamma", "mean": "1.2 h", "sd": "0.3 h"}, "buffer": 1,
             "operators": {"count": 2}},
            {"name": "s3", "process_time": "50 min", "buffer": 1},
        ],
    }  # fmt: skip
    path = tmp_path / "crewed.yaml"
    path.write_text(yaml.safe_dump(line))
    done = run_cli("optimize", str(path), "--vary", "stations.s2.buffer=0..3", "--vary", "stations.s3.buffer=0..2",
                   "--objective", "throughput", "--json", "-r", "2", "--confirm", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["exact"] is True and report["evaluator"] == "jax"
    for confirmed in [report["best"], *report["confirmed"]]:  # SimPy's confirmation agrees, on its own draws
        assert abs(confirmed["evaluator_minus_simpy"]["throughput_per_hour"]) < 1e-12, confirmed


def test_exactness_of_operators_is_derived_from_the_rule_registry() -> None:
    # the same pools: exact on stations of one unit or two (the event kernel); with a WIP limit on two units of the
    # pulling first station, which the event kernel does not follow, the scan kernel runs the line without its
    # operators: a surrogate, said so
    team = {"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s1", "s2"]}
    spec = crewed_line([1.0, 2.0], [1, 1], [team])
    data = spec.model_dump(mode="json", exclude_none=True)
    assert line_arrays(spec).approximations == ()
    data["stations"][0]["units"] = 2
    assert line_arrays(LineSpec.from_dict(data)).approximations == ()
    data["release"] = {"mode": "saturated", "wip_limit": {"batches": 3, "until": "s2"}}
    reasons = line_arrays(LineSpec.from_dict(data)).approximations
    assert any("operators and shifts" in r for r in reasons), reasons
    assert "operator pools on shift calendars" in SUBSET.split("Surrogate")[0]


def test_kpis_with_operators_agree_with_core_on_same_draws() -> None:
    data = {
        "name": "kpi", "horizon": 400.0, "warmup": 50.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {"mode": "plan", "repeat": True,
                    "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}]},
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "22:00"}]}},
        "operators": [{"name": "team", "headcount": 2, "calendar": "day", "qualified": ["m1", "m2"]},
                      {"name": "night", "headcount": 1, "qualified": ["m2", "m3"]}],
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "operators": {"count": 1},
             "failures": {"mtbf": {"dist": "exponential", "mean": 10.0}, "mttr": 1.0}},
            {"name": "m2", "buffer": 1, "process_time": {"A": 1.5, "B": {"dist": "gamma", "mean": 1.9, "sd": 0.5}},
             "operators": {"count": 2}},
            {"name": "m3", "buffer": 0, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.4}},
        ],
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    res = assert_exact(spec, seed=11)
    core = assert_engine_kpis(res, spec, seed=11)
    for j, name in enumerate(["m1", "m2", "m3"]):
        np.testing.assert_allclose(res.utilization[0, :, j], core[f"{name}.utilization"], rtol=1e-9)
    # a lane that does not record keeps the release times of the batches in the line only, in a ring
    assert_lean_lane_agrees(res, spec, 11, ("throughput", "lead_time", "oee", "utilization"))


def test_an_evaluator_made_for_two_units_is_exact_on_one_and_on_two() -> None:
    # an evaluator made for two units at s1 steps events on a slot per unit: its answers for designs of one unit and of
    # two are exact (``optimize`` asks for the best design's own units)
    team = {"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s1", "s2"]}
    ev = Evaluator(crewed_line([1.0, 2.0], [1, 1], [team]), max_units=(2, 1))
    assert ev.events
    assert ev.approximations(np.array([[1, 1]])) == () == ev.approximations(np.array([[2, 1]]))


def test_gradient_in_the_speeds_on_a_line_with_operators() -> None:
    # the search's gradient method (forward mode through the event loop): its values are the evaluator's, and its
    # derivatives match a finite difference (the same draws: a small step moves no event past another)
    team = {"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s1", "s2"]}
    times = [{"dist": "exponential", "mean": 1.0}, {"dist": "gamma", "mean": 1.5, "sd": 0.5}]
    ev = Evaluator(crewed_line(times, [1, 1], [team], horizon=200.0), seed=1, replications=2, max_speed=2.0)
    assert ev.events
    value, jac, _ = ev.gradient([-1, -1], [1, 1], [1.0, 1.0])
    base = ev.evaluate(buffers=[[-1, -1]], speed=[[1.0, 1.0]])
    np.testing.assert_allclose(value, [base.mean("rate")[0], base.mean("lead_time")[0]], rtol=1e-12)
    step = 1e-6
    for j in range(2):
        moved = ev.evaluate(buffers=[[-1, -1]], speed=[[1.0 + step * (j == 0), 1.0 + step * (j == 1)]])
        fd = [(moved.mean(k)[0] - base.mean(k)[0]) / step for k in ("rate", "lead_time")]
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-3, atol=1e-9)


@pytest.mark.slow
def test_the_built_in_tablet_line_is_exact_on_one_packaging_unit_and_on_two() -> None:
    # the built-in tablet line, every rule on (the benchmark's line, case (i)): crews of one and two for processing,
    # changeovers and cleaning on shifts, changeovers with major cleans and line clearances, cleaning on the shared
    # wash skid, the granulation suite's headcount, yields and rejects, the hold that scraps and the one that
    # investigates, rate-based presses, QC release; its KPIs (QC's and rejects too) are those of the engine's log.
    # Made for two packaging units, the evaluator follows the line with one (the spec's) and with two (one compiled
    # kernel: the units are an input of each design)
    from benchmarks.bench_optimizer import events_line

    one = events_line("6 w")
    two = LineSpec.from_dict({**one.to_data(), "stations": [
        {**s, "units": 2} if s["name"] == "packaging" else s for s in one.to_data()["stations"]]})
    ev = Evaluator(two, seed=3, replications=2, record=True)
    assert ev.events and ev.approximations() == ()
    assert ev.event_shape().shifts_like == (0, 0, 0)  # (its three pools on one calendar: their shifts worked out once)
    assert_units_exact(ev, (one, two), seed=3)


def test_units_of_a_station_take_batches_in_the_order_their_timeouts_were_scheduled() -> None:
    # s2's two units need a cleaner (day shift from 6 h) after each batch: unit 0 makes b0 (A, 3 h) from 1 h, unit 1
    # b1 (B, 0.5 h) from 2 h; unit 1 asked for its cleaner first (2.5 h, unit 0 at 4 h), so at 6 h its clean is
    # granted, and scheduled, first: both cleans end at 6.3 h, unit 1 takes b2 (A: its change B->A, 1 h, then 3 h:
    # 10.3 h) and unit 0 b3 (A->B, 0.2 h, then 0.5 h: 7 h). By unit index, unit 0 would take b2 (9.3 h, no change)
    team = {"name": "team", "headcount": 2, "calendar": "day", "qualified": ["s2"]}
    data = crewed_line([1.0, 1.0], [0, 1], [team], horizon=12.0).model_dump(mode="json", exclude_none=True)
    data["products"] = [{"name": "A", "batch_size": 1}, {"name": "B", "batch_size": 1}]
    data["release"] = {"mode": "plan", "repeat": True,
                       "plan": [{"product": "A", "batches": 1}, {"product": "B", "batches": 1}]}  # fmt: skip
    data["stations"][1].update(units=2, process_time={"A": 3.0, "B": 0.5}, setup={"B->A": 1.0, "A->B": 0.2},
                               cleaning={"minor": 0.3}, operators={"count": 1, "phases": ["cleaning"]})  # fmt: skip
    res = assert_exact(LineSpec.from_dict(data), seed=1, replications=1)
    assert list(departures(res, 1)[:4]) == [4.0, 2.5, 10.3, 7.0]


def test_a_lane_cut_short_by_its_bound_on_steps_runs_again_with_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bound far too low for the line: the lanes it stops are reported truncated, the evaluator draws more batches
    # (a larger bound) until none is, and the answer is the engine's
    from optimizers.events import EventShape

    monkeypatch.setattr(EventShape, "steps", property(lambda shape: shape.base.batches // 8))
    team = {"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1", "s2"]}
    spec = crewed_line([{"dist": "exponential", "mean": 1.0}, 0.5], [1, 1], [team], horizon=60.0)
    ev = Evaluator(spec, seed=2, replications=1, record=True)
    first = ev.batches
    assert_departures_match(ev.evaluate(), simulate(spec, seed=2, replications=1).table, spec)
    assert ev.batches > first


def test_the_bound_on_steps_counts_the_shift_changes_of_a_long_horizon() -> None:
    # two years of a crew on twelve half-hour shifts a day and 100 h batches: some 17,500 shift changes against some
    # 175 batches. The bound counts them (``EventShape.weeks``), so the lane is not cut short and run again with
    # batches it does not need (four times as many here, when the bound had batches only); the run is the engine's
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    shifts = [{"days": days, "start": f"{h:02d}:00", "end": f"{h:02d}:30"} for h in range(0, 24, 2)]
    spec = LineSpec.from_dict({
        "name": "many-shifts", "horizon": 2 * 8766.0, "calendars": {"halves": {"shifts": shifts}},
        "operators": [{"name": "team", "headcount": 1, "calendar": "halves", "qualified": ["s1"]}],
        "stations": [{"name": "s1", "process_time": 100.0, "operators": {"count": 1}}],
    })  # fmt: skip
    ev = Evaluator(spec, seed=1, replications=1, record=True)
    first = ev.batches
    assert_departures_match(ev.evaluate(), simulate(spec, seed=1, replications=1).table, spec)
    assert ev.batches == first
    changes = 2 * 12 * 730  # (two a shift, twelve shifts a day, two years)
    assert 16 * first + 4096 < changes  # a bound on batches only would stop the lane


def test_a_lane_that_never_finishes_stops_the_evaluator_with_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bound on steps that does not grow with the batches: a lane it stops stays stopped however many batches are
    # drawn. After ``RERUNS`` doublings (one here) the evaluator gives up with a one-line user error (the CLI prints
    # it and exits 2) instead of doubling forever; so does the gradient, which reruns the same way
    from optimizers import evaluator as evaluator_module
    from optimizers.events import EventShape

    monkeypatch.setattr(EventShape, "steps", property(lambda shape: 10))
    monkeypatch.setattr(evaluator_module, "RERUNS", 1)
    team = {"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1", "s2"]}
    spec = crewed_line([{"dist": "exponential", "mean": 1.0}, 0.5], [1, 1], [team], horizon=60.0)
    ev = Evaluator(spec, seed=2, replications=2)
    first = ev.batches
    stopped = r"^the JAX evaluator's run of design 0, replication 0 stopped before its end with [\d,]+ batches drawn"
    with pytest.raises(InputError, match=stopped) as err:
        ev.evaluate()
    assert "\n" not in str(err.value) and str(err.value).endswith("(twin optimize --evaluator engine)")
    assert ev.batches == 2 * first  # it ran once more with twice the batches, then stopped
    with pytest.raises(InputError, match="stopped before its end"):
        ev.gradient([-1, -1], [1, 1], [1.0, 1.0])


def test_failure_draws_that_run_out_again_and_again_stop_the_evaluator_with_an_error() -> None:
    # the scan kernel on a line that fails often, with two failure draws per unit and a cap of three: the run uses
    # both, the next would need more than the cap allows, and the evaluator says so
    spec = LineSpec.from_dict({
        "name": "fails", "horizon": 50.0,
        "stations": [{"name": "s1", "process_time": 1.0,
                      "failures": {"mtbf": {"dist": "exponential", "mean": 2.0}, "mttr": 0.5}}],
    })  # fmt: skip
    ev = Evaluator(spec, seed=1, replications=1)
    ev.failures, ev.most_failures = 2, 3
    with pytest.raises(InputError, match=r"^the JAX evaluator's run used all 2 failure draws of a unit"):
        ev.evaluate()


def test_kpis_with_changeovers_and_calendar_failures_agree_with_core_on_same_draws() -> None:
    # the state shares too: a changeover is setup time but for the failures inside it (down), a failure while blocked
    # is down time, not blocked, and so is one during a wait still under way at the horizon. m1's crew works
    # its changeovers and processing on the day shift; m2 and m3 (failures on the wall clock) need no crew, so a
    # failure never falls due while a crew keeps them waiting (the engine records those when the phase starts)
    data = {
        "name": "kpi-changeovers", "horizon": 200.0, "warmup": 10.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {"mode": "plan", "repeat": True,
                    "plan": [{"product": "A", "batches": 2}, {"product": "B", "batches": 1}]},
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "18:00"}]}},
        "operators": [{"name": "team", "headcount": 1, "calendar": "day", "qualified": ["m1"]}],
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "operators": {"count": 1},
             "setup": {"A->B": 0.5, "B->A": {"dist": "exponential", "mean": 0.3}}},
            {"name": "m2", "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.2, "sd": 0.4}, "setup": {"*->*": 0.4},
             "failures": {"mtbf": {"dist": "exponential", "mean": 5.0}, "mttr": 0.5, "basis": "calendar"}},
            {"name": "m3", "buffer": 0, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.4},
             "failures": {"mtbf": {"dist": "exponential", "mean": 4.0}, "mttr": {"dist": "exponential", "mean": 0.6},
                          "basis": "calendar"}},
        ],
    }  # fmt: skip
    spec = LineSpec.from_dict(data)
    res = assert_exact(spec, seed=3)
    assert_engine_kpis(res, spec, seed=3)


def cleaning_crews_line(due_batches: int = 4) -> LineSpec:
    """Three stations sharing a day-shift team of two for processing and cleaning (m2's crew cleans only), with
    minor and major cleans, cleans due after batches, hours and kg, dirty and clean holds, failures and a yield at
    m2."""
    day = {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "22:00"}]}
    clean_and_process = {"count": 1, "phases": ["processing", "cleaning"]}
    return LineSpec.from_dict({
        "name": "cleaning-crews", "horizon": 600.0, "warmup": 50.0,
        "products": [{"name": "A", "batch_size": 10, "mass_kg": 100}, {"name": "B", "batch_size": 20, "mass_kg": 150}],
        "release": {"mode": "plan", "repeat": True,
                    "plan": [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}]},
        "calendars": {"day": day},
        "operators": [{"name": "team", "headcount": 2, "calendar": "day", "qualified": ["m1", "m2", "m3"]}],
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "operators": clean_and_process,
             "cleaning": {"minor": 0.5, "major": {"dist": "uniform", "low": 2, "high": 4},
                          "due": {"batches": due_batches}, "dirty_hold": 6.0, "clean_hold": 30.0}},
            {"name": "m2", "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.9, "sd": 0.5},
             "operators": {"count": 1, "phases": ["cleaning"]}, "quality": {"yield": 0.95},
             "failures": {"mtbf": {"dist": "exponential", "mean": 10.0}, "mttr": 1.0},
             "cleaning": {"major": 1.5, "due": {"hours": 20, "kg": 900}}},
            {"name": "m3", "buffer": 0, "process_time": {"dist": "uniform", "low": 0.5, "high": 1.4},
             "operators": {"count": 1}, "cleaning": {"minor": 0.3, "major": 0.8, "due": {"batches": 3},
                                                      "dirty_hold": 2.0}},
        ],
    })  # fmt: skip


def test_cleans_with_crews_are_exact_and_their_kpis_agree_with_core() -> None:
    # seed 1: at 44.01 h m2's major clean takes the team's last free operator, so m3 waits for m1's to process
    spec = cleaning_crews_line()
    res = assert_exact(spec, seed=1)
    assert_engine_kpis(res, spec, seed=1)
    assert (res.states[0, :, :, STATES.index("cleaning")] > 0.02).all()


def test_the_cleaning_due_lever_varies_per_design_in_the_event_kernel() -> None:
    spec = cleaning_crews_line()
    ev = Evaluator(spec, seed=3, replications=2)
    assert ev.events and ev.approximations() == ()
    due = np.array([[4, 2**31 - 1, 3], [2, 2**31 - 1, 3], [7, 2**31 - 1, 3]], np.int32)  # m1's: 4 (the spec's), 2, 7
    res = ev.evaluate(due_batches=due)
    for d, batches in enumerate((4, 2, 7)):
        core = compute_kpis(simulate(cleaning_crews_line(batches), replications=2, seed=3)).per_replication
        np.testing.assert_allclose(res.throughput[d], core["throughput_per_hour"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.lead_time[d], core["lead_time_hours"], rtol=1e-9)
    assert len({tuple(res.lead_time[d]) for d in range(3)}) == 3


def roomed_line(max_people: int | None) -> LineSpec:
    """Four stations, the middle two in a grade D room (no gowning) that holds ``max_people`` operators (None: no
    room), crews of one for processing (and cleaning at s2) from a team of three on a day shift, s4 from its own
    pool."""
    data = cleaning_crews_line().model_dump(mode="json", exclude_none=True)
    data["name"] = "roomed"
    data["stations"] = [
        {"name": "s1", "process_time": {"dist": "exponential", "mean": 0.8}, "operators": {"count": 1}},
        {"name": "s2", "buffer": 2, "process_time": {"dist": "gamma", "mean": 1.0, "sd": 0.4},
         "operators": {"count": 1, "phases": ["processing", "cleaning"]}, "cleaning": {"minor": 0.4, "major": 1.0,
                                                                                       "due": {"batches": 3}}},
        {"name": "s3", "buffer": 1, "process_time": {"dist": "uniform", "low": 0.6, "high": 1.3},
         "operators": {"count": 1}, "failures": {"mtbf": {"dist": "exponential", "mean": 8.0}, "mttr": 0.5}},
        {"name": "s4", "process_time": 0.7, "operators": {"count": 1}},
    ]  # fmt: skip
    data["operators"] = [{"name": "team", "headcount": 3, "calendar": "day", "qualified": ["s1", "s2", "s3"]},
                         {"name": "packers", "headcount": 1, "qualified": ["s4"]}]  # fmt: skip
    if max_people is not None:
        data["rooms"] = [{"name": "suite", "grade": "D", "max_people": max_people, "stations": ["s2", "s3"]}]
    return LineSpec.from_dict(data)


def test_a_rooms_headcount_limit_is_exact() -> None:
    for seed in (1, 2):
        limited = assert_exact(roomed_line(1), seed=seed, replications=2)
        free = assert_exact(roomed_line(None), seed=seed, replications=2)
        assert (limited.throughput[0] < free.throughput[0]).all()  # the room of one holds s2 and s3 back
    assert_exact(roomed_line(2), seed=3, replications=2)
    gowned = roomed_line(1).model_dump(mode="json", exclude_none=True)
    gowned["rooms"][0]["grade"] = "B"  # (gowning: exact too, ``test_gowning_and_a_station_of_two_pools_...``)
    assert line_arrays(LineSpec.from_dict(gowned)).approximations == ()


def test_a_crew_takes_operators_gowned_for_its_room_first_across_its_pools() -> None:
    # s1 (1 h, no crew) feeds s2 (1 h; one of pool A or B; room "core", gowning 0.5 h) and s3 (0.5 h; pool A; room
    # "corridor", gowning 0.25 h). At 1 h s2 takes A's operator (pool order; none gowned): gowns, runs 1.5-2.5; at
    # 2.5 h again (gowned for core, s2's request first), 2.5-3.5. At 3.5 h s3 (waiting since 2.5 h) takes A's: gowns
    # for the corridor, 3.75-4.25; s2 takes B's: gowns, 4-5. At 5 h both are free: s2 takes B's, gowned for core
    # (not A's, of the first pool), and runs 5-6 without gowning; s3 takes A's, gowned for the corridor, 5-5.5
    spec = LineSpec.from_dict({
        "name": "gowned-pools", "horizon": 6.0,
        "operators": [{"name": "A", "headcount": 1, "qualified": ["s2", "s3"]},
                      {"name": "B", "headcount": 1, "qualified": ["s2"]}],
        "rooms": [{"name": "core", "grade": "A", "max_people": 2, "gowning": 0.5, "stations": ["s2"]},
                  {"name": "corridor", "grade": "B", "max_people": 2, "gowning": 0.25, "stations": ["s3"]}],
        "stations": [{"name": "s1", "process_time": 1.0},
                     {"name": "s2", "process_time": 1.0, "operators": {"count": 1}},
                     {"name": "s3", "process_time": 0.5, "operators": {"count": 1}}],
    })  # fmt: skip
    res = assert_exact(spec, seed=1, replications=1)
    assert list(departures(res, 1)[:4]) == [2.5, 3.5, 5.0, 6.0]
    assert list(departures(res, 2)[:3]) == [4.25, 4.75, 5.5]


def test_a_clean_whose_crew_gowns_past_the_dirty_hold_is_a_major_one() -> None:
    # one operator for s1's cleans (room "suite", gowning 0.5 h; dirty hold 0.2 h) and s2's processing (room
    # "core", gowning 0.25 h): at 1 h s1's minor clean gets the operator, who gowns until 1.5 h, past the dirty hold:
    # a major clean (1 h) to 2.5 h (``cleaning.clean`` decides after the crew has gowned). s2 then gowns for the
    # core and runs 2.75-3.75; s1's next clean (asked at 3.5 h) gowns again, 4.25-5.25; s2's second batch 5.5-6.5
    spec = LineSpec.from_dict({
        "name": "gowned-clean", "horizon": 7.0,
        "operators": [{"name": "team", "headcount": 1, "qualified": ["s1", "s2"]}],
        "rooms": [{"name": "suite", "grade": "A", "max_people": 1, "gowning": 0.5, "stations": ["s1"]},
                  {"name": "core", "grade": "A", "max_people": 1, "gowning": 0.25, "stations": ["s2"]}],
        "stations": [{"name": "s1", "process_time": 1.0, "operators": {"count": 1, "phases": ["cleaning"]},
                      "cleaning": {"minor": 0.3, "major": 1.0, "dirty_hold": 0.2}},
                     {"name": "s2", "process_time": 1.0, "operators": {"count": 1}}],
    })  # fmt: skip
    res = assert_exact(spec, seed=1, replications=1)
    assert list(departures(res, 0)[:3]) == [1.0, 3.5, 6.25]
    assert list(departures(res, 1)[:2]) == [3.75, 6.5]


def gowned_line() -> LineSpec:
    """Four stations: s2 (cleaned by its crew, with a dirty hold) in a grade B suite, s3 (a crew of two, failures)
    in a grade A core; a team on a day shift for s1 to s3 (de-gowned each night) and an aseptic pool always on
    shift for s3 and s4: s3's crews come from both."""
    return LineSpec.from_dict({
        "name": "gowned", "horizon": 200.0, "warmup": 20.0,
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "22:00"}]}},
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 0.8}, "operators": {"count": 1}},
            {"name": "s2", "buffer": 2, "process_time": {"dist": "gamma", "mean": 1.0, "sd": 0.4},
             "operators": {"count": 1, "phases": ["processing", "cleaning"]},
             "cleaning": {"minor": 0.4, "major": 1.0, "due": {"batches": 3}, "dirty_hold": 0.2}},
            {"name": "s3", "buffer": 1, "process_time": {"dist": "uniform", "low": 0.6, "high": 1.3},
             "operators": {"count": 2}, "failures": {"mtbf": {"dist": "exponential", "mean": 8.0}, "mttr": 0.5}},
            {"name": "s4", "process_time": 0.7, "operators": {"count": 1}},
        ],
        "operators": [{"name": "team", "headcount": 3, "calendar": "day", "qualified": ["s1", "s2", "s3"]},
                      {"name": "aseptic", "headcount": 2, "qualified": ["s3", "s4"]}],
        "rooms": [{"name": "suite", "grade": "B", "max_people": 3, "stations": ["s2"], "gowning": "15 min"},
                  {"name": "core", "grade": "A", "max_people": 2, "stations": ["s3"]}],
    })  # fmt: skip


def test_gowning_and_a_station_of_two_pools_on_a_line_with_rooms_are_exact() -> None:
    spec = gowned_line()
    assert events_outside(line_arrays(spec), (1, 1, 1, 1)) == [] and line_arrays(spec).approximations == ()
    # out of the event kernel yet: several units at a station whose crews gown, a hold that investigates after one (a
    # phase begun after gowning schedules its timeout then, out of the order those rules follow); several units
    # elsewhere on the line are in
    assert [r.split(":")[0] for r in events_outside(line_arrays(spec), (1, 2, 1, 1))] == ["stations.s2.units"]
    two = spec.model_dump(mode="json", exclude_none=True)
    two["stations"][0]["units"] = 2
    assert_engine_kpis(assert_exact(LineSpec.from_dict(two), seed=1, replications=2), LineSpec.from_dict(two), seed=1,
                       replications=2)  # fmt: skip
    held = {**spec.model_dump(mode="json", exclude_none=True),
            "hold_times": [{"from": "s1", "to": "s3", "max": 2.0, "action": "investigate", "investigation": 1.0}]}
    assert any(r.startswith("hold_times: s1->s3 investigates") for r in events_outside(
        line_arrays(LineSpec.from_dict(held)), (1, 1, 1, 1)))  # fmt: skip
    for seed in (1, 2):
        res = assert_exact(spec, seed=seed, replications=2)
        assert_engine_kpis(res, spec, seed=seed, replications=2)
    # a design of more operators than the spec's: the evaluator made for them follows each, as the engine does on
    # that design's spec
    ev = Evaluator(spec, seed=1, replications=2, max_headcount=(4, 2), record=True)
    assert ev.event_shape().members == 4 and ev.approximations() == ()
    more = spec.model_dump(mode="json", exclude_none=True)
    more["operators"][0]["headcount"], more["operators"][1]["headcount"] = 4, 1
    assert_departures_match(ev.evaluate(headcount=[[4, 1]]), simulate(LineSpec.from_dict(more), seed=1,
                                                                       replications=2).table, spec)  # fmt: skip
    with pytest.raises(InputError, match="operator headcounts above"):
        ev.evaluate(headcount=[[5, 2]])


def test_a_minor_clean_off_the_skid_with_a_dirty_hold_is_not_called_exact() -> None:
    data = cleaning_crews_line().model_dump(mode="json", exclude_none=True)
    data["skids"] = [{"name": "wash", "capacity": 1}]
    data["stations"][0]["cleaning"].update(skid="wash", skid_for=["major"])  # (m1 has a dirty hold)
    reasons = line_arrays(LineSpec.from_dict(data)).approximations
    assert any("stations.m1.cleaning.skid_for" in r for r in reasons), reasons
    data["stations"][0]["cleaning"]["skid_for"] = ["minor", "major"]
    assert line_arrays(LineSpec.from_dict(data)).approximations == ()


def held_line(action: str = "scrap") -> LineSpec:
    """``cleaning_crews_line`` with a hold time of 1.5 h from m1's departure to m2's take (scrapping a late batch,
    or sending it to investigation)."""
    data = cleaning_crews_line().model_dump(mode="json", exclude_none=True)
    hold: dict[str, Any] = {"from": "m1", "to": "m2", "max": 1.5, "action": action}
    if action == "investigate":
        hold["investigation"] = {"dist": "exponential", "mean": 2.0}
    return LineSpec.from_dict({**data, "name": "held", "hold_times": [hold]})


def test_hold_time_scraps_are_exact_and_their_kpis_agree_with_core() -> None:
    # m2's batches that waited past 1.5 h since m1 are scrapped when m2 takes them: the exits skip them, their
    # rejects count in the window, m2 takes the next batch at once (m3 takes batches out of number order)
    spec = held_line()
    res = assert_exact(spec, seed=2)
    core = assert_engine_kpis(res, spec, seed=2)
    assert (core["rejected_batches"] > 0).all()
    # a lane that does not record keeps each buffer's places in a ring (the batches go with their times)
    assert_lean_lane_agrees(res, spec, 2, ("throughput", "lead_time", "oee", "rejected"))


def test_hold_time_investigations_are_exact_and_their_kpis_agree_with_core() -> None:
    # m2's batches that waited past 1.5 h since m1 go to investigation (exponential, mean 2 h) and come back into
    # m2's buffer (one place) out of order; their lead times count the investigation
    spec = held_line("investigate")
    assert Evaluator(spec, replications=1).approximations() == ()
    res = assert_exact(spec, seed=2)
    assert_engine_kpis(res, spec, seed=2)
    table = simulate(spec, replications=3, seed=2).table
    assert ((table["event"] == "investigation").groupby(table["replication"], observed=True).sum() > 20).all()
    assert_lean_lane_agrees(res, spec, 2, ("throughput", "lead_time", "oee", "rejected"))


def test_a_batch_back_from_investigation_waits_for_the_pass_on_asked_before_it() -> None:
    # s1 passes a batch on every hour when it can; s2 (one buffer place) takes 3 h; a batch that waited over 1.5 h
    # goes to investigation for 2.5 h. b1 (left s1 at 2, taken at 4) is back at 6.5, but s1 has been blocked with b4
    # since 6: at 7, b4 goes first (s2 takes it at once) and b1 then takes the place; b3 (left at 5, taken at 7) is
    # back at 9.5, after s1's b5 (blocked since 8): s2 makes b0, b2, b4, b1, b5 at 4, 7, 10, 13, 16
    data = crewed_line([1.0, 3.0], [0, 0], [], horizon=16.0).model_dump(mode="json", exclude_none=True)
    data["stations"][1]["buffer"] = 1
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 1.5, "action": "investigate", "investigation": 2.5}]
    res = assert_exact(LineSpec.from_dict(data), seed=1, replications=1)
    assert list(departures(res, 1)[:6]) == [4.0, 13.0, 7.0, 16.0, 10.0, np.inf]
    assert list(departures(res, 0)[:8]) == [1.0, 2.0, 4.0, 5.0, 7.0, 10.0, 13.0, 16.0]


def test_more_batches_in_investigation_than_a_lane_keeps_run_it_again_with_more() -> None:
    # every batch waits past its hold time and is investigated for 40 h: far more at once than the lane's first slots
    data = crewed_line([0.5, 2.0], [0, 0], [], horizon=60.0).model_dump(mode="json", exclude_none=True)
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 0.1, "action": "investigate", "investigation": 40.0}]
    spec = LineSpec.from_dict(data)
    ev = Evaluator(spec, seed=1, replications=1, record=True)
    first = ev.returns
    assert_departures_match(ev.evaluate(), simulate(spec, seed=1, replications=1).table, spec)
    assert ev.returns > 2 * first


def test_a_lane_out_of_places_for_batches_in_investigation_stops_and_is_not_taken_for_one_short_of_batches() -> None:
    # a plan of 12 batches, most investigated for 40 h at once, and a crew on the day shift (a shift change always
    # due): a lane that lost a batch for want of a place would step on to the bound on steps and be run again with
    # more batches
    team = {"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1"]}
    data = crewed_line([0.5, 2.0], [1, 0], [team], horizon=200.0).model_dump(mode="json", exclude_none=True)
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 0.1, "action": "investigate", "investigation": 40.0}]
    data["products"] = [{"name": "A", "batch_size": 1}]
    data["release"] = {"mode": "plan", "plan": [{"product": "A", "batches": 12}]}
    spec = LineSpec.from_dict(data)
    ev = Evaluator(spec, seed=1, replications=1, record=True)
    assert ev.events and not ev.approximations()
    batches, returns = ev.batches, ev.returns
    assert_departures_match(ev.evaluate(), simulate(spec, seed=1, replications=1).table, spec)
    assert ev.returns > returns and ev.batches == batches


def test_a_lane_that_fills_its_places_for_batches_in_investigation_is_not_run_again() -> None:
    # three batches: the first goes on, the second and third wait past their hold time and are in investigation at
    # once (from 1.1 h and 1.6 h, for 0.9 h): the lane's first places, and no more
    data = crewed_line([0.5, 2.0], [0, 0], [], horizon=30.0).model_dump(mode="json", exclude_none=True)
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 0.1, "action": "investigate", "investigation": 0.9}]
    data["products"] = [{"name": "A", "batch_size": 1}]
    data["release"] = {"mode": "plan", "plan": [{"product": "A", "batches": 3}]}
    spec = LineSpec.from_dict(data)
    used = []

    class Watched(Evaluator):
        def _grow(self, truncated: Any, failures_used: int, returns_used: int = 0) -> bool:
            used.append(returns_used)
            return super()._grow(truncated, failures_used, returns_used)

    ev = Watched(spec, seed=1, replications=1, record=True)
    ev.returns = 2  # (places for the two)
    assert_departures_match(ev.evaluate(), simulate(spec, seed=1, replications=1).table, spec)
    assert used == [ev.returns] == [2]


def test_a_batch_taken_exactly_at_its_hold_time_goes_on() -> None:
    # s1 passes a batch on every hour, s2 takes 2 h: a batch waits 1 h (kept: the engine scraps only beyond the
    # maximum) or 2 h (scrapped at 5 h, 7 h, ...; s2 takes the next batch at the same instant)
    team = {"name": "team", "headcount": 1, "qualified": ["s1"]}
    data = crewed_line([1.0, 2.0], [1, 0], [team], horizon=12.0).model_dump(mode="json", exclude_none=True)
    spec = LineSpec.from_dict({**data, "hold_times": [{"from": "s1", "to": "s2", "max": 1.0, "action": "scrap"}]})
    res = assert_exact(spec, seed=1, replications=1)
    assert list(departures(res, 1)[:8]) == [3.0, 5.0, np.inf, 7.0, np.inf, 9.0, np.inf, 11.0]
    assert res.rejected[0, 0] == 4  # at 5, 7, 9 and 11 h


def test_a_finite_plan_ends_with_its_last_scrap() -> None:
    # four batches, s1 on the day shift from 06:00 (done at 7, 8, 9, 10 h), s2 3 h each (10, 13, 16, 19 h), s3 takes
    # each as it comes: only the first is within 4 h of leaving s1; the run ends when the last is scrapped, at 19 h
    team = {"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1"]}
    data = crewed_line([1.0, 3.0, 0.5], [1, 0, 0], [team]).model_dump(mode="json", exclude_none=True)
    data["hold_times"] = [{"from": "s1", "to": "s3", "max": 4.0, "action": "scrap"}]
    data["release"] = {"mode": "plan", "repeat": False, "plan": [{"product": "batch", "batches": 4}]}
    spec = LineSpec.from_dict(data)
    res = assert_exact(spec, seed=1, replications=1)
    assert list(departures(res, 2)[:4]) == [10.5, np.inf, np.inf, np.inf]
    core = compute_kpis(simulate(spec, replications=1, seed=1)).per_replication
    assert res.rejected[0, 0] == core["rejected_batches"][0] == 3
    assert res.throughput[0, 0] == core["throughput_per_hour"][0] == 1 / 19


def test_lead_times_follow_batches_past_the_gaps_scraps_leave() -> None:
    # s3 holds a batch 5 h while s2, blocked, lets its buffer's batches grow late and scraps them in bursts: the
    # batches behind s3's are far apart in number, yet a lane that keeps a short ring has every exit's lead time
    team = {"name": "team", "headcount": 1, "qualified": ["s1"]}
    data = crewed_line([0.2, 0.1, 5.0], [1, 0, 0], [team], horizon=100.0).model_dump(mode="json", exclude_none=True)
    data["stations"][1]["buffer"], data["stations"][2]["buffer"] = 4, 2
    data["hold_times"] = [{"from": "s1", "to": "s2", "max": 0.5, "action": "scrap"}]
    spec = LineSpec.from_dict(data)
    res = assert_exact(spec, seed=1, replications=1)
    ev = Evaluator(spec, seed=1, replications=1)
    assert ev.event_shape().kept < 40 < res.rejected[0, 0]
    core = compute_kpis(simulate(spec, replications=1, seed=1)).per_replication
    for got in (res, ev.evaluate()):
        np.testing.assert_allclose(got.lead_time[0], core["lead_time_hours"], rtol=1e-12)
        np.testing.assert_array_equal(got.rejected[0], core["rejected_batches"])


def qc_crews_line(analysts: int = 2, repeat: bool = True, action: str = "investigate") -> LineSpec:
    """Two stations sharing a day-shift team (m2's crew of two and a yield, failures at m1; finite buffers) and a QC lab of
    ``analysts`` on two shifts a weekday: tests of varying time, an incubation, out-of-specification results
    (``action``: investigated or rejected); a plan of two products, repeated (else 80 batches: the run ends at the last
    QC outcome)."""
    plan = [{"product": "A", "batches": 3}, {"product": "B", "batches": 2}]
    qc = {"analysts": analysts, "calendar": "lab", "test_time": {"dist": "exponential", "mean": 1.2},
          "incubation": {"dist": "triangular", "low": 2, "mode": 4, "high": 12}, "oos_probability": 0.25,
          "oos_action": action, **({"investigation": 3.0} if action == "investigate" else {})}  # fmt: skip
    return LineSpec.from_dict({
        "name": "qc-crews", "horizon": 400.0 if repeat else 3000.0, "warmup": 20.0,
        "products": [{"name": "A", "batch_size": 10}, {"name": "B", "batch_size": 20}],
        "release": {"mode": "plan", "repeat": repeat,
                    "plan": plan if repeat else [{**c, "batches": c["batches"] * 16} for c in plan]},
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "22:00"}]},
                      "lab": {"shifts": LAB_SHIFTS}},
        "operators": [{"name": "team", "headcount": 3, "calendar": "day", "qualified": ["m1", "m2"]}],
        "stations": [
            {"name": "m1", "process_time": {"dist": "exponential", "mean": 1.0}, "operators": {"count": 1},
             "failures": {"mtbf": {"dist": "exponential", "mean": 10.0}, "mttr": 1.0}},
            {"name": "m2", "buffer": 2, "process_time": {"A": 1.5, "B": {"dist": "gamma", "mean": 1.9, "sd": 0.5}},
             "operators": {"count": 2}, "quality": {"yield": 0.95}},
        ],
        "qc": qc,
    })  # fmt: skip


def test_qc_after_a_crewed_line_is_exact_and_its_kpis_agree_with_core() -> None:
    # a plan that does not repeat: the run (and the KPIs' window) ends at the last QC outcome, after the last exit
    spec = qc_crews_line(repeat=False)
    res = assert_exact(spec, seed=4)
    log = simulate(spec, replications=3, seed=4)
    assert_same_kpis(res, log)
    core = compute_kpis(log).per_replication
    np.testing.assert_allclose(res.oee[0], core["oee"], rtol=1e-9)
    ends = log.end_times()
    for r in range(3):
        assert res.makespan[0, r] == pytest.approx(ends[r], abs=1e-9)
        t = log.table[log.table["replication"] == r]
        assert ends[r] > t[t["event"] == "leave"]["time"].max()
    assert (log.table["event"] == "investigation").sum() > 5 and (res.release_lead_time[0] > res.lead_time[0]).all()


def test_the_qc_analysts_lever_varies_per_design_in_the_event_kernel() -> None:
    # a lane that does not record (a ring of release times without QC): each design's analysts against the engine's
    # run of its spec; QC rejects out-of-spec batches
    ev = Evaluator(qc_crews_line(action="reject"), seed=3, replications=2, max_analysts=3)
    assert ev.events and ev.approximations() == () and ev.event_shape().ring > 0
    res = ev.evaluate(qc_analysts=[1, 2, 3])
    for d in range(3):
        core = compute_kpis(simulate(qc_crews_line(d + 1, action="reject"), replications=2, seed=3)).per_replication
        np.testing.assert_allclose(res.release_lead_time[d], core["release_lead_time_hours"], rtol=1e-9)
        np.testing.assert_array_equal(res.rejected[d], core["rejected_batches"])
        np.testing.assert_allclose(res.throughput[d], core["throughput_per_hour"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.lead_time[d], core["lead_time_hours"], rtol=1e-9)
    assert (res.rejected > 3).all() and len({tuple(res.release_lead_time[d]) for d in range(3)}) == 3


def test_where_qc_after_a_crewed_line_is_exact_is_derived_and_said() -> None:
    # the event kernel runs the scan kernel's QC stage: an incubation that can take no time is a surrogate there too
    spec = qc_crews_line()
    assert steps_events(line_arrays(spec), (1, 1)) and line_arrays(spec).approximations == ()
    data = spec.model_dump(mode="json", exclude_none=True)
    zero = LineSpec.from_dict({**data, "qc": {**data["qc"], "incubation": {"dist": "empirical", "values": [0, 24]}}})
    assert steps_events(line_arrays(zero), (1, 1))
    (why,) = line_arrays(zero).approximations
    assert why.startswith("qc.incubation: an empirical time with a zero value")


def test_qc_after_a_line_whose_hold_time_scraps_batches() -> None:
    # the exits skip the scrapped batches: QC's quarantine order, its times per batch and the KPIs follow the batches
    # that do leave (their products and release times go with them)
    data = qc_crews_line().model_dump(mode="json", exclude_none=True)
    data["hold_times"] = [{"from": "m1", "to": "m2", "max": 1.0, "action": "scrap"}]
    spec = LineSpec.from_dict(data)
    res = assert_exact(spec, seed=4)
    core = assert_engine_kpis(res, spec, seed=4)
    assert (core["rejected_batches"] > 20).all()


def test_rejects_are_exact_and_their_kpis_agree_with_core() -> None:
    # m2 rejects a fifth of its batches at the end of processing: they leave the line there (then m2 cleans), the
    # exits skip them, they count as rejected in the window
    data = cleaning_crews_line().model_dump(mode="json", exclude_none=True)
    data["stations"][1]["quality"]["reject_probability"] = 0.2
    spec = LineSpec.from_dict(data)
    res = assert_exact(spec, seed=5)
    core = assert_engine_kpis(res, spec, seed=5)
    assert (core["rejected_batches"] > 5).all()


@pytest.mark.slow
def test_the_built_in_sterile_line_is_exact_on_three_lyophilizers_and_on_one() -> None:
    # the built-in sterile line: its release calendar and WIP limit of 2 batches until the lyophilizers, gowning into
    # the grade A filling core, the capper's crews from two pools, the compounding room's headcount, CIP/SIP on the
    # shared skid, the bulk hold that scraps, rejects, QC; three lyophilizers (as built) and one, from one compiled
    # kernel (the units are an input of each design)
    from twin.models import load_spec

    spec = load_spec("sterile-fill-finish", ["horizon=3 w", "warmup=1 w"])
    one = load_spec("sterile-fill-finish", ["stations.lyophilization.units=1", "horizon=3 w", "warmup=1 w"])
    ev = Evaluator(spec, seed=3, replications=2, record=True)
    assert uses_events(spec) and ev.events and ev.approximations() == ()
    assert_units_exact(ev, (spec, one), seed=3)


# -- the release gate: a release calendar and a WIP limit at the pulling first station -------------------------------


def gated_line(horizon: float = 45.0) -> LineSpec:
    """s1 (1 h), s2 (3 h, a crew of one from a team always there), s3 (1 h), unlimited buffers; s1 releases on
    weekdays from 06:00 to 14:00 only (a run starts on Monday 00:00), while fewer than 2 released batches have not
    started at s2."""
    return LineSpec.from_dict({
        "name": "gated", "horizon": horizon,
        "stations": [{"name": "s1", "process_time": 1.0}, {"name": "s2", "process_time": 3.0, "operators": {"count": 1}},
                     {"name": "s3", "process_time": 1.0}],
        "operators": [{"name": "team", "headcount": 1, "qualified": ["s2"]}],
        "calendars": {"day": {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "14:00"}]}},
        "release": {"mode": "saturated", "calendar": "day", "wip_limit": {"batches": 2, "until": "s2"}},
    })  # fmt: skip


def test_a_release_calendar_and_a_wip_limit_hold_releases_back_as_the_engine_does() -> None:
    # s1 waits for 06:00 and releases b0 at 6 (out at 7, started at s2 at once: none waiting), b1 at 7, b2 at 8; at
    # 9 two wait for s2 (b1, b2): s1 waits until s2 starts b1 at 10 (its crew granted then), releases b3 (out at 11),
    # and b4 when s2 starts b2 at 13 (out at 14); s2 starts b3 at 16, past 14:00: s1 waits for Tuesday 06:00 (30).
    # b5 out at 31 starts at s2 at once; b6 out at 32, b7 at 33 (two wait); s2 starts b6 at 34 (b8 out at 35), b7 at
    # 37 (b9 out at 38). s2 passes them on every 3 h from 10 while busy: b0..b4 at 10, 13, 16, 19, 22; b5 at 34, 37
    spec = gated_line()
    res = assert_exact(spec, seed=1)
    np.testing.assert_allclose(departures(res, 0)[:10], [7, 8, 9, 11, 14, 31, 32, 33, 35, 38], rtol=0, atol=1e-9)
    np.testing.assert_allclose(departures(res, 1)[:7], [10, 13, 16, 19, 22, 34, 37], rtol=0, atol=1e-9)
    assert_engine_kpis(res, spec, seed=1)


def test_a_start_without_a_crew_frees_the_gate_before_the_serve_step() -> None:
    # WIP limit 1 until s3 (3 h, no crew); s1 (1 h) takes pool a's operator first, then pool b's; s2 (1 h, then a
    # clean of 0.5 h) only pool a's. At 2 s2 passes b0 on and asks for its clean's crew; s3 starts b0 at once, the
    # gate opens, s1 releases b1 and asks for its crew at the same instant: the serve step of 2 serves s1 first (key
    # order), with pool a's operator; s2's clean waits for it until 3 (3 to 3.5), so s2 processes b1 from 3.5 to 4.5,
    # cleans until 5; s3 starts b1 at 5 and s1 releases b2 (out at 6)
    spec = LineSpec.from_dict({
        "name": "crewless", "horizon": 9.0,
        "stations": [{"name": "s1", "process_time": 1.0, "operators": {"count": 1}},
                     {"name": "s2", "process_time": 1.0, "operators": {"count": 1, "phases": ["processing", "cleaning"]},
                      "cleaning": {"major": 0.5, "due": {"batches": 1}}},
                     {"name": "s3", "process_time": 3.0}],
        "operators": [{"name": "a", "headcount": 1, "qualified": ["s1", "s2"]},
                      {"name": "b", "headcount": 1, "qualified": ["s1"]}],
        "release": {"mode": "saturated", "wip_limit": {"batches": 1, "until": "s3"}},
    })  # fmt: skip
    res = assert_exact(spec, seed=1, replications=1)
    np.testing.assert_allclose(departures(res, 0)[:3], [1, 3, 6], rtol=0, atol=1e-9)
    np.testing.assert_allclose(departures(res, 1)[:2], [2, 4.5], rtol=0, atol=1e-9)
    np.testing.assert_allclose(departures(res, 2)[:2], [5, 8], rtol=0, atol=1e-9)


def test_the_wip_limit_lever_varies_per_design_in_the_event_kernel() -> None:
    # one compiled kernel for limits 1 to 3; each design's KPIs equal the engine's on that design's spec
    spec = gated_line(horizon=120.0)
    ev = Evaluator(spec, seed=2, replications=1, wip_limits=(1, 3))
    assert ev.events and ev.approximations() == ()
    res = ev.evaluate(wip_limit=np.array([1, 2, 3], np.int32))
    data = spec.model_dump(mode="json", exclude_none=True)
    for d, limit in enumerate((1, 2, 3)):
        data["release"]["wip_limit"]["batches"] = limit
        core = compute_kpis(simulate(LineSpec.from_dict(data), replications=1, seed=2)).per_replication
        np.testing.assert_allclose(res.throughput[d], core["throughput_per_hour"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.lead_time[d], core["lead_time_hours"], rtol=1e-9)
    assert len({float(res.lead_time[d, 0]) for d in range(3)}) == 3


def test_what_the_event_kernel_leaves_out_of_the_release_gate_is_said() -> None:
    # several units pulling behind the gate (which wakes one of them), a WIP limit until a station whose crew gowns
    # before it starts (the batch leaves the count then)
    data = gated_line().model_dump(mode="json", exclude_none=True)
    data["stations"][0]["units"] = 2
    (why,) = events_outside(line_arrays(LineSpec.from_dict(data)), (2, 1, 1))
    assert why.startswith("stations.s1.units: 2 units pulling behind a release calendar or a WIP limit")
    assert any(w.startswith("stations.s1.units") for w in line_arrays(LineSpec.from_dict(data)).approximations)
    data["stations"][0]["units"] = 1
    data["rooms"] = [{"name": "core", "grade": "A", "gowning": 0.25, "max_people": 2, "stations": ["s2"]}]
    (why,) = events_outside(line_arrays(LineSpec.from_dict(data)), (1, 1, 1))
    assert why.startswith("release.wip_limit: until s2, whose crew gowns before processing starts")
    data["release"]["wip_limit"]["until"] = "s3"  # (s3 needs no crew)
    assert events_outside(line_arrays(LineSpec.from_dict(data)), (1, 1, 1)) == []
