"""`twin report`: the real CLI writes a PDF (Debian's headless chromium) and HTML; the PDF is read back with
pypdf (text, page count) and its pages rendered to images with pypdfium2."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import run_cli

from twin import __version__
from twin.clock import clock_for
from twin.experiment import run
from twin.kpis.line import LINE_KPI
from twin.models import load_spec
from twin.report.waterfall import top_causes, waterfall
from twin.runfolder import read_run
from twin.store import RunStore


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = RunStore(root / "store")
    ids = [store.save(run(load_spec("osd-tablet"), 2, 4, 4 * 168, 168))]
    coater = ("stations.coating.units=2",)
    ids.append(store.save(run(load_spec("osd-tablet", list(coater)), 2, 4, 4 * 168, 168, name="second coater",
                              overrides=coater)))  # fmt: skip
    folder = root / "folder"
    spec = root / "line.yaml"
    spec.write_text(
        "name: small\nhorizon: 200 h\nstart: 2027-03-03T06:00\nproducts: [{name: A, batch_size: 100}]\n"
        "stations: [{name: s1, process_time: 1 h}, {name: s2, process_time: {dist: exponential, mean: 50 min}}]\n",
        encoding="utf-8",
    )
    assert run_cli("run", str(spec), "-r", "1", "--warmup", "0", "--out", str(folder)).returncode == 0
    return {"root": root, "store": store.root, "ids": ids, "folder": folder}


def _pdf_text(path):
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_report_reads_back_reproducible_and_consistent(runs):
    base, other = runs["ids"]
    out = runs["root"] / "report.pdf"
    done = run_cli("report", base[:8], "--compare", other[:8], "--out", str(out), "--store", str(runs["store"]))
    assert done.returncode == 0, done.stderr
    assert out.is_file() and f"wrote {out}" in done.stdout
    pages, text = _pdf_text(out)
    assert pages >= 3
    flat = re.sub(r"\s+", " ", text)
    store = RunStore(runs["store"])
    result, info = store.get(base), store.info(base)
    summary = result.kpis.summary
    # reproducible: spec hash, seed, replications, version, the spec itself
    assert summary["spec_hash"] in re.sub(r"\s+", "", text)
    assert "Seed 4" in flat and "Replications 2" in flat and __version__ in flat
    assert "twin run spec.yaml --seed 4 -r 2" in flat and "Appendix: the spec" in flat
    # the KPIs with their CIs, as computed
    thr = summary["throughput_per_hour"]
    assert f"Throughput {thr['mean'] * 24:,.2f} {thr['ci95'][0] * 24:,.2f} – {thr['ci95'][1] * 24:,.2f} batches/day" in flat
    oee = summary["oee"]
    assert f"Line OEE {oee['mean'] * 100:,.1f}" in flat
    # the waterfall and the bottleneck's causes
    fall = waterfall(summary)
    assert f"Loss waterfall of the line ({fall.station})" in flat
    bottleneck = summary["bottleneck"]["station"]
    assert f"Bottleneck: {bottleneck}" in flat
    for cause in top_causes(waterfall(summary, bottleneck)):
        assert cause.name.split(" (")[0] in flat
    # calendar time from the run's clock; the compared run's paired difference
    clock = clock_for(result.spec, info["created"])
    assert clock.text(summary["window_hours"][0], long=True) in flat
    assert "Compared with second coater" in flat and "paired over common replications" in flat
    assert "Gantt excerpt" in flat and "QC and release" in flat


def test_pdf_pages_render_to_images(runs):
    import pypdfium2 as pdfium

    out = runs["root"] / "pages.pdf"
    assert run_cli("report", str(runs["folder"]), "--out", str(out)).returncode == 0
    pdf = pdfium.PdfDocument(str(out))
    assert len(pdf) >= 2
    for i in range(len(pdf)):
        page = pdf[i]
        width, height = page.get_size()
        assert abs(width - 595) < 3 and abs(height - 842) < 3  # A4 in points
        image = np.asarray(page.render(scale=0.5).to_pil().convert("L"), dtype=float)
        assert image.std() > 5, f"page {i + 1} is blank"  # something is drawn on every page
    _, text = _pdf_text(out)
    assert "t = 0 is Wed 2027-03-03 06:00 (the spec's start)" in re.sub(r"\s+", " ", text)


def test_html_report_has_the_same_figures(runs):
    out = runs["root"] / "report.html"
    assert run_cli("report", str(runs["folder"]), "--out", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    result = read_run(runs["folder"])
    assert result.spec.spec_hash in page and "<svg" in page and "<script" not in page
    mean = result.kpis.summary["lead_time_hours"]["mean"]
    assert f"{mean:,.{min(LINE_KPI['lead_time_hours'].digits, 2)}f}" in page
    assert "Wed 2027-03-03" in page


def test_what_ifs_run_paired_and_say_what_they_gained(runs):
    base = runs["ids"][0]
    out = runs["root"] / "whatif.html"
    done = run_cli("report", base[:8], "--what-ifs", "--out", str(out), "--store", str(runs["store"]))
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    gained = re.findall(r"([+-]\d+\.\d\d) batches/day[^<]*, paired", page)
    removable = re.findall(r"no what-if removes it", page)
    assert gained or len(removable) == 3  # each cause has a what-if that ran, or says none removes it
    assert "run with --what-ifs" not in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope-no-run", "--out", "{root}/x.pdf"], "nope-no-run"),
        (["{folder}", "--out", "{root}/x.docx"], "a report is .pdf or .html"),
        (["{folder}", "--out", "{root}/missing/x.pdf"], "no folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, args, message):
    args = [a.format(root=runs["root"], folder=runs["folder"]) for a in args]
    done = run_cli("report", *args, "--store", str(runs["store"]))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not list(runs["root"].glob("x.*")) and not list(runs["root"].glob(".x.*"))
