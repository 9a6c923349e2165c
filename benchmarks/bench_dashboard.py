"""Time to first render of each dashboard page for a run of about one million events.

    python benchmarks/bench_dashboard.py [--events 1000000] [--replications 20] [--store DIR] [--pages A,B]
    python benchmarks/bench_dashboard.py --quick     # 100,000-event runs, 3 pages alone: under a minute

1. Two runs of `osd-tablet` with ``--replications`` replications each, the horizon chosen (from a
   short pilot run) so that each run's event log has about ``--events`` rows: the baseline and the
   what-if "second coater" (for the Compare page). Both are saved to a temporary run store.
2. `twin dashboard` as its own process; Debian's chromium (Selenium) opens each page with the
   baseline selected (``?run=ID``; Compare with ``&with=BASE,COATER``). In the page, a
   requestAnimationFrame loop checks for the page's main content (graphs holding data, KPI cards,
   tables) with no Dash callback in flight, and takes ``performance.now()`` (milliseconds since the
   navigation started) on the first frame where it is there.
3. Three figures per page: ``first`` (pages visited in order on a fresh server: the first page pays
   for loading the run), ``second`` (the same pages visited again: the run is in the server's
   cache), ``alone`` (a fresh server for each page, on a port of its own: the browser has nothing of
   it cached). Targets: 2 s (``first``, ``alone``), 1 s (``second``); a page over one is marked. The
   largest callback response (``_dash-update-component``, bytes over the wire) and the sum of all
   of them on the first visit show what the browser gets; *server* is the longest wait for a callback
   response in the *alone* round (request sent to first byte back): the rest of a page's time is the
   browser's (scripts, plotly.js, drawing).

``--store DIR`` keeps the two runs in ``DIR`` and reuses them on the next call (same ``--events`` and
``--replications``); ``--pages`` measures some pages only. To compare with other code, run the same
call with ``PYTHONPATH`` on it: the `twin dashboard` processes import it.

The Live page reads a plant historian, not the run, and is left out. The machine's load average is
printed before and after: the machine is shared, figures are noisy.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

QUICK_ALONE = ("Overview", "Timeline", "Compare")  # the pages --quick measures alone (a server start each)
TARGET_S = 2.0  # a page's first render on a fresh server (first, alone)
WARM_TARGET_S = 1.0  # ... and on a warm one (second)

# JavaScript tests of each page's main content (``graph(id)``: a Plotly graph holding data)
PAGES: list[tuple[str, str, str]] = [
    ("Overview", "/", "text('kpi-oee-value') && text('overview-time-label') && graph('overview-flow')"),
    ("Timeline", "/timeline", "text('timeline-note').includes('segments') && graph('timeline-gantt')"
                              " && graph('timeline-paths')"),
    ("Losses", "/losses", "text('losses-bottleneck-note').includes('bottleneck') && graph('losses-states')"
                          " && graph('losses-oee')"),
    ("What-if", "/what-if", "text('whatif-form').includes('compression')"),
    ("Compare", "/compare", "!!document.getElementById('compare-table') && Array.from(document"
                            ".querySelectorAll('[id^=\"compare-gantt\"] .js-plotly-plot'))"
                            ".filter(g => g.data && g.data.length).length >= 2"),
    ("Batches", "/batches", "text('batches-queue').includes('still in QC') && graph('batches-tree')"
                            " && graph('batches-qc')"),
    ("Optimize", "/optimize", "!!document.getElementById('optimize-start')"),
    ("Forecast", "/forecast", "!!document.getElementById('fc-at') && document.getElementById('fc-at').value !== ''"),
    ("Downloads", "/downloads", "text('downloads-body').includes('Event log (CSV)')"),
]  # fmt: skip

WAIT_SCRIPT = """
const done = arguments[arguments.length - 1];
const text = id => { const e = document.getElementById(id); return e ? e.innerText : ''; };
const graph = id => {
  const g = document.querySelector('#' + id + ' .js-plotly-plot');
  return !!(g && g.data && g.data.length > 0 && g.querySelector('.main-svg'));
};
const idle = () => document.querySelectorAll('[data-dash-is-loading="true"]').length === 0;
const danger = () => Array.from(document.querySelectorAll('.alert-danger')).map(a => a.innerText).join(' | ');
const check = () => {
  try {
    if (danger()) { done({error: danger()}); return; }
    if ((%s) && idle()) { done({ms: performance.now()}); return; }
  } catch (e) {}
  requestAnimationFrame(check);
};
check();
"""

RESPONSES = """
const calls = performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update-component'));
return calls.map(e => [e.transferSize || e.encodedBodySize, e.responseStart - e.requestStart]);
"""


def make_runs(root: Path, events: int, replications: int) -> tuple[object, str, str, int, float]:
    """Two runs of about ``events`` rows each; returns the store, their ids, the rows and the horizon
    (the runs of an earlier call with the same figures when ``root`` holds them)."""
    import json

    from twin.experiment import run
    from twin.models import load_spec
    from twin.store import RunStore

    made = root / "bench-runs.json"
    if made.exists():
        old = json.loads(made.read_text())
        if (old["events"], old["replications"]) == (events, replications):
            print(f"runs: {old['rows']:,} event rows ({replications} replications of {old['horizon']:.0f} h), reused")
            return RunStore(root / "store"), old["base"], old["coater"], old["rows"], old["horizon"]
    spec = load_spec("osd-tablet")
    pilot = run(spec, replications=2, seed=1, horizon=8 * 168)
    rate = len(pilot.log.table) / (2 * 8 * 168)  # rows per replication-hour
    horizon = float(math.ceil(events / (replications * rate) / 24) * 24)
    store = RunStore(root / "store")
    started = time.perf_counter()
    base = run(spec, replications=replications, seed=1, horizon=horizon, name="baseline")
    rows = len(base.log.table)
    base_id = store.save(base)
    del base
    override = "stations.coating.units=2"
    coater = run(load_spec("osd-tablet", [override]), replications, 1, horizon, name="second coater",
                 overrides=(override,))  # fmt: skip
    coater_id = store.save(coater)
    print(f"runs: {rows:,} and {len(coater.log.table):,} event rows ({replications} replications of {horizon:.0f} h),"
          f" simulated and stored in {time.perf_counter() - started:.0f} s")  # fmt: skip
    record = {"events": events, "replications": replications, "base": base_id, "coater": coater_id, "rows": rows,
              "horizon": horizon}  # fmt: skip
    made.write_text(json.dumps(record))
    return store, base_id, coater_id, rows, horizon


def measure(driver: object, url: str, condition: str) -> tuple[float, list[int], float]:
    """Seconds from navigation start to the page's main content, the sizes of its callback responses and the
    longest wait for one (seconds)."""
    driver.get("about:blank")
    driver.get(url)
    got = driver.execute_async_script(WAIT_SCRIPT % condition)
    if "error" in got:
        raise RuntimeError(f"{url}: the page shows an error: {got['error']}")
    calls = driver.execute_script(RESPONSES)
    return got["ms"] / 1000, [int(size) for size, _ in calls], max((wait for _, wait in calls), default=0) / 1000


def address(base_url: str, path: str, base: str, coater: str) -> str:
    extra = f"&with={base},{coater}" if path == "/compare" else ""
    return f"{base_url}{path}?run={base}{extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="event rows of each run (about)")
    parser.add_argument("--replications", type=int, default=20)
    quick = f"runs of 100,000 events, 4 replications; alone: {', '.join(QUICK_ALONE)} only"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--store", type=Path, help="keep the runs here and reuse them on the next call")
    parser.add_argument("--pages", help="comma-separated page names (default: all)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.replications = 100_000, 4
    pages = PAGES
    if args.pages:
        wanted = [p.strip() for p in args.pages.split(",")]
        unknown = [p for p in wanted if p not in {name for name, _, _ in PAGES}]
        if unknown:
            parser.error(f"--pages: no page {', '.join(unknown)} (pages: {', '.join(n for n, _, _ in PAGES)})")
        pages = [p for p in PAGES if p[0] in wanted]
    from dashboard_helpers import browser, free_port, start_dashboard, stop

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="twin-bench-dash-") as tmp:
        root = args.store or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        store, base, coater, _rows, _horizon = make_runs(root, args.events, args.replications)
        driver = browser()
        driver.set_script_timeout(300)
        first: dict[str, float] = {}
        second: dict[str, float] = {}
        alone: dict[str, float] = {}
        server: dict[str, float] = {}
        largest: dict[str, int] = {}
        total: dict[str, int] = {}
        try:
            port = free_port()
            proc = start_dashboard(store.root, port)
            try:
                url = f"http://127.0.0.1:{port}"
                for name, path, condition in pages:
                    first[name], sizes, _ = measure(driver, address(url, path, base, coater), condition)
                    largest[name], total[name] = max(sizes, default=0), sum(sizes)
                for name, path, condition in pages:
                    second[name], _, _ = measure(driver, address(url, path, base, coater), condition)
            finally:
                stop(proc)
            for name, path, condition in pages:
                if args.quick and not args.pages and name not in QUICK_ALONE:
                    continue
                port = free_port()
                proc = start_dashboard(store.root, port)
                try:
                    page = address(f"http://127.0.0.1:{port}", path, base, coater)
                    alone[name], _, server[name] = measure(driver, page, condition)
                finally:
                    stop(proc)
        finally:
            driver.quit()

    print()
    head = ("first s", 8), ("second s", 9), ("alone s", 8), ("server s", 9), ("largest KB", 11), ("all KB", 8)
    print(f"{'page':<10} " + " ".join(f"{h:>{w}}" for h, w in head))
    for name, _path, _condition in pages:
        over = [f"{k} over {t:g} s" for k, v, t in (("first", first[name], TARGET_S), ("second", second[name],
                WARM_TARGET_S), ("alone", alone.get(name, 0.0), TARGET_S)) if v >= t]  # fmt: skip
        mark = f"  ({', '.join(over)})" if over else ""
        lone = f"{alone[name]:8.2f} {server[name]:9.2f}" if name in alone else f"{'-':>8} {'-':>9}"
        print(f"{name:<10} {first[name]:8.2f} {second[name]:9.2f} {lone} "
              f"{largest[name] / 1000:11.1f} {total[name] / 1000:8.1f}{mark}")  # fmt: skip
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
