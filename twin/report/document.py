"""The run report: one self-contained HTML document (printed to PDF by ``twin.report.pdf``).

    >>> doc = ReportRun.load("3f9c2a71", store)         # a stored run (or a run folder's path)
    >>> html = report_html(doc, compare=[other], what_ifs=True)

Sections: what was run and how to reproduce it (spec hash, seed, replications, horizon, warm-up,
overrides, twin version, the spec itself in an appendix); the KPIs with 95% confidence intervals;
the line's loss waterfall and each station's; the bottleneck with its top three causes and,
with ``what_ifs``, the paired what-if that removes each; an excerpt of the Gantt; QC and release;
the compared runs' paired or Welch differences. Times are calendar times of the run's clock
(``twin.clock``); the throughput unit is the line's own (``twin.clock.rate_unit``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from twin.clock import RunClock, clock_for, rate_unit, span_text
from twin.eventlog import STATES, state_intervals
from twin.kpis.line import LINE_KPIS, LineKpi, constraint_text, shown, stat
from twin.palette import state_hex
from twin.report.waterfall import REMEDIES, Waterfall, removal_overrides, top_causes, waterfall

GANTT_HOURS = 168.0  # the excerpt: one week from the end of the warm-up
RELEASES_SHOWN = 15


@dataclass(frozen=True)
class ReportRun:
    """A run to report on: its result (spec, log, KPIs), its run information and where it came from."""

    result: Any  # twin.experiment.RunResult
    info: dict[str, Any]
    source: str  # "run 3f9c2a71 in twin-runs" or a folder

    @property
    def clock(self) -> RunClock:
        return clock_for(self.result.spec, self.info.get("created"))

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.kpis.summary

    @property
    def name(self) -> str:
        run_id = self.info.get("run_id")
        return f"{self.info.get('scenario') or 'baseline'}" + (f" ({run_id[:8]})" if run_id else "")

    @classmethod
    def load(cls, ref: str, store: Any | None) -> ReportRun:
        """A run folder (``twin run --out``) when ``ref`` is one, else a run of ``store`` (id or prefix)."""
        from twin.errors import InputError
        from twin.runfolder import RUN_FILE, read_run

        path = Path(ref)
        if path.is_dir():
            info = json.loads((path / RUN_FILE).read_text(encoding="utf-8")) if (path / RUN_FILE).is_file() else {}
            return cls(read_run(path), info, str(path))
        if store is None:
            raise InputError(f"{ref}: no such run folder, and no run store to look the run up in (--store)")
        run_id = store.resolve(ref)
        return cls(store.get(run_id), store.info(run_id), f"run {run_id[:8]} in {store.root}")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: float | None, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def _kpi_scale(kpi: LineKpi, summary: dict[str, Any]) -> tuple[str, float, int]:
    """Unit, scale and digits a KPI is shown with (the line's own throughput unit)."""
    if kpi.column == "throughput_per_hour":
        unit, scale = rate_unit(stat(summary, kpi).get("mean"))
        return unit, scale, 2
    return kpi.unit, (100.0 if kpi.percent else 1.0), min(kpi.digits, 2)


def _ci(node: Any, scale: float, digits: int) -> tuple[str, str]:
    mean = node.get("mean") if node else None
    lo, hi = (node.get("ci95") or [None, None])[:2] if node else (None, None)
    value = _num(None if mean is None else mean * scale, digits)
    if lo is None or hi is None:
        return value, "one replication: no CI"
    return value, f"{_num(lo * scale, digits)} – {_num(hi * scale, digits)}"


def kpi_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(label, mean, 95% CI, unit) of every line KPI the run has."""
    rows = []
    for kpi in LINE_KPIS:
        if not kpi.row or not shown(kpi, [summary]):
            continue
        unit, scale, digits = _kpi_scale(kpi, summary)
        value, ci = _ci(stat(summary, kpi), scale, digits)
        if kpi.column == "oee" and constraint_text(summary):
            unit = f"%, {constraint_text(summary)}"
        rows.append((kpi.label, value, ci, unit))
    return rows


def _table(head: list[str], rows: list[list[Any]], cls: str = "", raw: bool = False) -> str:
    cell = (lambda v: str(v)) if raw else _e
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return (
        f'<table class="{cls}"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{body}</tbody></table>"
    )


def waterfall_chart(fall: Waterfall) -> str:
    """The waterfall as an SVG: totals as full bars, losses as floating bars from the running total."""
    width, row, left = 640, 20, 230
    scale = (width - left - 70) / max(fall.steps[0].hours, 1e-9)
    parts, level, y = [], 0.0, 0
    for step in fall.steps:
        if step.kind == "total":
            x0, x1, level, color = 0.0, step.hours, step.hours, "#243040"
        else:
            x0, x1, level = level + step.hours, level, level + step.hours
            color = state_hex(step.state) if step.state else "#b3261e"
        if step.kind == "loss" and abs(step.hours) < 0.05:
            continue
        w = max((x1 - x0) * scale, 0.5)
        weight = "bold" if step.kind == "total" else "normal"
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-weight="{weight}">{_e(step.name)}</text>'
            f'<rect x="{left + x0 * scale:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>'
            f'<text x="{left + x1 * scale + 4:.1f}" y="{y + 14}">{span_text(abs(step.hours))}</text>'
        )
        y += row
    return (
        f'<svg class="chart" width="{width}" height="{y + 4}" viewBox="0 0 {width} {y + 4}" font-size="11" '
        f'font-family="sans-serif">{"".join(parts)}</svg>'
    )


def gantt_chart(run: ReportRun, replication: int, t0: float, t1: float) -> str:
    """An SVG Gantt of every unit's states over ``[t0, t1]`` of one replication, with day ticks."""
    log = run.result.log
    table = log.table[log.table["replication"] == replication]
    iv = state_intervals(table, log.end_times())
    iv = iv[(iv["end"] > t0) & (iv["start"] < t1)]
    stations, units = list(log.meta.stations), list(log.meta.units)
    labels = [f"{s} #{u + 1}" if n > 1 else s for s, n in zip(stations, units, strict=True) for u in range(n)]
    first = dict(zip(stations, np.concatenate([[0], np.cumsum(units)[:-1]]), strict=True))
    width, left, row = 680, 120, 14  # the last day's label needs room on the right: see ``scale``
    scale = (width - left - 30) / (t1 - t0)
    height = row * len(labels) + 34
    parts = [
        f'<text x="{left - 6}" y="{i * row + 11}" text-anchor="end">{_e(label)}</text>'
        for i, label in enumerate(labels)
    ]
    for station, unit, state, lo, hi in zip(
        iv["station"].astype(str), iv["unit"], iv["state"].astype(str), iv["start"], iv["end"], strict=True
    ):
        r = int(first[station]) + int(unit)
        a, b = max(lo, t0), min(hi, t1)
        parts.append(
            f'<rect x="{left + (a - t0) * scale:.1f}" y="{r * row + 2}" width="{max((b - a) * scale, 0.3):.1f}" '
            f'height="{row - 3}" fill="{state_hex(state)}"/>'
        )
    clock = run.clock
    day = 24.0
    tick = np.ceil(t0 / day) * day
    while tick <= t1 + 1e-9:
        x = left + (tick - t0) * scale
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{row * len(labels)}" stroke="#ffffff" stroke-width="0.6"/>'
            f'<text x="{x:.1f}" y="{row * len(labels) + 12}" text-anchor="middle">'
            f"{_e(clock.at(tick).strftime('%a %d %b'))}</text>"
        )
        tick += day
    legend = "".join(
        f'<span class="key"><i style="background:{state_hex(s)}"></i>{_e(s.replace("_", " "))}</span>' for s in STATES
    )
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-size="9" '
        f'font-family="sans-serif">{"".join(parts)}</svg><div class="legend">{legend}</div>'
    )


def releases(run: ReportRun, replication: int = 0) -> pd.DataFrame:
    """Batches through QC in one replication: product, quarantine, QC tests, decision and its date."""
    t = run.result.log.table
    t = t[(t["replication"] == replication) & t["station"].isna()]
    qc = t[t["event"].isin(["quarantine", "qc_start", "qc_end", "approve", "reject"])]
    if qc.empty:
        return pd.DataFrame()
    wide = qc.pivot_table(index="batch", columns=qc["event"].astype(str), values="time", aggfunc="first")
    for col in ("quarantine", "qc_start", "qc_end", "approve", "reject"):
        if col not in wide:
            wide[col] = np.nan
    products = qc.drop_duplicates("batch").set_index("batch")["product"].astype(str)
    wide["product"] = products.reindex(wide.index).to_numpy()
    return wide.sort_values("quarantine").reset_index()


def what_if_rows(run: ReportRun, fall: Waterfall, run_what_ifs: bool) -> list[list[str]]:
    """The bottleneck's top three causes; with ``run_what_ifs``, the paired what-if that removes each."""
    from twin.stats import paired_difference

    spec, settings = run.result.spec, run.result.settings
    rows = []
    unit, scale = rate_unit(stat(run.summary, LINE_KPIS[0]).get("mean"))
    for cause in top_causes(fall, 3):
        overrides = removal_overrides(spec, fall.station, cause.state) if cause.state else None
        remedy = REMEDIES.get(cause.state or "", "")
        if overrides is None:
            rows.append([cause.name, span_text(-cause.hours), "no what-if removes it", "–"])
            continue
        if not run_what_ifs:
            rows.append(
                [cause.name, span_text(-cause.hours), f"{remedy}: {', '.join(overrides)}", "run with --what-ifs"]
            )
            continue
        import warnings  # a what-if that replaces a group of fields says so; the report names the override itself

        from twin.experiment import run as simulate
        from twin.experiment import with_overrides

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = with_overrides(spec, overrides, source="report what-if")
        reps = int(settings.get("replications") or run.summary.get("replications") or 1)
        result = simulate(other, replications=reps, seed=int(settings.get("seed") or run.summary.get("seed") or 1),
                          horizon=settings.get("horizon"), warmup=settings.get("warmup"))  # fmt: skip
        a = run.result.kpis.per_replication["throughput_per_hour"].sort_index().to_numpy(float)
        b = result.kpis.per_replication["throughput_per_hour"].sort_index().to_numpy(float)
        delta = paired_difference(a, b)
        ci = f" ({_num(delta.low * scale, 2)} – {_num(delta.high * scale, 2)})" if delta.n > 1 else ""
        rows.append([cause.name, span_text(-cause.hours), f"{remedy}: {', '.join(overrides)}",
                     f"{delta.mean * scale:+,.2f} {unit}{ci}, paired"])  # fmt: skip
    return rows


def report_html(run: ReportRun, compare: Sequence[ReportRun] = (), what_ifs: bool = False) -> str:
    """The whole report as one HTML page (inline CSS and SVG, no scripts: it prints as it shows)."""
    from twin import __version__

    s, spec, clock, info = run.summary, run.result.spec, run.clock, run.info
    settings = run.result.settings
    lo, hi = s["window_hours"]
    overrides = list(info.get("overrides") or run.result.overrides or [])
    horizon = settings.get("horizon", spec.horizon_hours)
    warmup = settings.get("warmup", spec.warmup_hours)
    reproduce = (
        f"twin run spec.yaml --seed {s.get('seed')} -r {s.get('replications')} --horizon '{horizon} h' "
        f"--warmup '{warmup} h'"
    )
    facts = [
        ["Line", spec.name],
        ["Scenario", info.get("scenario") or run.result.scenario],
        ["Source", run.source],
        ["Spec hash", s.get("spec_hash") or spec.spec_hash],
        ["Seed", s.get("seed")],
        ["Replications", s.get("replications")],
        ["Horizon", f"{span_text(float(horizon))} ({float(horizon):g} h)"],
        ["Warm-up", f"{span_text(float(warmup))} ({float(warmup):g} h)"],
        ["KPI window", f"{clock.text(lo, long=True)} – {clock.text(hi, long=True)}"],
        ["Clock", clock.describe()],
        ["Overrides", ", ".join(overrides) or "none"],
        ["twin version", __version__],
        ["Run made", info.get("created") or "–"],
        ["Reproduce", reproduce + "".join(f" --set '{o}'" for o in overrides)],
    ]
    line_fall = waterfall(s)
    bottleneck = (s.get("bottleneck") or {}).get("station") or line_fall.station
    b_fall = waterfall(s, bottleneck)
    b_counts = (s.get("bottleneck") or {}).get("replications") or {}
    b_share = ((s.get("bottleneck") or {}).get("share") or {}).get(bottleneck)
    station_rows = []
    for name in s["stations"]:
        f = waterfall(s, name)
        oee = s["stations"][name]["oee"]["mean"]
        totals = ("calendar time", "planned busy time", "run time", "net run time", "fully productive time")
        station_rows.append([name, f.units, *(span_text(f.total(n)) for n in totals), _num((oee or 0) * 100, 1) + "%"])
    start_gantt = float(lo)
    gantt = gantt_chart(
        run, int(run.result.log.table["replication"].min()), start_gantt, min(start_gantt + GANTT_HOURS, hi)
    )
    rel = releases(run)
    release = s.get("release") or {}
    quality = s.get("quality") or {}
    qc_facts = [
        ["Release lead time (quarantine to approval)", _ci(release.get("lead_time_hours"), 1 / 24, 1)[0] + " d"],
        ["QC time", _ci(release.get("qc_time_hours"), 1 / 24, 1)[0] + " d"],
        ["Rejected batches per replication", _ci(quality.get("rejected_batches"), 1, 1)[0]],
        ["Hold-time violations per replication", _ci(quality.get("hold_violations"), 1, 1)[0]],
    ]
    if rel.empty:
        release_table = "<p>This line has no QC release.</p>"
    else:
        rows = [
            [int(r.batch), r.product, clock.text(r.quarantine), clock.text(r.qc_end),
             "approved " + clock.text(r.approve, long=True) if np.isfinite(r.approve)
             else ("rejected " + clock.text(r.reject, long=True) if np.isfinite(r.reject) else "in QC at the end")]
            for r in rel.head(RELEASES_SHOWN).itertuples()
        ]  # fmt: skip
        release_table = (
            f"<p>First {min(len(rel), RELEASES_SHOWN)} of {len(rel)} batches into quarantine (replication 0).</p>"
            + _table(["batch", "product", "quarantine", "QC tests done", "decision"], rows)
        )
    sections = [
        f"<h1>{_e(spec.name)} · {_e(info.get('scenario') or run.result.scenario)}</h1>",
        f'<p class="sub">Run report · {_e(run.source)} · KPI window {_e(clock.text(lo, long=True))} – '
        f"{_e(clock.text(hi, long=True))}</p>",
        "<h2>What was run</h2>",
        _table(["", ""], facts, "facts"),
        "<h2>Key figures</h2>",
        "<p>Means over replications with 95% confidence intervals (Student t).</p>",
        _table(["KPI", "mean", "95% CI", "unit"], [list(r) for r in kpi_rows(s)], "kpis"),
        f"<h2>Loss waterfall of the line ({_e(line_fall.station)})</h2>",
        "<p>ISO 22400-2: calendar time less planned downtime is planned busy time; less availability losses, run "
        "time; less speed losses, net run time; less quality losses, fully productive time. Hours per replication "
        f"over the KPI window, at the station the line's OEE is valued at ({_e(line_fall.station)}).</p>",
        waterfall_chart(line_fall),
        "<h3>Every station</h3>",
        _table(
            ["station", "units", "calendar", "planned busy", "run", "net run", "fully productive", "OEE"],
            station_rows,
            "num",
        ),
        f"<h2>Bottleneck: {_e(bottleneck)}</h2>",
        f"<p>Active-period method: {_e(bottleneck)} was the bottleneck {_num((b_share or 0) * 100, 0)}% of the time "
        f"and the main one in {b_counts.get(bottleneck, 0)} of {s.get('replications')} replications.</p>",
        "<h3>Its top three causes of lost time</h3>",
        _table(
            ["cause", "hours lost per replication", "what-if that removes it", "throughput gained"],
            what_if_rows(run, b_fall, what_ifs),
        ),
        f'<h2 class="break">Gantt excerpt: the first {span_text(min(GANTT_HOURS, hi - lo))} of the KPI window</h2>',
        gantt,
        "<h2>QC and release</h2>",
        _table(["", ""], qc_facts, "facts"),
        release_table,
    ]
    for other in compare:
        sections += compare_section(run, other)
    spec_yaml = yaml.safe_dump(spec.to_data(), sort_keys=False, allow_unicode=True)
    sections += [
        '<h2 class="break">Appendix: the spec</h2>',
        f"<p>spec_hash {_e(spec.spec_hash)}</p>",
        f"<pre>{_e(spec_yaml)}</pre>",
    ]
    return PAGE.format(title=_e(f"{spec.name} · run report"), body="\n".join(sections))


def compare_section(run: ReportRun, other: ReportRun) -> list[str]:
    """A compared run: its KPIs beside the report's run, with paired (same seed) or Welch differences."""
    from twin.store.diff import kpi_deltas

    a, b = run.result.kpis.per_replication, other.result.kpis.per_replication
    paired = run.summary.get("seed") == other.summary.get("seed")
    deltas = kpi_deltas(a, b, paired)
    rows = []
    for kpi in LINE_KPIS:
        if not kpi.row or not shown(kpi, [run.summary, other.summary]):
            continue
        unit, scale, digits = _kpi_scale(kpi, run.summary)
        delta = deltas.get(kpi.column)
        diff = "–"
        if delta is not None and np.isfinite(delta.mean):
            ci = f" ({_num(delta.low * scale, digits)} – {_num(delta.high * scale, digits)})" if delta.n > 1 else ""
            diff = f"{delta.mean * scale:+,.{digits}f}{ci}"
        rows.append([f"{kpi.label} ({unit})", _ci(stat(run.summary, kpi), scale, digits)[0],
                     _ci(stat(other.summary, kpi), scale, digits)[0], diff])  # fmt: skip
    changes = ", ".join(other.info.get("overrides") or []) or "none"
    how = "paired over common replications (same seed)" if paired else "Welch intervals (different seeds)"
    return [
        f"<h2>Compared with {_e(other.name)}</h2>",
        f"<p>Overrides of the compared run: {_e(changes)}. Differences are {_e(how)}, 95%.</p>",
        _table(["KPI", run.name, other.name, "difference"], rows),
    ]


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
@page {{ size: A4; margin: 16mm 14mm; }}
body {{ font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10.5pt; color: #243040; }}
h1 {{ font-size: 18pt; margin: 0 0 2pt; }}
h2 {{ font-size: 13pt; margin: 16pt 0 4pt; border-bottom: 1px solid #c8d0d8; padding-bottom: 2pt; }}
h3 {{ font-size: 11pt; margin: 10pt 0 3pt; }}
.sub {{ color: #5b6b7b; margin-top: 0; }}
table {{ border-collapse: collapse; margin: 4pt 0; width: 100%; }}
td {{ font-variant-numeric: tabular-nums; }}
table.kpis td, table.num td {{ white-space: nowrap; }}
th, td {{ text-align: left; padding: 2pt 6pt; border-bottom: 1px solid #e3e8ee; vertical-align: top; }}
th {{ background: #f3f5f8; }}
table.facts td:first-child {{ width: 30%; font-weight: 600; }}
pre {{ font-size: 8pt; white-space: pre-wrap; background: #f7f9fb; padding: 6pt; }}
.break {{ break-before: page; }}
.legend {{ font-size: 8pt; }} .key {{ margin-right: 8pt; }}
.key i {{ display: inline-block; width: 9pt; height: 9pt; margin-right: 3pt; vertical-align: middle; }}
svg.chart {{ display: block; margin: 4pt 0; }}
</style></head>
<body>
{body}
</body></html>
"""
