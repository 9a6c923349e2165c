"""The dashboard in a real browser (Debian's chromium) against a real `twin dashboard` process and store."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest
import requests
from dashboard_helpers import browser, free_port, start_dashboard, stop
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dashboards.formatting import ci_text
from twin.clock import clock_for
from twin.eventlog import EventLog
from twin.experiment import run
from twin.kpis.report import compute_kpis
from twin.models import load_spec
from twin.spec.loader import spec_from_data
from twin.store import RunStore

SPLIT_LINE = {
    "name": "split-line", "horizon": "300 h", "release": {"mode": "saturated"},
    "products": [{"name": "A", "batch_size": 1000}],
    "stations": [{"name": "gran", "process_time": "2 h", "split": 2},
                 {"name": "press", "process_time": {"dist": "exponential", "mean": "50 min"}, "buffer": 4},
                 {"name": "blend", "process_time": "90 min", "merge": 2}],
}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    store = RunStore(root / "store")
    spec = load_spec("osd-tablet")
    base = run(spec, replications=2, seed=1, horizon=4 * 168, warmup=168)
    ids = {"base": store.save(base)}
    coater = run(load_spec("osd-tablet", ["stations.coating.units=2"]), 2, 1, 4 * 168, 168, name="second coater",
                 overrides=("stations.coating.units=2",))  # fmt: skip
    ids["coater"] = store.save(coater)
    ids["split"] = store.save(run(spec_from_data(SPLIT_LINE), replications=1, seed=3))
    port = free_port()
    proc = start_dashboard(store.root, port)
    driver = browser()
    yield {"url": f"http://127.0.0.1:{port}", "store": store, "ids": ids, "driver": driver, "base": base}
    driver.quit()
    stop(proc)


def wait(driver, seconds=60):
    return WebDriverWait(driver, seconds)


def wait_through_navigation(driver, seconds=60):
    """A wait that a page load under way does not end: ChromeDriver answers a look-up made as the browser
    navigates with "aborted by navigation" (a WebDriverException), to be tried again."""
    return WebDriverWait(driver, seconds, ignored_exceptions=(WebDriverException,))


def open_page(served, path: str, run_id: str | None = None) -> None:
    """Open a page with a run selected by the address (``?run=``), as a shared link would."""
    d = served["driver"]
    d.get(served["url"] + path + (f"?run={run_id}" if run_id else ""))
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#page-container > *")))
    if run_id:
        wait(d).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#run-picker"), run_id[:8]))


def no_browser_errors(driver) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not severe, severe
    assert "Traceback" not in driver.page_source


def test_overview_kpi_cards_equal_compute_kpis(served):
    open_page(served, "/", served["ids"]["base"])
    d = served["driver"]
    summary = compute_kpis(served["store"].get(served["ids"]["base"]).log).summary
    for card, key, scale, digits in (
        ("kpi-throughput", "throughput_per_hour", 24, 2),
        ("kpi-lead-time", "lead_time_hours", 1, 1),
        ("kpi-wip", "wip", 1, 2),
        ("kpi-oee", "oee", 100, 1),
    ):
        value, detail = ci_text(summary[key], scale, digits)
        if key == "oee":  # line OEE says the station it is valued at
            detail += f"; valued at {summary['constraint']['station']}, the constraint"
        wait(d).until(EC.text_to_be_present_in_element((By.ID, f"{card}-value"), value))
        assert d.find_element(By.ID, f"{card}-value").text == value
        assert d.find_element(By.ID, f"{card}-ci").text == detail
    # the flow: one coloured square per unit, a moment of the run chosen by the slider (the warm-up's end)
    spec = served["base"].spec  # no start: the clock starts the Monday after the run was stored
    moment = clock_for(spec, served["store"].info(served["ids"]["base"])["created"]).text(168.0, long=True)
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "overview-time-label"), moment))
    shapes = d.execute_script("return document.getElementById('overview-flow').querySelector('.js-plotly-plot')"
                              ".layout.shapes.length")  # fmt: skip
    assert shapes >= 2 * 8  # a frame and a square per unit, plus QC
    no_browser_errors(d)


@pytest.mark.parametrize(
    ("path", "selector", "expect"),
    [
        ("/timeline", "#timeline-note", "segments"),
        ("/losses", "#losses-bottleneck-note", "The line's bottleneck"),
        ("/batches", "#batches-queue", "still in QC"),
        ("/downloads", "#downloads-body", "Event log (CSV)"),
        ("/optimize", "#optimize-start", "Start search"),
        ("/what-if", "#whatif-form", "compression"),
    ],
)
def test_every_page_renders_the_run(served, path, selector, expect):
    open_page(served, path, served["ids"]["base"])
    d = served["driver"]
    wait(d).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, selector), expect))
    if path == "/losses":
        bottleneck = served["base"].kpis.summary["bottleneck"]["station"]
        assert bottleneck in d.find_element(By.ID, "losses-bottleneck-note").text
        wait(d).until(
            lambda drv: drv.execute_script(
                "const g = document.querySelector('#losses-states .js-plotly-plot'); return g && g.data.length > 2"
            )
        )
    if path == "/timeline":
        traces = d.execute_script("return document.querySelector('#timeline-gantt .js-plotly-plot').data.length")
        assert traces >= 3
    no_browser_errors(d)


def test_graphs_draw_with_the_cartesian_bundle_and_the_gantt_names_states(served):
    """plotly.js is the cartesian bundle shipped in the assets (the version plotly.py writes figures for), never
    the full one; the Gantt is one heatmap whose hover names the unit, the state and the time."""
    from plotly.offline import get_plotlyjs_version

    open_page(served, "/timeline", served["ids"]["base"])
    d = served["driver"]
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "timeline-note"), "segments"))
    version, scripts = d.execute_script(
        "return [Plotly.version, performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('plotly'))]"
    )
    assert version == get_plotlyjs_version()
    assert any(n.split("?")[0].endswith("/assets/plotly-cartesian.min.js") for n in scripts), scripts
    assert not any("package_data/plotly.min.js" in n for n in scripts), scripts
    kind, legend = d.execute_script(
        "const g = document.querySelector('#timeline-gantt .js-plotly-plot'); const x = g._fullData[0].x;"
        "Plotly.Fx.hover(g, {xval: (x[0] + x[x.length - 1]) / 2, yval: 0});"
        "return [g.data[0].type, g.data.slice(1).map(t => t.name)]"
    )
    label = wait(d, 10).until(
        lambda drv: drv.execute_script(
            "const h = document.querySelector('#timeline-gantt .hoverlayer'); return h && h.textContent"
        )
    )
    assert kind == "heatmap" and "processing" in legend
    unit = served["store"].get(served["ids"]["base"]).spec.stations[0].name
    assert label.startswith(unit) and any(state in label for state in legend), label
    no_browser_errors(d)
    open_page(served, "/downloads", served["ids"]["base"])  # no graph: plotly.js is never run
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "downloads-body"), "Event log (CSV)"))
    assert d.execute_script("return window.Plotly.version") is None


def test_timeline_zoom_requeries_a_finer_window(served):
    open_page(served, "/timeline", served["ids"]["base"])
    d = served["driver"]
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "timeline-note"), "segments"))
    # the graph's own first resize may re-query the whole run just after our zoom: zoom until the note follows
    run_id = served["ids"]["base"]
    clock = clock_for(served["store"].get(run_id).spec, served["store"].info(run_id)["created"])
    lo, hi = (clock.at(h).isoformat(sep=" ") for h in (200, 260))  # the axis is calendar time
    for _attempt in range(5):
        d.execute_script("Plotly.relayout(document.querySelector('#timeline-gantt .js-plotly-plot'),"
                         f" {{'xaxis.range[0]': '{lo}', 'xaxis.range[1]': '{hi}'}})")  # fmt: skip
        try:
            wait(d, 15).until(lambda drv: "in 60 h shown" in drv.find_element(By.ID, "timeline-note").text)
            break
        except TimeoutException:
            continue
    assert "in 60 h shown" in d.find_element(By.ID, "timeline-note").text


def test_batches_page_traces_a_split_and_merged_batch(served):
    open_page(served, "/batches", served["ids"]["split"])
    d = served["driver"]
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "batches-hint"), "made by splits or merges"))
    labels = wait(d).until(
        lambda drv: drv.execute_script(
            "const g = document.querySelector('#batches-tree .js-plotly-plot'); return g && g.data[1] && g.data[1].text"
        )
    )
    assert len(labels) >= 3  # the batch, its parents (merge) and their parent (split)
    assert d.find_element(By.ID, "batches-history-table").text


def test_compare_two_runs_with_paired_deltas(served):
    served["driver"].get(f"{served['url']}/compare?run={served['ids']['base']}&with={served['ids']['coater']}")
    d = served["driver"]
    wait(d).until(EC.presence_of_element_located((By.ID, "compare-table")))
    row = d.find_element(By.ID, "compare-row-throughput_per_hour").text
    store, ids = served["store"], served["ids"]
    a, b = store.per_replication(ids["base"]), store.per_replication(ids["coater"])
    from twin.stats import paired_difference

    delta = paired_difference(a["throughput_per_hour"], b["throughput_per_hour"])
    expected = ci_text({"mean": delta.mean, "ci95": [delta.low, delta.high]}, 24, 2)
    assert expected[0].lstrip("-") in row
    assert "paired" in d.find_element(By.ID, "compare-table").text
    constraint = d.find_element(By.ID, "compare-row-constraint").text
    assert constraint.startswith(f"Line OEE valued at {store.summary(ids['base'])['constraint']['station']}")
    assert "stations.coating.units" in d.page_source


def test_downloads_read_back(served):
    open_page(served, "/downloads", served["ids"]["base"])
    d = served["driver"]
    link = wait(d).until(EC.presence_of_element_located((By.ID, "download-events-parquet")))
    log = served["store"].get(served["ids"]["base"]).log
    got = requests.get(link.get_attribute("href"), timeout=60)
    assert got.status_code == 200
    parquet = EventLog.from_parquet(io.BytesIO(got.content))
    assert len(parquet.table) == len(log.table)
    csv = requests.get(d.find_element(By.ID, "download-events-csv").get_attribute("href"), timeout=120)
    assert len(pd.read_csv(io.BytesIO(csv.content))) == len(log.table)
    kpis = requests.get(d.find_element(By.ID, "download-kpis-json").get_attribute("href"), timeout=60).json()
    assert kpis["throughput_per_hour"] == json.loads(json.dumps(compute_kpis(log).summary["throughput_per_hour"]))
    scene = requests.get(d.find_element(By.ID, "download-scene-zip").get_attribute("href"), timeout=300)
    with zipfile.ZipFile(io.BytesIO(scene.content)) as zf:
        names = zf.namelist()
        assert "line.usdc" in names and any(n.startswith("twin_assets/") for n in names)
        folder = served["store"].root.parent / "scene"
        zf.extractall(folder)
    from pxr import Usd

    stage = Usd.Stage.Open(str(folder / "line.usdc"))
    assert stage.GetDefaultPrim().GetPath().pathString == "/World"


def test_bad_value_is_shown_next_to_its_field_and_nothing_runs(served):
    store, before = served["store"], len(served["store"].run_ids())
    open_page(served, "/what-if", served["ids"]["base"])
    d = served["driver"]
    units = wait(d).until(
        EC.presence_of_element_located((By.XPATH, '//*[@id=\'{"key":"stations.coating.units","type":"wf-in"}\']'))
    )
    units.clear()
    units.send_keys("0", Keys.TAB)
    d.find_element(By.ID, "whatif-run").click()
    err = d.find_element(By.XPATH, '//*[@id=\'{"key":"stations.coating.units","type":"wf-err"}\']')
    wait(d).until(lambda _: "greater than or equal to 1" in err.text)
    assert d.execute_script("return document.querySelectorAll('.invalid').length") == 1
    assert "nothing was run" in d.find_element(By.ID, "whatif-general").text
    assert d.find_element(By.XPATH, '//*[@id=\'{"key":"stations.packaging.units","type":"wf-err"}\']').text == ""
    assert len(store.run_ids()) == before


def test_whatif_from_the_form_runs_and_lands_in_the_store(served):
    store, before = served["store"], set(served["store"].run_ids())
    open_page(served, "/what-if", served["ids"]["base"])
    d = served["driver"]
    buffer = wait(d).until(
        EC.presence_of_element_located((By.XPATH, '//*[@id=\'{"key":"stations.coating.buffer","type":"wf-in"}\']'))
    )
    buffer.clear()
    buffer.send_keys("5", Keys.TAB)
    name = d.find_element(By.XPATH, '//*[@id=\'{"key":"setting.scenario","type":"wf-in"}\']')
    name.clear()
    name.send_keys("coater buffer 5", Keys.TAB)
    d.find_element(By.ID, "whatif-run").click()
    done = wait(d, 180).until(EC.presence_of_element_located((By.ID, "whatif-done")))
    new = set(store.run_ids()) - before
    assert len(new) == 1
    run_id = new.pop()
    assert done.get_attribute("data-run") == run_id
    info = store.info(run_id)
    assert info["scenario"] == "coater buffer 5" and "stations.coating.buffer=5" in info["overrides"]
    assert store.get(run_id).spec.station("coating").buffer == 5
    wait(d).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#run-picker"), run_id[:8]))


def test_optimize_offers_the_lines_levers_objectives_and_a_constraint(served):
    open_page(served, "/optimize", served["ids"]["base"])
    d = served["driver"]
    lever = wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#optimize-vary input[value='qc']")))
    offered = {e.get_attribute("value") for e in d.find_elements(By.CSS_SELECTOR, "#optimize-vary input")}
    assert {"buffers", "units", "headcount", "cleaning", "campaigns", "qc", "skids"} <= offered  # the tablet line's
    assert "wip" not in offered  # it has no WIP limit
    lever.click()
    d.find_element(By.CSS_SELECTOR, "#optimize-objective input[value='oee']").click()
    constraint = d.find_element(By.ID, "optimize-constraint")
    constraint.send_keys("scrapped_batches<=1000", Keys.TAB)
    evals = d.find_element(By.ID, "optimize-evals")
    evals.send_keys(Keys.CONTROL, "a")
    evals.send_keys("8", Keys.TAB)
    horizon = d.find_element(By.ID, "optimize-horizon")
    horizon.send_keys(Keys.CONTROL, "a")
    horizon.send_keys("3 w", Keys.TAB)
    d.find_element(By.ID, "optimize-start").click()
    figure = wait(d, 400).until(EC.presence_of_element_located((By.ID, "optimize-objective-figure")))
    assert figure.text.startswith("Line OEE: ") and "(SimPy)" in figure.text
    status = d.find_element(By.ID, "optimize-constraint-status").text
    assert "scrapped_batches<=1000" in status and "met" in status
    title = d.execute_script("return document.querySelector('#optimize-history .js-plotly-plot').layout.yaxis.title.text")
    assert "line oee" in title.lower()
    no_browser_errors(d)


def test_optimize_searches_stores_the_best_design_and_opens_it_as_a_whatif(served):
    store, before = served["store"], set(served["store"].run_ids())
    open_page(served, "/optimize", served["ids"]["base"])
    d = served["driver"]
    evals = wait(d).until(EC.presence_of_element_located((By.ID, "optimize-evals")))
    evals.send_keys(Keys.CONTROL, "a")
    evals.send_keys("16", Keys.TAB)
    horizon = d.find_element(By.ID, "optimize-horizon")
    horizon.send_keys(Keys.CONTROL, "a")
    horizon.send_keys("4 w", Keys.TAB)  # the line's warm-up is 2 w
    d.find_element(By.ID, "optimize-start").click()
    stored = wait(d, 400).until(EC.presence_of_element_located((By.ID, "optimize-stored")))
    run_id = stored.get_attribute("data-run")
    assert set(store.run_ids()) - before == {run_id}
    assert store.info(run_id)["tags"]["source"] == "optimizer"
    points = d.execute_script("return document.querySelector('#optimize-history .js-plotly-plot').data[0].x.length")
    assert points >= 1  # the best-so-far curve
    # beside the spec's own design, on the same draws; one objective draws no Pareto front
    assert "paired" in d.find_element(By.ID, "optimize-baseline-throughput_per_hour").text
    assert d.find_element(By.ID, "optimize-space-note").text
    assert not d.find_element(By.ID, "optimize-pareto-card").is_displayed()
    best_buffers = {s.name: s.buffer for s in store.get(run_id).spec.stations}
    d.find_element(By.XPATH, "//button[text()='Open as what-if']").click()  # navigates to the what-if page
    wait_through_navigation(d).until(EC.url_contains("/what-if"))
    note = wait_through_navigation(d).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#whatif-prefill-note .alert"))
    )
    assert "Prefilled from the optimizer's best design" in note.text
    for station, places in best_buffers.items():
        field = d.find_elements(By.XPATH, f'//*[@id=\'{{"key":"stations.{station}.buffer","type":"wf-in"}}\']')
        if field and places is not None:
            assert field[0].get_attribute("value") == str(places), station
    no_browser_errors(d)
