"""The Live and Calibrate & forecast pages in a real browser, over a historian a real sync wrote.

An emulated plant (`twin emulate`) feeds `twin sync --shadow --forecast-every` on loopback; the
dashboard (`twin dashboard --historian`) then shows the plant next to the twin, the scored forecasts,
a calibration of a wrong spec from the historian and a forecast with its band.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from dashboard_helpers import browser, free_port, start_dashboard, stop
from opcua_helpers import LINE_YAML, shadow_synced_plant
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from connectors.opcua.historian import Historian
from dashboards.formatting import number, percent
from twin.clock import RunClock
from twin.experiment import run
from twin.kpis.accumulate import window_from_totals
from twin.palette import state_hex
from twin.spec.loader import spec_from_data
from twin.store import RunStore

WRONG = LINE_YAML.replace(
    "process_time: {dist: exponential, mean: 1 h}", "process_time: {dist: exponential, mean: 3 h}"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash-loop")
    with shadow_synced_plant(root, "300 h"):
        pass
    store = RunStore(root / "store")
    wrong = spec_from_data(yaml.safe_load(WRONG), "wrong.yaml")
    run_id = store.save(run(wrong, replications=2, seed=1, name="mini as specified"))
    port = free_port()
    proc = start_dashboard(store.root, port, "--historian", str(root / "h.db"))
    driver = browser()
    yield {"url": f"http://127.0.0.1:{port}", "root": root, "store": store, "run": run_id, "driver": driver}
    driver.quit()
    stop(proc)


def wait(driver, seconds=60):
    return WebDriverWait(driver, seconds)


def no_browser_errors(driver) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not severe, severe
    assert "Traceback" not in driver.page_source


def test_live_page_shows_the_plant_next_to_the_twin(served):
    d = served["driver"]
    d.get(served["url"] + "/live")
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "live-state"), "Sync stopped."))
    h = Historian(served["root"] / "h.db", readonly=True)
    try:
        last, forecasts, latest, meta = h.view(), h.forecasts(), h.latest().set_index("tag"), h.meta()
        marks = {who: h.kpi_marks(10_000, who) for who in ("plant", "twin")}
    finally:
        h.close()
    status = d.find_element(By.ID, "live-state").text
    assert "line mini" in status
    # the sync stops at 300 plant hours; when the emulated plant ran on (values received past it), the status says
    # where the KPIs end
    clock = RunClock(datetime.fromtimestamp(float(meta["origin_us"]) / 1e6, tz=UTC).replace(tzinfo=None))
    ran_on = (float(meta["plant_us"]) - float(meta["origin_us"])) / 3.6e9 > last["plant_hours"] + 1 / 60
    kpis_at = f"KPIs up to {clock.text(last['plant_hours'], long=True)} UTC ({number(last['plant_hours'])} h)"
    assert (kpis_at in status) == ran_on and ("KPIs up to" in status) == ran_on
    wait(d).until(EC.presence_of_element_located((By.ID, "live-kpi-table")))
    table = d.find_element(By.ID, "live-kpi-table").text
    oee_plant, oee_twin = last["plant"]["oee"]["mean"], last["twin"]["oee"]["mean"]
    assert percent(oee_plant) in table and percent(oee_twin) in table
    assert number(last["plant"]["throughput_per_hour"]["mean"]) in table
    # this shift's and the last 24 h's figures beside the whole run's, with since when
    assert "this shift" in table and "last 24 h" in table
    assert number(last["windows"]["day"]["plant"]["throughput_per_hour"]) in table
    assert number(last["windows"]["day"]["twin"]["throughput_per_hour"]) in table  # each window: plant and twin
    assert "last 24 h: since" in d.find_element(By.ID, "live-windows").text
    # throughput over plant time: a point per plant hour of running totals (a plant at top speed sends its 280 hours
    # in seconds, so the KPI snapshots alone would be a few points), since the first of them, plant and twin
    traces = d.execute_script(
        "return document.querySelector('#live-history .js-plotly-plot').data.map(t => [t.name, t.x.length, t.y])"
    )
    assert [t[0] for t in traces] == ["plant", "twin"]
    for (who, points, y), kept in zip(traces, marks.values(), strict=True):
        assert points == len(kept) - 1 > 200, who
        assert y[-1] == pytest.approx(window_from_totals(kept[0][1], kept[-1][1])["throughput_per_hour"], rel=1e-12)
    # one tile per unit, in the colour of the state its PLC code maps to
    codes = yaml.safe_load((served["root"] / "map.yaml").read_text())["states"]
    expected = sorted(state_hex(codes[int(latest.loc[tag, "value"])]) for tag in latest.index if tag.endswith("_STATE"))
    colours = d.execute_script(
        "return document.querySelector('#live-units .js-plotly-plot').data.flatMap(t => t.x.map(() => t.marker.color))"
    )
    assert sorted(colours) == expected and len(colours) == 4
    summary = wait(d).until(EC.presence_of_element_located((By.ID, "live-forecast-summary"))).text
    scored = int(forecasts["score"].notna().sum())
    assert f"{len(forecasts)} forecasts made, {scored} scored" in summary and scored >= 5
    no_browser_errors(d)


def test_calibrate_a_wrong_spec_from_the_historian(served):
    d = served["driver"]
    d.get(served["url"] + f"/forecast?run={served['run']}")
    wait(d).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#run-picker"), served["run"][:8]))
    # the picker may show the run (kept from earlier in the session) before the page is in
    wait(d).until(EC.element_to_be_clickable((By.XPATH, "//label[contains(., 'a plant historian')]"))).click()
    d.find_element(By.ID, "fc-calibrate").click()
    summary = wait(d, 180).until(EC.presence_of_element_located((By.ID, "fc-calibration-summary"))).text
    assert "value(s) changed" in summary and "historian" in summary
    rows = d.find_element(By.ID, "fc-parameters").text
    assert "mix" in rows and "changed" in rows
    assert d.find_element(By.ID, "fc-impact").text.count("oee") >= 1
    no_browser_errors(d)


def test_forecast_from_the_selected_run_and_a_bad_horizon(served):
    d = served["driver"]
    d.get(served["url"] + f"/forecast?run={served['run']}")
    wait(d).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#run-picker"), served["run"][:8]))
    wait(d).until(lambda drv: drv.find_element(By.ID, "fc-at").get_attribute("value") not in ("", None))
    horizon = d.find_element(By.ID, "fc-horizon")
    horizon.clear()
    horizon.send_keys("0", Keys.TAB)
    d.find_element(By.ID, "fc-forecast").click()
    wait(d).until(EC.text_to_be_present_in_element((By.ID, "fc-error"), "horizon must be a positive"))
    horizon.clear()
    horizon.send_keys("48", Keys.TAB)
    d.find_element(By.ID, "fc-forecast").click()
    text = wait(d, 120).until(EC.presence_of_element_located((By.ID, "fc-totals-text"))).text
    assert "batches out of the line in 48 h" in text and "the run itself finished" in text
    names = d.execute_script("return document.querySelector('#fc-completions .js-plotly-plot').data.map(t => t.name)")
    assert {"median", "90% band", "what the run did"} <= set(names)
    assert d.find_element(By.ID, "fc-error").text == ""
    no_browser_errors(d)


def test_live_page_shows_the_kpis_since_a_time_the_user_picks(served):
    from datetime import UTC, datetime, timedelta

    from connectors.opcua.logsource import historian_decoded
    from connectors.opcua.shadow import Shadow
    from twin.kpis.report import clip_log, compute_kpis

    d = served["driver"]
    d.get(served["url"] + "/live")
    wait(d).until(EC.presence_of_element_located((By.ID, "live-kpi-table")))
    h = Historian(served["root"] / "h.db", readonly=True)
    try:
        meta, view = h.meta(), h.view()
    finally:
        h.close()
    origin = datetime.fromtimestamp(float(meta["origin_us"]) / 1e6, tz=UTC).replace(tzinfo=None)
    since = d.find_element(By.ID, "live-since")

    def pick(text: str) -> None:
        since.clear()
        since.send_keys(text, Keys.ENTER)

    for text, message in (
        ("next tuesday", "not a date and time"),
        ((origin + timedelta(hours=view["plant_hours"] + 30)).isoformat(sep=" "), "after the plant's clock"),
        ((origin - timedelta(hours=5)).isoformat(sep=" "), "before the historian's start"),
        ((origin + timedelta(hours=10)).isoformat(sep=" "), "before the historian's start"),  # in the warm-up
    ):
        pick(text)
        wait(d).until(EC.text_to_be_present_in_element((By.ID, "live-since-error"), message))
    # a time between whole plant hours: the window starts at the next one, and says so
    asked = origin + timedelta(hours=100.5)
    pick(asked.strftime("%Y-%m-%d %H:%M:%S"))
    note = wait(d).until(EC.presence_of_element_located((By.ID, "live-since-note"))).text
    assert "first whole plant hour at or after" in note and "hourly running totals" in note
    table = d.find_element(By.ID, "live-kpi-table").text
    assert "chosen window" in table
    end = view["plant_hours"]
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    twin_log = Shadow(spec, 5, max(300.0, spec.horizon_hours, 24 * 365 * 10)).replay(end)  # the sync's twin (seed 5)
    lines = {line.split(" ")[0]: line for line in table.splitlines()}
    # the chosen window's two columns, last: the plant's, then the twin's
    for column, log in ((-2, historian_decoded(served["root"] / "h.db").log), (-1, twin_log)):
        row = compute_kpis(clip_log(log, 101.0, end)).per_replication.iloc[0]
        for key, label in (("throughput_per_hour", "Throughput"), ("wip", "WIP"), ("lead_time_hours", "Lead")):
            assert lines[label].split()[column] == number(float(row[key])), (column, key, lines[label], row[key])
        assert lines["OEE"].split()[column] == percent(float(row["oee"]))  # the edge's batch: within the rounding
    assert not d.find_elements(By.ID, "live-since-error")
    no_browser_errors(d)
