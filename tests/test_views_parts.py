"""The parts behind the views: the distribution editor's texts, the loss waterfall, the batch record, units."""

from __future__ import annotations

import pytest

from dashboards.dist_editor import FAMILIES, compose, decompose
from twin.clock import rate_unit
from twin.experiment import run
from twin.models import load_spec
from twin.report.record import batch_record
from twin.report.waterfall import top_causes, waterfall
from twin.spec.distributions import DISTRIBUTIONS, parse_distribution

EXAMPLES = {
    "constant": {"value": ("2", "h")},
    "exponential": {"mean": ("45", "min")},
    "uniform": {"low": ("1", "h"), "high": ("2", "h")},
    "triangular": {"low": ("1", "h"), "mode": ("90", "min"), "high": ("3", "h")},
    "normal": {"mean": ("2", "h"), "sd": ("10", "min")},
    "lognormal": {"mean": ("2", "h"), "sd": ("30", "min")},
    "gamma": {"mean": ("2", "d"), "sd": ("6", "h")},
    "weibull": {"shape": ("1.5", ""), "scale": ("3", "h")},
    "empirical": {"values": ("1 h, 2 h, 150 min", "")},
}


def test_every_family_of_the_registry_has_an_example():
    assert set(FAMILIES) == set(DISTRIBUTIONS) == set(EXAMPLES)


@pytest.mark.parametrize("family", sorted(EXAMPLES))
def test_composed_text_is_a_valid_distribution_and_reads_back(family):
    text = compose(family, EXAMPLES[family])
    import yaml

    parsed = parse_distribution(yaml.safe_load(text))
    assert parsed.dist == family
    again, values = decompose(text)
    assert again == family and compose(again, values) == text


@pytest.mark.parametrize(("per_hour", "unit"), [(0.09, "batches/day"), (2.5, "batches/h"), (None, "batches/day")])
def test_rate_unit_follows_the_line(per_hour, unit):
    assert rate_unit(per_hour)[0] == unit


@pytest.fixture(scope="module")
def tablet():
    return run(load_spec("osd-tablet"), replications=2, seed=2, horizon=4 * 168, warmup=168)


def test_waterfall_adds_up_and_ends_at_oee(tablet):
    summary = tablet.kpis.summary
    for station in summary["stations"]:
        fall = waterfall(summary, station)
        running = 0.0
        for step in fall.steps:
            if step.kind == "total":
                if step.name != "calendar time":
                    assert step.hours == pytest.approx(running, abs=1e-6), (station, step.name)
                running = step.hours
            else:
                assert step.hours <= 1e-12
                running += step.hours
        window = summary["window_hours"][1] - summary["window_hours"][0]
        assert fall.total("calendar time") == pytest.approx(summary["stations"][station]["units"] * window)
        assert all(0 <= fall.total(n) <= fall.total("calendar time") + 1e-9 for n in ("planned busy time", "run time"))
        planned = fall.total("planned busy time")
        if planned > 0:  # OEE is a mean of ratios: close to, not exactly, the ratio of means
            ratio = fall.total("fully productive time") / planned
            assert ratio == pytest.approx(summary["stations"][station]["oee"]["mean"], abs=0.05)
    causes = top_causes(waterfall(summary, summary["bottleneck"]["station"]))
    assert len(causes) <= 3 and [c.hours for c in causes] == sorted(c.hours for c in causes)


def test_batch_record_follows_the_event_log(tablet):
    table = tablet.log.table[tablet.log.table["replication"] == 0]
    batch = int(table.loc[table["event"] == "approve", "batch"].iloc[0])
    record = batch_record(tablet.log, tablet.spec, batch, 0)
    mine = table[table["batch"] == batch]
    assert [s.station for s in record.steps] == list(dict.fromkeys(mine["station"].dropna().astype(str)))
    for step in record.steps:
        rows = mine[mine["station"].astype(object) == step.station]
        assert step.start == rows.loc[rows["event"] == "start", "time"].iloc[0]
        assert step.left == rows.loc[rows["event"] == "leave", "time"].iloc[0]
        assert step.arrive <= step.start <= step.end <= step.left
        assert sum(step.waits.values()) == pytest.approx(step.waited, abs=1e-6)  # every hour of a wait has a reason
    assert record.status == "released"
    assert record.qc["approve"] == table.loc[(table["batch"] == batch) & (table["event"] == "approve"), "time"].iloc[0]
    assert {(h.from_station, h.to_station) for h in record.holds} == {(r.from_, r.to) for r in tablet.spec.hold_times}
    for hold in record.holds:
        assert hold.held is not None and hold.violated == (hold.held > hold.limit + 1e-9)


def test_live_history_is_on_the_plants_calendar():
    from datetime import UTC, datetime

    from dashboards.pages.live import history_figure

    origin_us = datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1e6  # the sync's origin, as the historian keeps it
    kpis = {"since": 1.0, "plant": ([2.0, 25.5], [0.5, 0.5]), "twin": ([], [])}  # what live.history reads
    fig = history_figure(kpis, origin_us)
    assert list(fig.data[0].x) == ["2027-01-01T02:00:00", "2027-01-02T01:30:00"] and len(fig.data) == 1
    assert fig.layout.xaxis.type == "date" and fig.layout.xaxis.title.text == "plant time (UTC)"
    assert fig.layout.yaxis.title.text == "throughput since Fri 01 Jan 01:00 (batches/h)"


def test_units_at_counts_time_in_state_from_entering_it(tablet, tmp_path):
    from dashboards.data import RunCache
    from dashboards.series import units_at
    from twin.store import RunStore

    store = RunStore(tmp_path / "store")
    view = RunCache(store).view(store.save(tablet))
    iv = view.intervals(0)
    table = view.table(0)
    for t in (170.0, 250.5, 400.0):
        now = units_at(table, iv, view.stations, view.units, t)
        assert set(now) == set(range(sum(view.units)))
        for row, unit in now.items():
            mine = iv[iv["row"] == row]
            at = mine[(mine["start"] <= t) & (mine["end"] > t)]
            assert unit["state"] == str(at["state"].iloc[0])
            before = mine[mine["end"] == unit["since"]]  # the interval just before entering the state
            assert before.empty or str(before["state"].iloc[-1]) != unit["state"]
            since_then = mine.loc[(mine["start"] >= unit["since"]) & (mine["start"] <= t), "state"].astype(str)
            assert since_then.eq(unit["state"]).all()
