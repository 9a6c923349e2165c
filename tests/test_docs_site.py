"""The documentation site: it builds with ``mkdocs build --strict``, its reference pages cover the code, it cites nothing outside."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.spec.extensions import installed, model_of
from twin.spec.model import LineSpec

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"
HANG = 600  # seconds: only a hang reaches it

pytestmark = pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs is not installed (pip install -e '.[docs]')")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {"NO_MKDOCS_2_WARNING": "1", "PATH": f"{MKDOCS.parent}:/usr/bin:/bin",
           "PYTHONPATH": str(ROOT), "HOME": str(site.parent)}  # fmt: skip
    return subprocess.run([str(MKDOCS), "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=HANG, env=env)  # fmt: skip


def _text(html: Path) -> str:
    """The visible text of a built page (tags dropped, entities of the few characters that matter undone)."""
    text = re.sub(r"<[^>]+>", " ", html.read_text(encoding="utf-8"))
    return " ".join(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&quot;", '"').split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    done = _build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return out


def test_every_page_of_the_nav_is_built(site):
    nav = re.findall(r":\s+([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert len(nav) >= 20
    for page in nav:
        built = site / (page.removesuffix(".md") + "/index.html" if page != "index.md" else "index.html")
        assert built.exists(), page


def test_the_spec_reference_lists_every_field_and_every_plugin_block(site):
    text = _text(site / "reference/spec/index.html")
    for name in LineSpec.model_fields:
        assert f"{name}" in text, name
    for block in installed():
        assert f"extensions.{block} ({model_of(block).__name__})" in text, block
        for field in model_of(block).model_fields:
            assert field in text, (block, field)
    assert "Metres between zones (buffer, equipment) in the automatic layout." in text  # a plug-in field's meaning


def test_the_cli_reference_lists_every_command_and_option(site):
    from twin.cli.app import build_app
    from twin.cli.lazy import lazy_group

    text = _text(site / "reference/cli/index.html")
    group = lazy_group(build_app())
    with group.context_class(group, info_name="twin") as ctx:
        names = group.list_commands(ctx)
        assert {"run", "sweep", "runs", "optimize", "export-usd", "sync", "dashboard"} <= set(names)
        for name in names:
            assert f"twin {name} [OPTIONS]" in text, name
            command = group.get_command(ctx, name)
            for param in command.params:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("--") and opt != "--help":
                        assert opt in text, (name, opt)


def test_the_event_log_and_kpi_references_come_from_their_modules(site):
    from twin import eventlog
    from twin.kpis.summary import field_rows

    events = _text(site / "reference/event-log/index.html")
    for word in (*eventlog.COLUMNS, *eventlog.EVENTS, *eventlog.STATES):
        assert word in events, word
    kpis = _text(site / "reference/kpis/index.html")
    for path, _, meaning in field_rows():
        assert path in kpis and meaning in kpis, path
    assert "planned busy time PBT" in kpis  # twin.kpis.states' own definition
    assert re.search(r'"throughput_per_hour"\s*:\s*\{\s*"mean"\s*:\s*0\.\d+', kpis)  # the example of a real run


def test_the_dashboard_page_lists_every_page_url(site):
    from dashboards.pages import load_pages

    text = _text(site / "dashboard/index.html")
    for page in load_pages():
        assert f"{page.path} {page.title}" in text, page.path


def _copy(tmp_path: Path) -> Path:
    """A copy of the site's sources (mkdocs.yml, docs/ without screenshots) to change and build."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    for page in (tmp_path / "docs").rglob("*.md"):  # the screenshots left behind are not what is tested
        page.write_text(re.sub(r"!\[[^]]*\]\(screenshots/[^)]+\)", "", page.read_text(encoding="utf-8")))
    return tmp_path / "mkdocs.yml"


def test_a_new_page_builds_before_the_nav_lists_it_and_a_broken_link_fails(tmp_path):
    config = _copy(tmp_path)
    (tmp_path / "docs/usd-live.md").write_text("# Live USD\n\nSee the [KPIs](kpis.md#summary-fields-are-typed).\n")
    broken = _build(config, tmp_path / "site-broken")
    assert broken.returncode != 0
    assert "does not contain an anchor '#summary-fields-are-typed'" in broken.stderr
    (tmp_path / "docs/usd-live.md").write_text("# Live USD\n\nSee the [KPIs](kpis.md).\n")
    done = _build(config, tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site/usd-live/index.html").exists()
    assert "Live USD" in _text(tmp_path / "site/index.html")  # in the nav, under "More"


def test_the_hook_puts_unlisted_pages_under_more(tmp_path):
    spec = importlib.util.spec_from_file_location("docs_hook", ROOT / "docs/hooks/reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    (tmp_path / "a.md").write_text("# A\n")
    (tmp_path / "new").mkdir()
    (tmp_path / "new/b.md").write_text("# B\n")
    config = {"nav": [{"Home": "a.md"}], "docs_dir": str(tmp_path)}
    assert hook.on_config(config)["nav"] == [{"Home": "a.md"}, {hook.MORE: ["new/b.md"]}]
    assert hook.on_config({"nav": [{"Home": "a.md"}, {"New": ["new/b.md"]}], "docs_dir": str(tmp_path)})["nav"] == [
        {"Home": "a.md"}, {"New": ["new/b.md"]}]  # fmt: skip


def test_the_docs_cite_no_file_outside_the_repository():
    spec = importlib.util.spec_from_file_location("docs_hook", ROOT / "docs/hooks/reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    generated = {(ROOT / "docs" / page).resolve() for page in hook.PAGES}  # on the site, not on disk
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "shared/reference" not in text, page
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"^[a-z]+:", target):
                continue  # a web address
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), (page, target)
            assert resolved.exists() or (page.name != "README.md" and resolved in generated), (page, target)
    sources = [p for d in ("twin", "connectors", "optimizers", "dashboards", "plant_models", "tests")
               for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".yaml") and p != Path(__file__)]  # fmt: skip
    assert not [p for p in sources if "shared/reference" in p.read_text(encoding="utf-8")]


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "(docs/index.md)" in readme and "(docs/getting-started.md)" in readme
