"""The dashboard's run views read only what a page asks for, and the warm-up at server start reads what
the pages draw first: the same parts, figures and figures' data as reading the whole log gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.io as pio
import pyarrow.parquet as pq
import pytest

from dashboards.app import create_app
from dashboards.data import RunView
from dashboards.figures import date_ms, date_values
from dashboards.pages.compare import full_timeline
from dashboards.pages.timeline import timeline
from twin import eventlog
from twin.eventlog import EventLog, read_parquet
from twin.experiment import run
from twin.models import load_spec
from twin.runfolder import EVENTS_FILE
from twin.store import RunStore

START = ("replication", "station", "unit", "time", "product")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    store = RunStore(tmp_path_factory.mktemp("dash-data") / "store")
    spec = load_spec("osd-tablet")
    store.save(run(spec, replications=3, seed=1, horizon=500, warmup=24, name="baseline"))
    override = "stations.coating.units=2"
    coater = load_spec("osd-tablet", [override])
    store.save(run(coater, replications=3, seed=1, horizon=500, warmup=24, name="second coater", overrides=(override,)))
    return store


def test_parts_read_alone_equal_the_whole_logs(store: RunStore) -> None:
    run_id = store.run_ids()[0]
    alone, whole = RunView(store, run_id), RunView(store, run_id)
    whole.log  # noqa: B018  (every part of ``whole`` comes from the loaded log)
    assert alone.replications == whole.replications == [0, 1, 2]
    assert alone.end_times() == whole.end_times() == whole.log.end_times()
    assert alone.rows == len(whole.log)
    assert alone.stations == whole.stations and alone.units == whole.units
    for rep in (0, 2):
        pd.testing.assert_frame_equal(alone.table(rep), whole.log.replication(rep).table)
        pd.testing.assert_frame_equal(alone.intervals(rep), whole.intervals(rep))
        pd.testing.assert_frame_equal(alone.replication_log(rep).table, whole.log.replication(rep).table)
    table = whole.log.table
    pd.testing.assert_frame_equal(
        alone.events("start", START), table.loc[table["event"] == "start", list(START)].reset_index(drop=True)
    )
    assert not alone.has("log")  # none of these read the whole log
    pd.testing.assert_frame_equal(alone.all_intervals(), eventlog.state_intervals(table))
    assert not alone.has("log")
    # once every replication's intervals are there, one replication's come from them, the same
    later = RunView(store, run_id)
    later.all_intervals()
    pd.testing.assert_frame_equal(later.intervals(1), whole.intervals(1))


def test_read_parquet_columns_filters_and_row_groups(store: RunStore, tmp_path, monkeypatch) -> None:
    log = EventLog.from_parquet(store.path(store.run_ids()[0]) / EVENTS_FILE)
    monkeypatch.setattr(eventlog, "ROW_GROUP", 1000)  # several row groups in a small log
    path = tmp_path / "events.parquet"
    log.to_parquet(path)
    assert pq.ParquetFile(path).num_row_groups == -(-len(log) // 1000)
    one, meta = read_parquet(path, ("time", "event", "station"), [("replication", "=", 1)])
    assert meta == log.meta
    expected = log.table.loc[log.table["replication"] == 1, ["time", "event", "station"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, expected)
    pd.testing.assert_frame_equal(read_parquet(path)[0], log.table)
    with pytest.raises(ValueError, match="not event log columns: colour"):
        read_parquet(path, ("time", "colour"))


def test_categories_in_another_order_are_recoded(store: RunStore, tmp_path) -> None:
    """A Parquet dictionary in another order than the log's categories (e.g. written by another tool) reads
    as the same values, and a value the line does not know becomes null."""
    log = EventLog.from_parquet(store.path(store.run_ids()[0]) / EVENTS_FILE)
    table = log.table.copy()
    table["station"] = table["station"].cat.reorder_categories(list(reversed(log.meta.stations)))
    table["product"] = table["product"].cat.add_categories(["unknown"])
    table.loc[table.index[:3], "product"] = "unknown"
    path = tmp_path / "reordered.parquet"
    EventLog(table, log.meta).to_parquet(path)
    back = EventLog.from_parquet(path).table
    assert list(back["station"].cat.categories) == log.meta.stations
    assert back["station"].astype(object).equals(log.table["station"].astype(object))
    assert back["product"].iloc[:3].isna().all()
    assert back["product"].iloc[3:].astype(object).equals(log.table["product"].iloc[3:].astype(object))


def test_date_ms_are_the_dates_plotly_reads(store: RunStore) -> None:
    clock = RunView(store, store.run_ids()[0]).clock
    hours = np.array([0.0, 1.5, np.nan, 8207.25])
    ms = date_ms(clock, hours)
    assert np.isnan(ms[2])
    texts = date_values(clock, hours)
    for i in (0, 1, 3):
        assert ms[i] == np.datetime64(texts[i], "ms").astype(np.int64)


def test_warm_up_reads_the_newest_runs_first_parts_and_figures(store: RunStore, tmp_path) -> None:
    app = create_app(store.root, work_dir=tmp_path / "work", warm=True)
    app.server.extensions["twin-warm"].join(120)
    ctx = app.server.extensions["twin"]
    for run_id in store.run_ids():
        view = ctx.cache.view(run_id)
        for part in ("ends", "reps", ("table", 0), ("intervals", 0), "intervals"):
            assert view.has(part), (run_id, part)
        for key in (("timeline", 0), "compare-gantt", "losses", "downtime", "changeovers", ("qc", 0), ("batch-hint", 0)):
            assert view.has(("derived", key)), (run_id, key)  # each page's prefetch
        assert not view.has("log")  # the pages drawn first need no whole log
        # what the warm-up drew is what the pages draw from a view of their own
        fresh = RunView(store, run_id)
        window = (0.0, fresh.end(0))
        warmed = view.derived(("timeline", 0), lambda: None)
        drawn = timeline(fresh, 0, window)
        assert pio.to_json(warmed[0]) == pio.to_json(drawn[0]) and pio.to_json(warmed[1]) == pio.to_json(drawn[1])
        assert warmed[2] == drawn[2] and "segments" in drawn[2]
        assert pio.to_json(full_timeline(view)) == pio.to_json(full_timeline(fresh))


def test_warm_up_of_an_empty_store_does_nothing(tmp_path) -> None:
    app = create_app(tmp_path / "empty", work_dir=tmp_path / "work", warm=True)
    thread = app.server.extensions["twin-warm"]
    thread.join(60)
    assert not thread.is_alive()
    assert not app.server.extensions["twin"].cache._views



def test_warm_up_gives_way_to_requests_in_flight() -> None:
    """Between its steps the warm-up waits while the server answers a request (refused ones counted too), and
    a while after the last one."""
    import threading

    from flask import Flask

    from dashboards.warm import InFlight

    server = Flask("t")
    release, entered = threading.Event(), threading.Event()

    @server.route("/slow")
    def slow() -> str:
        entered.set()
        release.wait(60)
        return "done"

    busy = InFlight()
    busy.install(server)
    assert busy.wait_idle(1)
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(server.test_client().get("/slow").status_code))
    worker.start()
    assert entered.wait(60)
    assert not busy.wait_idle(0.2)  # the request is still being answered
    assert server.test_client().get("/nowhere").status_code == 404  # a refused request ends its count too
    assert not busy.wait_idle(0.2)
    release.set()
    worker.join(60)
    assert answers == [200]
    assert not busy.wait_idle(0.05, quiet=60)  # a request ended just now: the browser is drawing its answer
    assert busy.wait_idle(30, quiet=0.2)


def test_a_run_is_drawn_in_one_round_trip(store: RunStore, tmp_path) -> None:
    """No chain of callbacks: what the run picker fires takes no input that another callback writes (each page's
    controls that a run sets come back with its figures), so a page costs one round trip after the picker."""
    app = create_app(store.root, work_dir=tmp_path / "work")
    callbacks = app.server.test_client().get("/_dash-dependencies").get_json()

    def outputs(cb: dict) -> set[str]:
        out = cb["output"]
        return set(out.strip(".").split("...")) if out.startswith("..") else {out}

    written = {o for cb in callbacks for o in outputs(cb)}
    fired = [cb for cb in callbacks if any(i["id"] == "run-picker" for i in cb["inputs"])]
    assert len(fired) >= 8  # every page that shows a run
    for cb in fired:
        inputs = {f"{i['id']}.{i['property']}" for i in cb["inputs"]} - {"run-picker.value"}
        assert not (inputs & written) - outputs(cb), cb["output"]


def test_catalog_is_read_again_only_when_the_store_changes(store: RunStore, tmp_path) -> None:
    import shutil

    from dashboards.data import RunCache
    from twin.store.catalog import RUNS_DIR

    mine = RunStore(tmp_path / "store")
    for run_id in store.run_ids():
        shutil.copytree(store.path(run_id), mine.root / RUNS_DIR / run_id)
    cache = RunCache(mine)
    first = cache.catalog()
    assert sorted(first["run_id"]) == sorted(store.run_ids())
    assert cache.catalog() is first  # nothing changed: the same frame, no query
    added = mine.save(run(load_spec("osd-tablet"), replications=1, seed=5, horizon=100, warmup=0, name="third"))
    again = cache.catalog()
    assert again is not first and added in set(again["run_id"]) and again["run_id"].iloc[0] == added  # newest first
    shutil.rmtree(mine.path(added))  # a run removed by hand
    assert sorted(cache.catalog()["run_id"]) == sorted(store.run_ids())


def test_gantt_grid_keeps_every_segment(store: RunStore) -> None:
    """The heatmap's grid draws each segment over exactly its own columns (bounds to the hour, not to a bin)."""
    from dashboards.figures import gantt_figure, gantt_grid
    from dashboards.series import gantt_segments
    from twin.eventlog import STATES

    view = RunView(store, store.run_ids()[0])
    end = view.end(0)
    segments = gantt_segments(view.intervals(0), 0.0, end, 300)
    rows = len(view.unit_labels())
    edges, z = gantt_grid(segments, rows)
    assert z.shape == (rows, len(edges) - 1)
    drawn = 0
    for code, state in enumerate(STATES):
        if state not in segments:
            continue
        for row, lo, hi in zip(*segments[state], strict=True):
            a, b = np.searchsorted(edges, [lo, hi])
            assert edges[a] == lo and edges[b] == hi and (z[row, a:b] == code).all()
            drawn += b - a
    assert drawn == int((z < len(STATES)).sum())  # nothing else is coloured
    fig = gantt_figure(segments, view.unit_labels(), (0.0, end), view.clock)
    heat = fig.data[0]
    assert heat.type == "heatmap" and list(heat.y) == view.unit_labels()
    names = np.asarray(heat.text)
    assert set(np.unique(names)) <= {s.replace("_", " ") for s in STATES} | {"no state"}
    assert [t.name for t in fig.data[1:]] == [s.replace("_", " ") for s in STATES if s in segments]  # the legend


def test_plotly_loader_names_what_the_app_serves() -> None:
    """The loader's bundle, page container and graph class are the app's; the bundle is the plotly.js version
    plotly.py writes figures for."""
    from plotly.offline import get_plotlyjs_version

    from dashboards import layout
    from dashboards.app import ASSETS, PLOTLY_BUNDLE

    loader = (ASSETS / "plotly-loader.js").read_text(encoding="utf-8")
    assert f'"{PLOTLY_BUNDLE}"' in loader
    assert f'"{layout.PAGE_CONTAINER}"' in loader and f'".{layout.DRAWS_GRAPHS}"' in loader
    head = (ASSETS / PLOTLY_BUNDLE).read_text(encoding="utf-8")[:200]
    assert "cartesian" in head and f"v{get_plotlyjs_version()}" in head
