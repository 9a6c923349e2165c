"""QC release in the JAX kernel: every batch's QC start, QC end and approval (or QC reject) equal the SimPy
engine's to 1e-9 on the same draws, and the kernel's KPIs equal ``compute_kpis`` of the engine's log.

The random test keeps one line shape for every example (two calendars: two compilations) and compares three
replications per example, so compiling the kernel, its main cost, is paid a few times for the whole test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizers.evaluator import Evaluation, Evaluator
from optimizers.lines import line_arrays, qc_calendar, uses_events
from twin.engine import simulate
from twin.engine.rules.calendar import WeeklyCalendar
from twin.eventlog import EventLog
from twin.kpis.report import compute_kpis
from twin.models import load_spec
from twin.spec.model import LineSpec

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
LAB_SHIFTS = [{"days": WEEKDAYS, "start": "06:00", "end": "14:00"}, {"days": WEEKDAYS, "start": "14:30", "end": "21:00"}]
QC_EVENTS = ("qc_start", "qc_end", "qc_out")


def qc_line(qc: dict[str, Any], shifts: list[dict[str, Any]] | None = None, **top: Any) -> LineSpec:
    """A two-station line (the last one with two units, so exits come close together) and its QC lab; ``shifts``:
    the lab's calendar; ``top``: other top-level fields (start, release, horizon)."""
    data: dict[str, Any] = {
        "name": "qc", "horizon": 300.0, "warmup": 20.0, "start": "2026-12-04T16:20",  # a Friday: the weekend
        "stations": [
            {"name": "s1", "process_time": {"dist": "exponential", "mean": 1.0}},
            {"name": "s2", "units": 2, "buffer": 1, "process_time": {"dist": "gamma", "mean": 1.6, "sd": 0.5}},
        ],
        "qc": qc,
        **top,
    }  # fmt: skip
    if shifts is not None:
        data["calendars"] = {"lab": {"shifts": shifts}}
        data["qc"] = {**qc, "calendar": "lab"}
    return LineSpec.from_dict(data)


def engine_qc(table: Any) -> dict[tuple[str, int], float]:
    """(event, batch) -> time of each QC start, QC end and outcome (``qc_out``: approval or QC reject, with
    ``approve`` or ``reject`` as a second key) in one replication's log."""
    out: dict[tuple[str, int], float] = {}
    qc_rows = table[table["station"].isna()]
    for event in ("qc_start", "qc_end", "approve", "reject"):
        rows = qc_rows[qc_rows["event"] == event]
        for batch, t in zip(rows["batch"].astype(int), rows["time"].astype(float), strict=True):
            out[(event, batch)] = t
            if event in ("approve", "reject"):
                out[("qc_out", batch)] = t
    return out


def assert_same_qc(spec: LineSpec, seed: int, replications: int = 3) -> tuple[Evaluation, EventLog]:
    """Every QC start, QC end and outcome of the kernel before the horizon is the engine's (1e-9), with the same
    outcome, and the engine has no other; returns the kernel's result and the engine's log."""
    res = Evaluator(spec, seed=seed, replications=replications, record=True).evaluate()
    log = simulate(spec, seed=seed, replications=replications)
    assert_qc_times_match(res, log, spec)
    return res, log


def assert_qc_times_match(res: Evaluation, log: EventLog, spec: LineSpec) -> None:
    """Every QC start, QC end and outcome of the evaluator's first design before the horizon is the engine's log's
    (1e-9), with the same outcome, in each replication, and the engine has no other."""
    horizon = spec.horizon_hours
    for r in range(res.extra["departure"].shape[1]):
        engine = engine_qc(log.table[log.table["replication"] == r])
        x = {k: v[0, r] for k, v in res.extra.items()}
        exits = x["departure"][:, -1][x["valid"][:, -1]]
        if not uses_events(spec):  # (the event kernel keeps exits in their order: batches overtake, come back later)
            assert (np.diff(exits) >= 0).all()  # the stage takes the scan's exit order as quarantine order
        compared = 0
        for i in np.flatnonzero(x["valid"][:, -1]):
            batch = int(x["batch"][i, -1])
            for event in QC_EVENTS:
                t = x[event][i]
                if t <= horizon:
                    assert (event, batch) in engine, f"replication {r}: batch {batch} {event} in the kernel only"
                    assert abs(engine[(event, batch)] - t) < 1e-9, (r, batch, event, engine[(event, batch)], t)
                    compared += 1
            if x["qc_out"][i] <= horizon:
                assert (("approve" if x["qc_approved"][i] else "reject"), batch) in engine, (r, batch)
        assert compared == sum(1 for (event, _), t in engine.items() if event in QC_EVENTS and t <= horizon), r


def assert_same_kpis(res: Evaluation, log: EventLog) -> None:
    """The kernel's KPIs that QC changes equal ``compute_kpis`` of the engine's log, per replication."""
    core = compute_kpis(log).per_replication
    np.testing.assert_allclose(res.release_lead_time[0], core["release_lead_time_hours"], rtol=1e-9)  # nan: none
    np.testing.assert_array_equal(res.rejected[0], core["rejected_batches"])
    np.testing.assert_allclose(res.throughput[0], core["throughput_per_hour"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.lead_time[0], core["lead_time_hours"], rtol=1e-9)
    np.testing.assert_allclose(res.window_end[0], core["window_end"], rtol=0, atol=1e-9)


TIMES = [
    {"dist": "uniform", "low": 0.5, "high": 2.5},
    {"dist": "exponential", "mean": 1.2},
    {"dist": "triangular", "low": 0.3, "mode": 1.0, "high": 4.0},
    {"dist": "constant", "value": 1.5},
]
INCUBATIONS = [None, {"dist": "triangular", "low": 2, "mode": 4, "high": 12}, {"dist": "constant", "value": 24.0}]


@st.composite
def qc_labs(draw: Any) -> tuple[dict[str, Any], bool]:
    """A QC lab (1 to 3 analysts; test, incubation, out-of-spec results rejected or investigated) and whether the
    analysts work on a calendar."""
    qc: dict[str, Any] = {"analysts": draw(st.integers(1, 3)), "test_time": draw(st.sampled_from(TIMES))}
    incubation = draw(st.sampled_from(INCUBATIONS))
    if incubation is not None:
        qc["incubation"] = incubation
    qc["oos_probability"] = draw(st.sampled_from([0.0, 0.15, 0.5]))
    if draw(st.booleans()):
        qc["oos_action"] = "investigate"
        qc["investigation"] = draw(st.sampled_from([{"dist": "exponential", "mean": 5.0}, 3.0]))
    return qc, draw(st.booleans())


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lab=qc_labs(), seed=st.integers(0, 2**31))
def test_qc_release_equals_engine(lab: tuple[dict[str, Any], bool], seed: int) -> None:
    qc, on_calendar = lab
    spec = qc_line(qc, LAB_SHIFTS if on_calendar else None)
    assert Evaluator(spec).approximations() == ()
    res, log = assert_same_qc(spec, seed)
    assert_same_kpis(res, log)


def test_each_qc_branch_changes_the_run_and_the_kernel_follows_it() -> None:
    """The lab is busy (batches wait for analysts), the calendar holds batches, results come out of quarantine
    order (test and incubation times differ), and out-of-spec results are rejected and investigated: each is seen
    in the engine's log of the spec the kernel matched."""
    qc = {"analysts": 2, "test_time": TIMES[1], "incubation": INCUBATIONS[1], "oos_probability": 0.3,
          "oos_action": "investigate", "investigation": {"dist": "exponential", "mean": 5.0}}  # fmt: skip
    spec = qc_line(qc, LAB_SHIFTS)
    res, log = assert_same_qc(spec, seed=7)
    assert_same_kpis(res, log)
    t = log.table[log.table["replication"] == 0]
    qc_rows = t[t["station"].isna()]

    def order(event: str) -> list[int]:
        return qc_rows[qc_rows["event"] == event]["batch"].astype(int).tolist()

    def times(event: str) -> np.ndarray:
        rows = qc_rows[qc_rows["event"] == event].set_index("batch")["time"]
        return rows.reindex(order("quarantine")).to_numpy(float)

    waited = times("qc_start") - times("quarantine")
    assert (waited > 3.0).sum() > 10  # waits: for analysts and for the lab's working time
    assert order("qc_end") != order("qc_start")[: len(order("qc_end"))]  # QC ends out of start order
    assert order("approve") != order("qc_end")[: len(order("approve"))]  # outcomes out of QC-end order
    assert len(order("investigation")) > 5
    assert (res.release_lead_time[0] > 0).all()
    # rejecting out-of-spec batches instead: QC rejects counted with the stations' rejects
    res, log = assert_same_qc(qc_line({**qc, "oos_action": "reject"}, LAB_SHIFTS), seed=7)
    assert_same_kpis(res, log)
    assert (res.rejected[0] > 5).all()
    # without incubation: the out-of-spec draw at QC end, in the order of the QC ends (not of the starts)
    no_incubation = {k: v for k, v in qc.items() if k != "incubation"}
    res, log = assert_same_qc(qc_line({**no_incubation, "oos_action": "reject"}, LAB_SHIFTS), seed=7)
    assert_same_kpis(res, log)
    assert (res.rejected[0] > 5).all()


def test_equal_times_draw_in_simpys_order() -> None:
    """A constant test time and an incubation of 12 or 24 h: batches that start together at the lab's opening end
    together and many get their results together; SimPy processes events of one instant in the order they were
    scheduled, so the incubation and out-of-spec draws follow the order of the QC starts and ends at equal times."""
    qc = {"analysts": 3, "test_time": 1.5, "incubation": {"dist": "empirical", "values": [12, 24]},
          "oos_probability": 0.5, "oos_action": "investigate",
          "investigation": {"dist": "exponential", "mean": 5.0}}  # fmt: skip
    res, log = assert_same_qc(qc_line(qc, LAB_SHIFTS), seed=5)
    assert_same_kpis(res, log)
    results = log.table[log.table["event"].isin(["approve", "investigation"])]
    assert results.duplicated(["replication", "time"]).sum() > 5  # results at one instant


def test_qc_starts_one_ulp_apart_draw_their_tests_in_time_order() -> None:
    """Three analysts granted before a weekly lab shift all start at its beginning, as SimPy adds the wait:
    ``grant + (start - grant)`` can fall one ulp before ``start`` for a later batch, which then draws its test
    time first. The kernel iterates the ranks of the starts to that order (seed 3 has such a pair)."""
    qc = {"analysts": 3, "test_time": TIMES[0], "incubation": INCUBATIONS[1]}
    spec = qc_line(qc, [{"days": ["mon"], "start": "07:00", "end": "09:00"}], start="2026-12-07T06:40")
    res, log = assert_same_qc(spec, seed=3)
    assert_same_kpis(res, log)
    swapped = 0
    for r in range(3):
        t = log.table[(log.table["replication"] == r) & log.table["station"].isna()]
        quarantined = t[t["event"] == "quarantine"]["batch"].tolist()
        started = t[t["event"] == "qc_start"]["batch"].tolist()
        swapped += sum(a != b for a, b in zip(quarantined, started, strict=False))
    assert swapped > 0


@pytest.mark.parametrize("model", ["osd-tablet", "sterile-fill-finish"])
def test_the_built_in_lines_qc_labs_over_26_weeks(model: str) -> None:
    """Each built-in line's QC lab (its analysts, shift calendar, test, incubation of days, investigations) after
    the test line, over 26 weeks (the rest of those lines is not all in the kernel yet)."""
    data = load_spec(model).model_dump(mode="json", exclude_none=True)
    qc = data["qc"]
    shifts = data["calendars"][qc.pop("calendar")]["shifts"]
    res, log = assert_same_qc(qc_line(qc, shifts, horizon=26 * 168.0), seed=1, replications=2)
    assert_same_kpis(res, log)
    assert (log.table["event"] == "investigation").sum() > 5


@pytest.mark.parametrize("action", ["reject", "investigate"])
def test_a_finite_plan_ends_at_its_last_qc_outcome(action: str) -> None:
    """Without repeat the run ends when the last batch is approved or rejected, after the last exit: the window
    (throughput, release lead time) ends there too."""
    qc = {"analysts": 1, "test_time": TIMES[2], "incubation": INCUBATIONS[2], "oos_probability": 0.3,
          "oos_action": action, **({"investigation": 3.0} if action == "investigate" else {})}  # fmt: skip
    release = {"mode": "plan", "plan": [{"product": "batch", "batches": 40}]}
    spec = qc_line(qc, LAB_SHIFTS, release=release, horizon=5000.0)
    res, log = assert_same_qc(spec, seed=2)
    assert_same_kpis(res, log)
    ends = log.end_times()
    for r in range(3):
        assert res.makespan[0, r] == pytest.approx(ends[r], abs=1e-9)
        t = log.table[log.table["replication"] == r]
        assert ends[r] > t[t["event"] == "leave"]["time"].max() + 24.0  # after the last exit and its incubation


def test_where_the_qc_stage_is_exact_is_derived_and_said() -> None:
    """A QC lab is inside the kernel; an incubation that can take no time (an empirical one with a zero value) is
    not (the order of out-of-spec draws at one instant), and the evaluator says so."""
    qc = {"analysts": 2, "test_time": 1.0, "oos_probability": 0.2}
    assert Evaluator(qc_line(qc)).approximations() == ()
    zero = {**qc, "incubation": {"dist": "empirical", "values": [0, 24]}}
    (why,) = Evaluator(qc_line(zero)).approximations()
    assert why.startswith("qc.incubation: an empirical time with a zero value")


@pytest.mark.parametrize("start", ["2026-12-04T16:20", "2026-12-07T06:40"])
def test_the_labs_next_start_is_the_engines_to_the_bit(start: str) -> None:
    """``WeeklyCalendar.next_start`` in the kernel over 20 weeks, at random times and a float either side of
    every edge, on weekday shifts and on a Sunday night shift across the week's wrap-around: weeks plus an edge
    not exact in binary fall a hair before the edge, and the engine then takes the next float."""
    import jax
    import jax.numpy as jnp

    from optimizers.kernel import _next_start

    shifts = [*LAB_SHIFTS, {"days": ["sun"], "start": "22:00", "end": "02:00"}]
    line = line_arrays(qc_line({"analysts": 1, "test_time": 1.0}, shifts, start=start))
    rules = line.line.rules
    engine = WeeklyCalendar(rules.calendars[rules.qc.calendar])
    cal = {k: jnp.asarray(v) for k, v in qc_calendar(line).items()}
    edges = (np.arange(20)[:, None] * 168.0 + np.asarray(engine.edges)[None, :]).ravel()
    times = np.concatenate([np.random.default_rng(1).uniform(0, 20 * 168, 500), edges,
                            np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])  # fmt: skip
    times = times[times >= 0]
    kernel = np.asarray(jax.jit(jax.vmap(lambda t: _next_start(t, cal, len(engine.edges))))(jnp.asarray(times)))
    expected = np.array([engine.next_start(float(t)) for t in times])
    assert (kernel != expected).sum() == 0


@pytest.mark.slow
def test_optimize_a_qc_line_for_its_release_lead_time_on_the_kernel() -> None:
    # `twin optimize` end to end: the release lead time and the scrapped batches come from the kernel (exact), and
    # confirmation compares each KPI the kernel computes with SimPy's on the same draws
    from optimizers.api import optimize

    qc = {"analysts": 1, "test_time": {"dist": "exponential", "mean": 1.5}, "oos_probability": 0.2,
          "incubation": {"dist": "triangular", "low": 1, "mode": 2, "high": 5}}  # fmt: skip
    spec = qc_line(qc, LAB_SHIFTS)
    result = optimize(spec, ["stations.s2.buffer=0..2"], objective="release_lead_time", constraints=["scrapped_batches<=40"],
                      replications=2, confirm_replications=2, top=3, workers=1)  # fmt: skip
    report = result.to_json()
    assert report["evaluator"] == "jax" and report["exact"] is True, report.get("approximations")
    for c in result.confirmed:
        assert set(c.error) >= {"throughput_per_hour", "lead_time_hours", "release_lead_time_hours", "rejected_batches"}
        for kpi, gap in c.max_error.items():
            assert gap < 1e-9, (kpi, gap, c.values)
        assert c.evaluator["release_lead_time_hours"] == pytest.approx(c.kpis["release_lead_time"], abs=1e-9)
    best = min(c.kpis["release_lead_time"] for c in result.confirmed if c.kpis["scrapped_batches"] <= 40)
    assert result.best.kpis["release_lead_time"] == best


@pytest.mark.parametrize("crew", [False, True], ids=["scan", "events"])
def test_the_gradient_kernel_with_qc_gives_the_plain_kernels_figures(crew: bool) -> None:
    """The gradient search's kernel (``Evaluator.gradient``: forward mode through the lane and QC's stage after it)
    on a line whose lab works shifts and rejects out-of-spec batches after an incubation (the scan kernel), or
    investigates them after a plan that ends, s1 worked by a day-shift crew (the event kernel): its KPIs are the plain
    kernel's, its values their means, its derivatives the finite differences of those."""
    qc = {"analysts": 2, "test_time": TIMES[1], "oos_probability": 0.3}
    if crew:
        qc.update(oos_action="investigate", investigation={"dist": "exponential", "mean": 5.0})
        release = {"mode": "plan", "plan": [{"product": "batch", "batches": 30}]}
        data = qc_line(qc, LAB_SHIFTS, release=release, horizon=120.0).model_dump(mode="json", exclude_none=True)
        data["stations"][0]["operators"], data["stations"][1]["units"] = {"count": 1}, 1
        data["calendars"]["day"] = {"shifts": [{"days": WEEKDAYS, "start": "06:00", "end": "18:00"}]}
        data["operators"] = [{"name": "team", "headcount": 1, "calendar": "day", "qualified": ["s1"]}]
        spec = LineSpec.from_dict(data)
    else:
        spec = qc_line({**qc, "incubation": INCUBATIONS[1], "oos_action": "reject"}, LAB_SHIFTS, horizon=120.0)
    ev = Evaluator(spec, seed=5, replications=2, max_speed=1.5)
    assert ev.events == crew and ev.approximations() == ()
    buffers, units, speed = [-1, 1], list(ev.line.units), [1.0, 1.2]
    value, jac, kpis = ev.gradient(buffers, units, speed)
    plain = ev.evaluate(buffers=[buffers], units=[units], speed=[speed])
    assert kpis.keys() <= set(Evaluation.__dataclass_fields__)
    for key, x in kpis.items():
        np.testing.assert_allclose(x, getattr(plain, key)[0], rtol=1e-12, atol=1e-12, err_msg=key)
    assert (plain.release_lead_time[0] > 0).all() and (crew or (plain.rejected[0] > 0).all())  # the lab at work
    np.testing.assert_allclose(value, [plain.mean("rate")[0], plain.mean("lead_time")[0]], rtol=1e-12)
    step = 1e-6
    for j in range(2):
        moved = ev.evaluate(buffers=[buffers], units=[units], speed=[[v + step * (i == j) for i, v in enumerate(speed)]])
        fd = [(moved.mean(k)[0] - plain.mean(k)[0]) / step for k in ("rate", "lead_time")]
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-3, atol=1e-9)
