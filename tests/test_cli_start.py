"""The CLI starts quickly: the light commands import no heavy library, other commands load when called.

Import checks run the real ``twin`` console script in its own process and read its ``sys.modules`` at exit
(tests/start_helpers.py). Timings are in ``benchmarks/bench_cli.py``, not here.
"""

from __future__ import annotations

import json
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from start_helpers import imported_modules

from twin.cli.app import build_app
from twin.cli.lazy import CORE, ENTRY_POINT_GROUP, SHORT_HELP, Lazy, LazyGroup, lazy_group, registered

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"scipy", "pandas", "pyarrow", "jax", "dask", "distributed", "dash", "flask", "asyncua", "pxr", "duckdb"}
PLUGIN_PACKAGES = {"connectors", "optimizers", "dashboards"}

pytestmark = pytest.mark.fast


def pyproject_commands() -> dict[str, str]:
    """The ``twin.commands`` entry points that this checkout declares (the installed metadata may lag)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]


@pytest.mark.parametrize("args", [["validate", "osd-tablet"], ["version"], ["--help"], ["models"]])
def test_light_commands_import_no_heavy_library(args):
    modules, done = imported_modules(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(modules) > 50  # the import list was read
    tops = {m.split(".")[0] for m in modules}
    assert not tops & HEAVY, f"twin {' '.join(args)} imported {sorted(tops & HEAVY)}"
    assert not tops & PLUGIN_PACKAGES, f"twin {' '.join(args)} imported plug-ins {sorted(tops & PLUGIN_PACKAGES)}"
    assert not {m for m in modules if m.startswith("twin.") and m.split(".")[1] in {"engine", "store", "sweep"}}


def test_help_lists_every_command_with_its_line():
    modules, done = imported_modules("--help")
    assert done.returncode == 0, done.stderr[-2000:]
    listed = {line.split()[0]: line for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    core = {command.name for command in build_app().registered_commands}
    assert core | set(CORE) | set(pyproject_commands()) <= set(listed)
    for name in CORE:
        assert SHORT_HELP[name][:20] in listed[name]
    assert "twin.cli.store_commands" not in modules and "twin.cli.calibrate_commands" not in modules


def test_every_lazy_command_has_its_own_help_line():
    """``SHORT_HELP`` says what each command's own help says, and names only commands that exist."""
    group = lazy_group(build_app())
    declared = pyproject_commands()
    assert set(declared) <= set(SHORT_HELP), "a twin.commands entry point without a line in twin.cli.lazy.SHORT_HELP"
    assert set(SHORT_HELP) == set(CORE) | set(declared), "SHORT_HELP names a command that is neither core nor declared"
    for name, target in declared.items():  # each entry point registers the command it is named after
        module, _, attr = target.partition(":")
        assert name in registered(EntryPoint(name, target, ENTRY_POINT_GROUP).load()), (name, module, attr)
    for name, line in SHORT_HELP.items():
        command = group.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None, name
        assert command.get_short_help_str(1000) == line, name


def test_a_lazy_command_runs_and_imports_only_its_own_module():
    modules, done = imported_modules("runs", "list", "--store", str(ROOT / "no-such-store"), "--json")
    assert "twin.cli.store_commands" in modules
    # nor scipy (0.5 s): the store's tables need no statistics until a diff asks for intervals
    assert not {m.split(".")[0] for m in modules} & (PLUGIN_PACKAGES | {"jax", "asyncua", "dash", "pxr", "scipy"})
    modules, done = imported_modules("export-usd", "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage: twin export-usd" in done.stdout
    assert "connectors.usd.cli" in modules and "optimizers.cli" not in modules and "dashboards.cli" not in modules


def test_commands_that_print_intervals_do_not_import_scipy_stats(tmp_path):
    # a t quantile comes from scipy.special (twin.stats.t_quantile): scipy.stats would cost each command 0.5-1.3 s
    modules, done = imported_modules("run", "osd-tablet", "-r", "2", "--horizon", "3 w", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    low, high = json.loads(done.stdout)["wip"]["ci95"]
    assert low < high  # an interval was computed
    assert "scipy.special" in modules and not {m for m in modules if m.startswith("scipy.stats")}


def test_optimize_refuses_bad_options_before_it_imports_jax():
    # a bad --vary or --target is told in one line without paying JAX's import (about 1 s of CPU)
    for args in (["--vary", "stations.nope.buffer=0..2"], ["--vary", "stations.*.buffer=0..2", "--target", "oee>>1"]):
        modules, done = imported_modules("optimize", "osd-tablet", *args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "optimizers.problem" in modules and "jax" not in {m.split(".")[0] for m in modules}, args


def test_unknown_command_is_an_error_with_exit_2():
    _, done = imported_modules("no-such-command")
    assert done.returncode == 2 and "No such command" in done.stderr


def _extra_register(app) -> None:  # a third-party plug-in, unknown to SHORT_HELP
    @app.command("extra-thing")
    def extra_thing() -> None:
        """Do an extra thing."""


class _WithExtra(LazyGroup):
    _plugins = staticmethod(
        lambda: {"extra": Lazy("tests.test_cli_start:_extra_register", lambda: _extra_register)}
    )


def test_a_plugin_without_a_help_line_is_imported_to_learn_its_commands():
    app = build_app()
    app.info.cls = _WithExtra
    group = lazy_group(app)
    assert "extra-thing" in group.list_commands(None)  # type: ignore[arg-type]
    assert "extra" not in group.list_commands(None)  # type: ignore[arg-type]
    assert group.get_command(None, "extra-thing").get_short_help_str(100) == "Do an extra thing."  # type: ignore[arg-type,union-attr]
    assert group.get_command(None, "sweep").name == "sweep"  # type: ignore[arg-type,union-attr]
