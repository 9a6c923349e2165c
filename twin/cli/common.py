"""Options and helpers shared by the CLI's commands (core and plug-ins): the one public module they import.

    from twin.cli.common import SpecArg, SetOpt, JsonOpt, SeedOpt, emit_json, progress_bar, spec_hours

``emit_json`` prints a command's ``--json`` object; ``spec_hours`` reads a run-length option in a
spec's time unit, ``optional_hours`` any other duration option; ``stderr`` and ``console`` print.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from twin.durations import to_hours
from twin.errors import InputError
from twin.spec.limits import DEFAULT_MAX_EVENTS, MAX_HOURS, MIN_HORIZON_HOURS

if TYPE_CHECKING:
    from rich.console import Console

    from twin.spec.model import LineSpec


SpecArg = Annotated[str, typer.Argument(help="A spec file (YAML) or the name of a built-in model (see `twin models`).")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field: dotted.path=value (stations by name). Repeatable.")
]
HorizonOpt = Annotated[str | None, typer.Option(help="Run length, e.g. '2000 h' or '12 w' (default: the spec's).")]
WarmupOpt = Annotated[str | None, typer.Option(help="Warm-up discarded before KPIs (default: the spec's).")]
ReplicationsOpt = Annotated[int, typer.Option("--replications", "-r", help="Independent replications.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of all random streams (same seed, same results).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write a run folder (spec, event log, KPIs) here.")]
MaxEventsOpt = Annotated[
    float | None,
    typer.Option(
        "--max-events",
        help=f"Work budget: refuse a run estimated past this many events (default {DEFAULT_MAX_EVENTS:.0e}).",
    ),
]

__all__ = [
    "HorizonOpt", "JsonOpt", "MaxEventsOpt", "OutOpt", "ReplicationsOpt", "SeedOpt", "SetOpt", "SpecArg", "WarmupOpt",
    "console", "emit_json", "hours_option", "max_events_option", "optional_hours", "progress_bar", "spec_hours",
    "stderr",
]  # fmt: skip


class _Stderr:
    """rich's Console on stderr, made on first use: rich loads only when something is printed there."""

    _console: Console | None = None

    def get(self) -> Console:
        """The Console itself."""
        if _Stderr._console is None:
            from rich.console import Console

            _Stderr._console = Console(stderr=True)
        return _Stderr._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def __enter__(self) -> Console:  # rich's Live (progress bars) enters its console
        return self.get().__enter__()

    def __exit__(self, *exc: object) -> None:
        self.get().__exit__(*exc)  # type: ignore[arg-type]


stderr: Console = _Stderr()  # type: ignore[assignment]


def console() -> Console:
    """Standard output: the terminal's width, or a wide page when written to a file or pipe."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=160)


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr (only when stderr is a terminal); yields ``update(fraction)``."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    err = stderr.get() if isinstance(stderr, _Stderr) else stderr  # the Console itself
    show = enabled and err.is_terminal
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not show,
    ) as bar:  # fmt: skip
        task = bar.add_task(label, total=1.0)
        yield lambda fraction: bar.update(task, completed=fraction)


def optional_hours(value: str | None, option: str, time_unit: str = "h", allow_zero: bool = False) -> float | None:
    """A duration option in hours (None when not given); ``InputError`` naming the option.

    Bare numbers are in ``time_unit``; the value must be positive (or >= 0 with ``allow_zero``) and
    at most ``MAX_HOURS``.
    """
    if value is None:
        return None
    try:
        hours = to_hours(value, time_unit)
    except ValueError as err:
        raise InputError(f"{option} {value!r}: {err}") from None
    if hours < 0 or (hours == 0 and not allow_zero):
        raise InputError(f"{option} {value!r}: must be {'>= 0' if allow_zero else 'positive'}")
    if hours > MAX_HOURS:
        raise InputError(f"{option} {value!r}: must be at most {MAX_HOURS:,.0f} h ({MAX_HOURS / 8766:.0f} years)")
    return hours


def hours_option(value: str, time_unit: str, option: str, allow_zero: bool = False) -> float:
    """A run-length option in hours: ``optional_hours``, and a non-zero one at least a second long."""
    hours = optional_hours(value, option, time_unit, allow_zero)
    assert hours is not None
    if not allow_zero and hours < MIN_HORIZON_HOURS:
        raise InputError(f"{option} {value!r}: must be at least {MIN_HORIZON_HOURS * 3600:g} s")
    return hours


def max_events_option(value: float | None) -> float:
    """The work budget of ``--max-events`` (the default when not given)."""
    if value is None:
        return DEFAULT_MAX_EVENTS
    if not value > 0 or value == float("inf"):
        raise InputError(f"--max-events {value!r}: must be a positive number")
    return value



def spec_hours(value: str | None, spec: LineSpec, option: str) -> float | None:
    """``--horizon`` (positive) or ``--warmup`` (>= 0) in hours, bare numbers in the spec's time unit."""
    return None if value is None else hours_option(value, spec.time_unit, option, allow_zero=option != "--horizon")


def emit_json(data: Any) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
