"""KPI invariants over random lines: every factor a fraction, state shares a partition, lead times
no shorter than the work they hold, line OEE in the constraint's own units; on simulated logs and on
plant logs decoded from the emulator's tags, joined mid-run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connectors.opcua.emulator import PlantEmulator
from connectors.opcua.plantlog import US_PER_HOUR, plant_event_log
from connectors.opcua.tagmap import default_tag_map, parse_tag_map
from connectors.opcua.uabase import ServerOptions
from twin.engine import simulate
from twin.errors import InputError
from twin.eventlog import STATES, EventLog
from twin.kpis.columns import by_replication
from twin.kpis.flow import flow
from twin.kpis.report import STATION_FACTORS, compute_kpis
from twin.spec.model import LineSpec

T0 = 1_700_000_000_000_000  # the plant clock's origin, microseconds
DISTS = ("constant", "exponential", "triangular", "uniform")


def _process_time(draw: Any, mean: float) -> dict[str, Any] | float:
    kind = draw(st.sampled_from(DISTS))
    if kind == "constant":
        return mean
    if kind == "exponential":
        return {"dist": "exponential", "mean": mean}
    if kind == "triangular":
        return {"dist": "triangular", "low": mean * 0.5, "mode": mean, "high": mean * 2}
    return {"dist": "uniform", "low": mean * 0.5, "high": mean * 1.5}


@st.composite
def random_specs(draw: Any) -> dict[str, Any]:
    """A line with a random choice of every rule: parallel units, splits and merges, rates, failures,
    quality losses, cleaning on a shared skid, changeovers, hold times, operators on shifts, QC."""
    n_products = draw(st.integers(1, 2))
    products = [{"name": f"P{i}", "batch_size": draw(st.sampled_from([100, 1000, 250_000]))} for i in range(n_products)]
    n = draw(st.integers(1, 4))
    names = [f"s{j}" for j in range(n)]
    stations: list[dict[str, Any]] = []
    use_skid = draw(st.booleans())
    staffed: list[str] = []
    for j, name in enumerate(names):
        station: dict[str, Any] = {"name": name, "units": draw(st.integers(1, 3))}
        mean = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
        if draw(st.integers(0, 4)) == 0:
            station["rate"] = {"units_per_hour": products[0]["batch_size"] / mean, "startup": 0.1,
                               "speed_loss": draw(st.sampled_from([0.0, 0.3])), "cv": draw(st.sampled_from([0.0, 0.2]))}  # fmt: skip
        else:
            station["process_time"] = _process_time(draw, mean)
            if draw(st.booleans()):  # a nameplate that may be faster or slower than the actual times
                station["ideal_time"] = mean * draw(st.sampled_from([0.5, 1.0, 1.5]))
        if j > 0 and draw(st.booleans()):
            station["buffer"] = draw(st.integers(0, 3))
        if draw(st.booleans()):
            station["failures"] = {"mtbf": {"dist": "exponential", "mean": draw(st.sampled_from([3.0, 20.0]))},
                                   "mttr": {"dist": "exponential", "mean": 0.5},
                                   "basis": draw(st.sampled_from(["operating", "calendar"]))}  # fmt: skip
        if draw(st.booleans()):
            station["quality"] = {"yield": draw(st.sampled_from([0.9, 1.0])),
                                  "reject_probability": draw(st.sampled_from([0.0, 0.1]))}  # fmt: skip
        if draw(st.booleans()):
            cleaning: dict[str, Any] = {"minor": 0.2, "major": 1.0, "due": {"batches": draw(st.integers(2, 4))},
                                        "line_clearance": 0.1}  # fmt: skip
            if use_skid:
                cleaning["skid"] = "cip"
                cleaning["dirty_hold"] = 0.5
            if draw(st.booleans()):
                cleaning["clean_hold"] = 2.0
            station["cleaning"] = cleaning
            if n_products > 1 and draw(st.booleans()):
                station["setup"] = {"*->*": {"time": 0.5, "major_clean": True, "line_clearance": draw(st.booleans())}}
        elif n_products > 1 and draw(st.booleans()):
            station["setup"] = {"*->*": draw(st.sampled_from([0.5, 1.0]))}
        if j < n - 1 and draw(st.integers(0, 3)) == 0:
            station["split"] = draw(st.integers(2, 3))
        elif j > 0 and draw(st.integers(0, 3)) == 0:
            station["merge"] = draw(st.integers(2, 3))
        if draw(st.integers(0, 3)) == 0:
            station["operators"] = {"count": 1}
            staffed.append(name)
        stations.append(station)
    plan = [{"product": p["name"], "batches": draw(st.integers(1, 3))} for p in products]
    release: dict[str, Any] = draw(st.sampled_from([
        {"mode": "plan", "repeat": True, "plan": plan},
        {"mode": "saturated"},
        {"mode": "interarrival", "interarrival": {"dist": "exponential", "mean": 0.7}},
    ]))  # fmt: skip
    horizon = draw(st.sampled_from([6.0, 20.0, 60.0]))
    spec: dict[str, Any] = {
        "name": "random",
        "horizon": horizon,
        "warmup": horizon * draw(st.sampled_from([0.0, 0.13, 0.5])),  # short windows, starting mid-batch
        "products": products,
        "release": release,
        "stations": stations,
    }
    if use_skid and any("cleaning" in s for s in stations):
        spec["skids"] = [{"name": "cip", "capacity": 1}]
    if staffed:
        spec["calendars"] = {"shifts": {"shifts": [{"days": ["mon", "tue"], "start": "02:00", "end": "22:00"}]}}
        spec["operators"] = [{"name": "team", "headcount": draw(st.integers(1, 2)), "calendar": "shifts",
                              "qualified": staffed}]  # fmt: skip
        if draw(st.booleans()):  # a cleanroom with gowning and a headcount limit
            spec["rooms"] = [{"name": "core", "grade": "A", "max_people": 1, "gowning": 0.2, "stations": staffed}]
        if release["mode"] != "interarrival" and draw(st.booleans()):
            release["calendar"] = "shifts"
    if n > 1 and draw(st.booleans()):
        action = draw(st.sampled_from(["scrap", "investigate"]))
        hold = {"from": names[0], "to": names[-1], "max": draw(st.sampled_from([0.5, 3.0])), "action": action}
        if action == "investigate":
            hold["investigation"] = 1.0
        spec["hold_times"] = [hold]
    if draw(st.booleans()):
        spec["qc"] = {"analysts": 1, "test_time": {"dist": "exponential", "mean": 1.0},
                      "oos_probability": 0.2, "oos_action": draw(st.sampled_from(["reject", "investigate"])),
                      "investigation": 2.0}  # fmt: skip
    if release["mode"] != "interarrival" and draw(st.integers(0, 3)) == 0:
        release["wip_limit"] = {"batches": 2, "until": names[-1]}
    return spec


def valid(data: dict[str, Any]) -> LineSpec:
    try:
        return LineSpec.from_dict(data)
    except (InputError, ValueError):
        assume(False)
        raise


def fraction(value: float) -> bool:
    return math.isnan(value) or -1e-9 <= value <= 1 + 1e-9


def assert_kpi_invariants(log: EventLog, warmup: float | None = None) -> None:
    """Every invariant the KPIs promise, on one log."""
    meta = log.meta
    report = compute_kpis(log, warmup)
    df = report.per_replication
    start = meta.warmup if warmup is None else warmup
    for replication, row in df.iterrows():
        assert fraction(row["oee"]), f"line OEE {row['oee']} in replication {replication}"
        assert not row["oee"] > 0 or row["constraint"] in meta.stations  # valued at a station when positive
        for name, units in zip(meta.stations, meta.units, strict=True):
            shares = [row[f"{name}.state.{state}"] for state in STATES]
            assert sum(shares) == pytest.approx(1.0, abs=1e-9), (name, shares)
            for u in range(units):
                unit_shares = [row[f"{name}.unit{u}.state.{state}"] for state in STATES]
                assert min(unit_shares) >= -1e-12
                assert sum(unit_shares) == pytest.approx(1.0, abs=1e-9), (name, u, unit_shares)
                for factor in STATION_FACTORS:
                    assert fraction(row[f"{name}.unit{u}.{factor}"]), (name, u, factor, row[f"{name}.unit{u}.{factor}"])
            for factor in STATION_FACTORS:
                assert fraction(row[f"{name}.{factor}"]), (name, factor, row[f"{name}.{factor}"])
        assert row["wip"] >= 0 and row["throughput_per_hour"] >= 0
    for summary_oee in (report.summary["oee"]["mean"],):
        assert summary_oee is None or fraction(summary_oee)
    # each batch's lead time >= its own processing (start to finish) along any chain of its ancestors
    table = log.table
    for replication, cols in by_replication(table, meta.stations, meta.products):
        ends = log.end_times()
        end = ends.get(replication, float(cols.time.max()))
        if end <= start:
            continue
        f = flow(cols, len(meta.stations) - 1, start, end)
        chain = _processing_chains(table[table["replication"] == replication])
        for batch, lead in zip(f.lead_batches.tolist(), f.lead_times.tolist(), strict=True):
            assert lead >= chain.get(batch, 0.0) - 1e-9, (replication, batch, lead, chain.get(batch))


def _processing_chains(table: pd.DataFrame) -> dict[int, float]:
    """Per batch: the longest sum of start-to-finish times along its own and its ancestors' chain."""
    started = table[table["event"] == "start"].groupby(["batch", "station"], observed=True)["time"].min()
    finished = table[table["event"] == "finish"].groupby(["batch", "station"], observed=True)["time"].max()
    spans = (finished - started).dropna()
    own = spans.groupby(level="batch").sum().to_dict()
    links = table[table["event"].isin(["split", "merge"])]
    parents: dict[int, list[int]] = {}
    for child, parent in zip(links["batch"].tolist(), links["parent"].tolist(), strict=True):
        parents.setdefault(child, []).append(parent)
    memo: dict[int, float] = {}

    def chain(batch: int) -> float:
        if batch not in memo:
            memo[batch] = own.get(batch, 0.0) + max((chain(p) for p in parents.get(batch, [])), default=0.0)
        return memo[batch]

    return {b: chain(b) for b in set(own) | set(parents)}


def emulated_plant_log(spec: LineSpec, seed: int, join: float, unit_counters: bool = True) -> EventLog:
    """The emulator's tags for a run of ``spec``, decoded as a plant feed joined at ``join`` hours (with a map
    that has the units counters, or not)."""
    tags = parse_tag_map(default_tag_map(spec), "map", spec)
    emulator = PlantEmulator(spec, tags, ServerOptions(), speed=None, seed=seed)
    if not unit_counters:
        data = default_tag_map(spec)
        for units in data["stations"].values():
            for unit in units:
                unit.pop("count", None)
        tags = parse_tag_map(data, "map", spec)
    run = simulate(spec, seed=seed)
    rows = [(tag, T0, _initial(role)) for tag, role in tags.all_tags().items()]  # what `PlantEmulator.start` writes
    for change in emulator.live.apply(run.table[run.table["event"] != "end"]):
        for tag, value in emulator._values(change):
            rows.append((tag, T0 + round(change.time * US_PER_HOUR), value))
    samples = pd.DataFrame(rows, columns=["tag", "source_us", "value"])
    samples["status"] = 0
    samples["seq"] = np.arange(len(samples))
    end = run.meta.horizon
    return plant_event_log(spec, tags, samples, T0 + round(join * US_PER_HOUR), T0 + round(end * US_PER_HOUR)).log


def _initial(role: str) -> object:
    """A tag's value before the run: counters and states 0 (no information), batch and product ids empty."""
    kind = role.rsplit(".", 1)[-1]
    return "" if kind in ("batch", "product") else False if kind == "alarm" else 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=random_specs(), seed=st.integers(0, 10_000))
def test_kpis_of_simulated_logs_keep_their_invariants(data, seed):
    spec = valid(data)
    assert_kpi_invariants(simulate(spec, replications=2, seed=seed))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=random_specs(), seed=st.integers(0, 10_000), join=st.sampled_from([0.0, 0.37, 2.5]))
def test_kpis_of_plant_logs_decoded_from_the_emulator_keep_their_invariants(data, seed, join):
    spec = valid(data)
    log = emulated_plant_log(spec, seed, join)
    assert_kpi_invariants(log, warmup=0.0)


def test_a_plant_joined_mid_batch_counts_only_the_hours_its_window_holds():
    # the press (ideal 30 min for A) runs batch L0 since before the feed began; it finishes 12 min into the feed,
    # then waits until the end (1 h). The window holds 12 min of processing: performance 100%, line OEE 20%.
    # Counting the whole batch's 30 min gave a performance of 250% and a line OEE of 50%.
    from test_opcua_plantlog import H, one_station, samples

    spec, tags = one_station()
    origin = T0 + H
    feed = samples(
        [
            ("ALM", 0.0, False),
            ("DONE", 0.2, 0),
            ("GOOD", 0.2, 0),
            ("LOT", 0.5, "L0"),
            ("PROD", 0.5, "A"),
            ("ST", 0.5, "RUN"),  # read at the start: from before the feed began
            ("DONE", 1.2, 1),
            ("GOOD", 1.2, 100),
            ("ST", 1.2, "WAIT"),
        ]
    )
    log = plant_event_log(spec, tags, feed, origin_us=origin, end_us=origin + H).log
    row = compute_kpis(log).per_replication.iloc[0]
    assert row["press.state.processing"] == pytest.approx(0.2)
    assert row["press.availability"] == pytest.approx(0.2)
    assert row["press.performance"] == pytest.approx(1.0)
    assert row["press.oee"] == pytest.approx(0.2)
    assert row["oee"] == pytest.approx(0.2) and row["constraint"] == "press"
    assert_kpi_invariants(log)


def test_twin_sync_joining_a_running_plant_reports_possible_figures_with_labels(tmp_path):
    # the emulated plant runs for a while before `twin sync` joins it: its window starts mid-batch
    import re
    import time

    import yaml
    from opcua_helpers import LINE_YAML, TwinProcess, endpoint

    from connectors.opcua.tagmap import dump_tag_map
    from twin.spec.loader import spec_from_data

    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    (tmp_path / "line.yaml").write_text(LINE_YAML.replace("horizon: 300 h", "horizon: 5000 h"))
    (tmp_path / "map.yaml").write_text(dump_tag_map(default_tag_map(spec)))
    ep = endpoint()
    emulate = ["emulate", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--allow-anonymous",
               "--seed", "2", "--speed", "20000", "--pki", "pki-emu"]  # fmt: skip
    with TwinProcess(emulate, tmp_path, "emu") as emu:
        emu.wait_for("emulating mini")
        time.sleep(2.0)  # the plant is hours into its run when the sync joins
        sync = ["sync", "line.yaml", "--endpoint", ep, "--map", "map.yaml", "--security", "none", "--pki", "pki-s",
                "--historian", "h.db", "--until", "40 h", "--kpi-every", "0.2"]  # fmt: skip
        with TwinProcess(sync, tmp_path, "sync") as feed:
            assert feed.proc.wait(300) == 0, feed.log()
            shown, table = feed.log(), feed.stdout()
        emu.stop()
    oees = [float(x) for x in re.findall(r"plant [\d.]+ h: throughput [\d.,-]+/h, OEE ([\d.]+)%", shown)]
    assert oees and all(0.0 <= x <= 100.0 for x in oees), oees
    assert "Throughput (batches/h)" in table and "Line OEE" in table and "line OEE valued at" in table
    assert "throughput_per_hour" not in table and not re.search(r"\de[+-]\d", table)
    line_oee = float(re.search(r"Line OEE\s+│?\s*([\d.]+)%", table).group(1))
    assert 0.0 <= line_oee <= 100.0
    # the historian's state tags read as the tag map names them, the plant's code beside
    from conftest import run_cli

    history = run_cli("history", str(tmp_path / "h.db"), "--tag", "MIX_U1_STATE", "--limit", "500")
    assert history.returncode == 0, history.stderr
    codes = {code: state for code, state in yaml.safe_load((tmp_path / "map.yaml").read_text())["states"].items()}
    shown_states = re.findall(r"\b([a-z_]+) \((\d+)\)", history.stdout)
    assert shown_states and all(codes[int(code)] == state for state, code in shown_states)
    assert "processing" in {s for s, _ in shown_states} and len({s for s, _ in shown_states}) >= 2


def test_a_plant_map_without_units_counters_values_split_and_merged_lots_as_lots():
    spec = LineSpec.from_dict(
        {
            "name": "split-merge", "horizon": 200.0, "products": [{"name": "A", "batch_size": 300}],
            "stations": [{"name": "granulation", "process_time": 2.0, "split": 3},
                         {"name": "compression", "process_time": {"dist": "uniform", "low": 0.4, "high": 0.6}},
                         {"name": "blending", "process_time": 0.75, "merge": 2}],
        }
    )  # fmt: skip
    counted = compute_kpis(emulated_plant_log(spec, 4, 5.0), warmup=0.0).per_replication.iloc[0]
    derived = compute_kpis(emulated_plant_log(spec, 4, 5.0, unit_counters=False), warmup=0.0).per_replication.iloc[0]
    assert counted["units_per_hour"] == pytest.approx(derived["units_per_hour"])  # a blend is 200 units
    assert counted["oee"] == pytest.approx(derived["oee"]) and 0.9 < derived["oee"] <= 1.0
    assert derived["constraint"] == "granulation"


def test_a_unit_whose_first_state_comes_late_is_measured_over_the_time_it_was_seen():
    # the press's state first arrives 15 min into a 1 h feed: 30 min processing, then 15 min waiting
    from test_opcua_plantlog import H, one_station, samples

    spec, tags = one_station()
    feed = samples([("ST", 1.25, "RUN"), ("LOT", 1.25, "L0"), ("PROD", 1.25, "A"), ("ST", 1.75, "WAIT")])
    row = compute_kpis(plant_event_log(spec, tags, feed, origin_us=T0 + H, end_us=T0 + 2 * H).log).per_replication
    row = row.iloc[0]
    assert row["press.state.processing"] == pytest.approx(2 / 3) and row["press.state.starved"] == pytest.approx(1 / 3)
    assert sum(row[f"press.state.{s}"] for s in STATES) == pytest.approx(1.0)
    assert row["press.availability"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [3, 4])
def test_the_emulators_tags_decode_to_the_simulated_kpis(seed):
    # a unit going from one batch straight to the next stays `processing` on its state tag: no start row in the
    # plant's log, yet each batch's ideal time is credited as in the simulated log
    import yaml
    from opcua_helpers import LINE_YAML

    from twin.spec.loader import spec_from_data

    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    simulated = compute_kpis(simulate(spec, seed=seed), 20.0).per_replication.iloc[0]
    plant = compute_kpis(emulated_plant_log(spec, seed, 0.0), 20.0).per_replication.iloc[0]
    assert list(plant.index) == list(simulated.index)
    for column in simulated.index:
        if isinstance(simulated[column], float):
            assert plant[column] == pytest.approx(simulated[column], rel=1e-9, abs=1e-12, nan_ok=True), column
        else:
            assert plant[column] == simulated[column], column
