"""Commands that load on use, so that ``twin --help``, ``version`` and ``validate`` start quickly.

A command group of the ``twin`` CLI is either *eager* (defined in ``twin.cli.app``, light to import) or
*lazy*: known by name and one line of help, its module imported only when the command is called (or its
own ``--help`` is asked for). Eager commands too are built into click commands (their parameters
checked by typer with pydantic) only when called: ``lazy_group``. Lazy commands come from two places:

- ``CORE``: the core's own heavier command modules (run store, sweeps, calibration, forecasts);
- the ``twin.commands`` entry points: one entry per command, named as the command, whose value is a
  ``register(app: typer.Typer) -> None`` function (one function may serve several entries).

``twin --help`` lists lazy commands with the line in ``SHORT_HELP`` (a test checks each line against
the command's own help, so the two cannot drift). An entry point without a line there (a third-party
plug-in) is imported to learn its commands, as is every plug-in when a name matches no entry (an
installation whose metadata still names plug-ins rather than commands).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo

#: Core command modules that load on use: command name -> "module:register".
CORE = {
    "snapshot": "twin.cli.forecast_commands:register",
    "forecast": "twin.cli.forecast_commands:register",
    "runs": "twin.cli.store_commands:register",
    "sweep": "twin.cli.store_commands:register",
    "calibrate": "twin.cli.calibrate_commands:register",
    "report": "twin.report.cli:register",
}

#: The first sentence of each lazy command's help, for ``twin --help`` (checked against the commands).
SHORT_HELP = {
    "snapshot": "Take a line's state (units, batches in process and their elapsed time, buffers, quarantine).",
    "forecast": "Predict batch completions, releases and KPIs from a snapshot, with prediction intervals.",
    "runs": "The run store: list, show, compare, export and remove stored runs.",
    "sweep": "Run many what-ifs of a line (a grid or a CSV of scenarios) in process or on Dask and store every point.",
    "calibrate": "Estimate processing, failure, repair, changeover, cleaning and QC times, yields and rejects "
    "from an event log.",
    "report": "Write a run's report: KPIs with CIs, loss waterfall, bottleneck, Gantt excerpt, QC, spec, hash "
    "and seed.",
    "dashboard": "Serve the process engineer's dashboard over a run store.",
    "dashboard-user": "Users of the dashboard (needed to serve it beyond this machine).",
    "serve": "Serve the twin over OPC-UA: the run paced to the wall clock, ISA-95 address space, PackML states.",
    "emulate": "Play a plant: an OPC-UA server with PLC-style tags driven by a SimPy run of SPEC.",
    "sync": "Subscribe to a plant's tags: historian, the plant's event log and KPIs, shadow twin and drift.",
    "history": "Query the historian by tag and time range; export CSV or Parquet; compact it.",
    "opcua": "OPC-UA users, certificates, the NodeSet2 export and tag maps from a browse.",
    "optimize": "Find the best design of a line: buffers, units, speeds or campaign order; confirmed by SimPy.",
    "export-usd": "Export a line's layout, or its runs animated, as a USD scene for Omniverse and USD viewers.",
}

ENTRY_POINT_GROUP = "twin.commands"

Register = Callable[[typer.Typer], None]


@dataclass(frozen=True)
class Lazy:
    """A command known by name until called: where its ``register`` function lives."""

    target: str  # "module:function"
    load: Callable[[], Register]


def _from_target(target: str) -> Lazy:
    module, _, attr = target.partition(":")
    return Lazy(target, lambda: getattr(import_module(module), attr))


def plugin_commands() -> dict[str, Lazy]:
    """The ``twin.commands`` entry points by name (reads package metadata, imports nothing)."""
    from importlib.metadata import entry_points

    return {e.name: Lazy(e.value, e.load) for e in entry_points(group=ENTRY_POINT_GROUP)}


def new_app(**kwargs: Any) -> typer.Typer:
    """A Typer app with the CLI's settings (plain help, no completion, no pretty tracebacks)."""
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None, **kwargs)


def registered(register: Register) -> dict[str, Any]:
    """The click commands that one ``register`` function adds, by name."""
    scratch = new_app()
    register(scratch)
    return dict(typer.main.get_group(scratch).commands)


def lazy_group(app: typer.Typer) -> LazyGroup:
    """``app`` (made with ``cls=LazyGroup``) as a click group that builds each command when it is used.

    Typer turns every parameter of every command into a click parameter up front; here only the called
    command's are, and ``--help`` lists the commands from their docstrings.
    """
    infos, app.registered_commands = app.registered_commands, []
    try:
        group = typer.main.get_group(app)
    finally:
        app.registered_commands = infos
    assert isinstance(group, LazyGroup), "the app needs cls=LazyGroup"
    group._pending = {_name(info): info for info in infos}
    group._settings = {"pretty_exceptions_short": app.pretty_exceptions_short, "rich_markup_mode": app.rich_markup_mode}
    return group


def _name(info: CommandInfo) -> str:
    return info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]


def _short_help(text: str, limit: int) -> str:
    return TyperCommand(name="", help=text).get_short_help_str(limit)


class LazyGroup(TyperGroup):
    """The top-level ``twin`` group: eager commands as usual, lazy ones imported when called."""

    _pending: dict[str, CommandInfo] = {}  # noqa: RUF012 (replaced per instance by lazy_group)
    _settings: dict[str, Any] = {}  # noqa: RUF012
    _lazy: dict[str, Lazy] | None = None
    _plugins: Callable[[], dict[str, Lazy]] = staticmethod(plugin_commands)

    def _known(self) -> list[str]:
        return [*self.commands, *(name for name in self._pending if name not in self.commands)]

    def lazy(self) -> dict[str, Lazy]:
        """Lazy commands not loaded yet, by name (reading the entry points on first use)."""
        if self._lazy is None:
            found = {name: _from_target(target) for name, target in CORE.items()}
            for name, entry in self._plugins().items():
                if name in self._known() or name in found:
                    continue  # a core command wins over a plug-in of the same name
                found[name] = entry
            self._lazy = {}
            for name, entry in found.items():
                if name in SHORT_HELP:
                    self._lazy[name] = entry
                else:
                    self._add(registered(entry.load()))  # unknown plug-in: import it to learn its commands
        return self._lazy

    def _add(self, commands: dict[str, Any]) -> None:
        for name, command in commands.items():
            self.commands.setdefault(name, command)
            if self._lazy is not None:
                self._lazy.pop(name, None)

    def _load(self, names: Iterable[str]) -> None:
        """Build pending core commands; import the ``register`` functions of lazy ones (each target once)."""
        targets: dict[str, Lazy] = {}
        for name in names:
            if name in self._pending:
                info = self._pending.pop(name)
                self.commands[name] = typer.main.get_command_from_info(info, **self._settings)
                continue
            entry = self.lazy().get(name)
            if entry is not None:
                targets.setdefault(entry.target, entry)
        for entry in targets.values():
            self._add(registered(entry.load()))

    def list_commands(self, ctx: typer.Context) -> list[str]:
        lazy = self.lazy()  # first: an unknown plug-in is imported here and adds its commands
        known = self._known()
        return [*known, *(name for name in lazy if name not in known)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            self._load([cmd_name])
        if cmd_name not in self.commands:  # perhaps a plug-in registered under another entry name
            self._load(list(self.lazy()))
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        """The command list of ``--help``, from docstrings and ``SHORT_HELP``: nothing built or imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                if not self.commands[name].hidden:
                    rows.append((name, self.commands[name].get_short_help_str(limit)))
            elif name in self._pending:
                info = self._pending[name]
                if not info.hidden:
                    text = info.short_help or info.help or inspect.getdoc(info.callback) or ""
                    rows.append((name, _short_help(text, limit)))
            else:
                rows.append((name, _short_help(SHORT_HELP[name], limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
