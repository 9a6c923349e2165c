"""The CLI's shared helpers live in one public module (twin.cli.common); no command module imports the app back."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from twin.cli.common import optional_hours, spec_hours
from twin.errors import InputError
from twin.spec.model import LineSpec

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("twin", "connectors", "optimizers", "dashboards")


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every absolute ``from module import name`` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 for alias in node.names]  # fmt: skip


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


def test_no_module_imports_a_private_name_from_another_package():
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for module, name in _imports(path):
                private = name.startswith("_") and not name.startswith("__")
                if private and module.rsplit(".", 1)[0] != _package_of(path):
                    found.append(f"{path.relative_to(ROOT)}: from {module} import {name}")
    assert found == []


def test_only_the_entry_point_imports_the_cli_app():
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if any(module == "twin.cli.app" for module, _ in _imports(path))
    )
    assert importers == ["twin/cli/entry.py"]


@pytest.mark.parametrize(
    "module", ["twin.cli.store_commands", "twin.cli.forecast_commands", "optimizers.cli", "connectors.usd.cli"]
)
def test_a_command_module_loads_without_the_app(module):
    code = f"import sys, {module}; print('twin.cli.app' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "False"


def test_duration_options_name_the_option_and_keep_the_spec_time_unit():
    spec = LineSpec.from_dict({"name": "m", "time_unit": "min", "horizon": 600, "stations": [{"name": "a", "process_time": 5}]})
    assert spec_hours("90", spec, "--horizon") == 1.5 and spec_hours(None, spec, "--warmup") is None
    assert spec_hours("0", spec, "--warmup") == 0.0
    with pytest.raises(InputError, match=r"^--horizon '0': must be positive$"):
        spec_hours("0", spec, "--horizon")
    assert optional_hours("30 min", "--step") == 0.5 and optional_hours(None, "--step") is None
    with pytest.raises(InputError, match=r"^--retention '-1 h': must be positive$"):
        optional_hours("-1 h", "--retention")
    with pytest.raises(InputError, match=r"^--from 'soon': "):
        optional_hours("soon", "--from", allow_zero=True)


def test_a_plugin_command_reports_a_bad_duration_in_one_line(tmp_path):
    done = run_cli("export-usd", "osd-tablet", "--out", str(tmp_path / "x.usda"), "--step", "-2 h")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: --step '-2 h': must be >= 0"
    assert not (tmp_path / "x.usda").exists()
