"""Screenshots of every dashboard page, taken in headless chromium from a real `twin dashboard` process.

    .venv/bin/python docs/make_screenshots.py [--out docs/screenshots] [--no-live]

1. A store in a temporary folder: a baseline run of `osd-tablet` (4 weeks, 2 replications, seed 1)
   and the what-if "second coater" (`stations.coating.units=2`), saved with `RunStore.save`.
2. A plant historian for the Live and Calibrate & forecast pages: `twin emulate` runs the `mini`
   line of `tests/opcua_helpers.py` on loopback and `twin sync --shadow --forecast-every "40 h"`
   records 300 h of it (about a minute; `--no-live` skips it and the Live page).
3. `twin dashboard --store ... --historian ...` as its own process; Debian's chromium (Selenium,
   as in the browser tests) opens each page at 1366x900, waits for the page's own content (graphs
   holding data, tables, texts; no fixed sleeps), and saves ``<out>/<page>.png``. The Compare page
   shows the baseline against the second coater; the Optimize page runs a small search; the
   forecast page clicks "Forecast" so that its fan chart shows.

PNGs larger than 300 KB are reduced to a 256-colour palette when Pillow is installed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

MAX_BYTES = 300_000
WIDTH, HEIGHT = 1366, 900
SECOND_COATER = "stations.coating.units=2"


def build_store(root: Path) -> tuple[object, str, str]:
    """The baseline and the second-coater runs, stored; returns the store and both run ids."""
    from twin.experiment import run
    from twin.models import load_spec
    from twin.store import RunStore

    store = RunStore(root / "store")
    start = "start=2027-01-04"  # calendar time from a stated Monday (display only: the same draws and KPIs)
    base = run(load_spec("osd-tablet", [start]), replications=2, seed=1, horizon=4 * 168, warmup=168, name="baseline")
    coater = run(
        load_spec("osd-tablet", [start, SECOND_COATER]), 2, 1, 4 * 168, 168, name="second coater",
        overrides=(SECOND_COATER,),
    )  # fmt: skip
    return store, store.save(base), store.save(coater)


def build_historian(root: Path) -> Path:
    """300 h of the `mini` line emulated and synced with a shadow twin and forecasts every 40 h."""
    from opcua_helpers import shadow_synced_plant

    with shadow_synced_plant(root, "300 h"):
        pass
    return root / "h.db"


# --- waiting for a page's own content -------------------------------------------------------------

GRAPH_FILLED = """
const g = document.querySelector(arguments[0] + ' .js-plotly-plot');
return !!(g && g.data && g.data.length > 0 && g.querySelector('.main-svg'));
"""
FILLED_COMPARE_GANTTS = """
return Array.from(document.querySelectorAll('[id^="compare-gantt"] .js-plotly-plot'))
  .filter(g => g.data && g.data.length).length;
"""
IDLE = "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length === 0"
DANGER = "return Array.from(document.querySelectorAll('.alert-danger')).map(a => a.innerText).join(' | ')"


def graphs(*ids: str) -> Callable[[object], bool]:
    return lambda d: all(d.execute_script(GRAPH_FILLED, f"#{i}") for i in ids)


def compare_timelines(d: object) -> bool:
    """Both runs' Gantt charts on the Compare page hold data."""
    return d.execute_script(FILLED_COMPARE_GANTTS) >= 2


def text(element_id: str, expected: str) -> Callable[[object], bool]:
    from selenium.webdriver.common.by import By

    def check(d: object) -> bool:
        found = d.find_elements(By.ID, element_id)
        return bool(found) and expected in found[0].text

    return check


def present(element_id: str) -> Callable[[object], bool]:
    from selenium.webdriver.common.by import By

    return lambda d: bool(d.find_elements(By.ID, element_id))


def settle(driver: object, *checks: Callable[[object], bool], timeout: float = 120) -> None:
    """Wait until every check holds and Dash has no callback in flight, then for two painted frames."""
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: object) -> bool:
        shown = d.execute_script(DANGER)
        if shown:
            raise RuntimeError(f"{d.current_url}: the page shows an error: {shown}")
        return all(c(d) for c in checks) and d.execute_script(IDLE)

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(ready)
    driver.execute_async_script(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));"
    )


def no_errors(driver: object, page: str) -> None:
    from selenium.webdriver.common.by import By

    alerts = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#app-error *") if a.text]
    severe = [
        e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]
    ]
    if alerts or severe or "Traceback" in driver.page_source:
        raise RuntimeError(f"{page}: the page shows an error: {alerts or severe or 'a traceback'}")


# --- the pages ------------------------------------------------------------------------------------


def optimize_search(driver: object) -> None:
    """A small buffer search (16 designs of 6 weeks, 2 of them warm-up), so that the charts have something to show."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    for element_id, value in (("optimize-evals", "16"), ("optimize-horizon", "6 w")):
        field = driver.find_element(By.ID, element_id)
        field.send_keys(Keys.CONTROL, "a")  # clear() does not reach React's state
        field.send_keys(value, Keys.TAB)
    driver.find_element(By.ID, "optimize-start").click()


def forecast(driver: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "fc-at").get_attribute("value") not in ("", None))
    driver.find_element(By.ID, "fc-forecast").click()


def shots(base: str, coater: str, live: bool) -> list[tuple[str, str, list, Callable | None, list]]:
    """(file name, address, checks before the action, action, checks after it) of each page."""
    run = f"?run={base}"
    pages = [
        (
            "overview",
            "/" + run,
            [text("overview-time-label", "into the run"), present("kpi-oee-ci"), graphs("overview-flow")],
        ),
        (
            "timeline",
            "/timeline" + run,
            [text("timeline-note", "segments"), graphs("timeline-gantt", "timeline-paths")],
        ),
        (
            "losses",
            "/losses" + run,
            [text("losses-bottleneck-note", "bottleneck"), graphs("losses-waterfall", "losses-states", "losses-oee")],
        ),
        ("what-if", "/what-if" + run, [text("whatif-form", "compression")]),
        ("compare", f"/compare?run={base}&with={base},{coater}", [present("compare-table"), compare_timelines]),
        (
            "batches",
            "/batches" + run,
            [text("batches-queue", "still in QC"), present("batches-record-head"), graphs("batches-tree")],
        ),
        ("downloads", "/downloads" + run, [text("downloads-body", "Event log (CSV)")]),
    ]
    out = [(name, path, checks, None, []) for name, path, checks in pages]
    out.append(
        ("optimize", "/optimize" + run, [present("optimize-start")], optimize_search, [present("optimize-best")])
    )
    out.append(("forecast", "/forecast" + run, [present("fc-forecast")], forecast, [present("fc-totals-text")]))
    if live:
        out.append(
            (
                "live",
                "/live",
                [text("live-state", "Sync stopped."), present("live-kpi-table"), graphs("live-units")],
                None,
                [],
            )
        )
    return out


def shrink(path: Path) -> None:
    """A 256-colour palette when the PNG is over ``MAX_BYTES`` (needs Pillow; else the file stays)."""
    if path.stat().st_size <= MAX_BYTES:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"  {path.name}: {path.stat().st_size // 1000} KB (install Pillow to reduce it)")
        return
    with Image.open(path) as img:
        small = img.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--no-live", action="store_true", help="skip the historian and the Live page")
    args = parser.parse_args()
    from dashboard_helpers import browser, free_port, start_dashboard, stop

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="twin-shots-") as tmp:
        root = Path(tmp)
        started = time.monotonic()
        store, base, coater = build_store(root)
        print(f"store: baseline {base[:8]}, second coater {coater[:8]} ({time.monotonic() - started:.0f} s)")
        extra: list[str] = []
        if not args.no_live:
            started = time.monotonic()
            extra = ["--historian", str(build_historian(root))]
            print(f"historian: 300 h of the mini line synced ({time.monotonic() - started:.0f} s)")
        port = free_port()
        proc = start_dashboard(store.root, port, *extra)
        driver = browser()
        try:
            # the viewport itself, not the window around it
            metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            for name, path, checks, action, after in shots(base, coater, not args.no_live):
                driver.get(f"http://127.0.0.1:{port}{path}")
                settle(driver, *checks)
                if action is not None:
                    action(driver)
                    settle(driver, *after, timeout=300)
                driver.execute_script("window.scrollTo(0, 0)")
                no_errors(driver, name)
                target = args.out / f"{name}.png"
                driver.save_screenshot(str(target))
                shrink(target)
                print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
                      f"{target.stat().st_size // 1000} KB")  # fmt: skip
        finally:
            driver.quit()
            stop(proc)


if __name__ == "__main__":
    main()
