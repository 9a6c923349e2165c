"""Where an event log to calibrate from comes from: a run folder, an ``events.parquet``, or a plug-in.

    >>> log, label = read_source("runs/base")                 # a run folder
    >>> log, label = read_source("plant/events.parquet")      # an event log in Parquet
    >>> log, label = read_source("historian.db")              # offered to each registered log source

Plug-ins register a function ``(source: str) -> EventLog`` in the entry-point group
``twin.log_sources`` (the OPC-UA connector's historian, for one). A source that is neither a run
folder nor Parquet is offered to each in turn: one that does not recognize it returns None or
raises a ``TwinError`` (``InputError``) saying why; the first ``EventLog`` returned is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path

from twin.errors import InputError, TwinError
from twin.eventlog import EventLog
from twin.runfolder import EVENTS_FILE, read_log

LOG_SOURCES_GROUP = "twin.log_sources"
LogSource = Callable[[str], "EventLog | None"]


def log_sources() -> dict[str, LogSource]:
    """The installed log-source plug-ins by name (loaded on use)."""
    return {entry.name: _lazy(entry) for entry in entry_points(group=LOG_SOURCES_GROUP)}


def _lazy(entry: object) -> LogSource:
    def read(source: str) -> EventLog | None:
        return entry.load()(source)  # type: ignore[attr-defined,no-any-return]

    return read


def _is_parquet(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


def read_source(source: str, plugins: Mapping[str, LogSource] | None = None) -> tuple[EventLog, str]:
    """The event log at ``source`` and a label saying what it was; ``InputError`` if nothing reads it."""
    path = Path(source)
    if path.is_dir() and (path / EVENTS_FILE).is_file():
        return read_log(path), f"run folder {source}"
    if path.is_file() and (path.suffix == ".parquet" or _is_parquet(path)):
        return EventLog.from_parquet(path), f"event log {source}"
    plugins = log_sources() if plugins is None else plugins
    reasons = []
    for name, reader in plugins.items():
        try:
            log = reader(source)
        except (TwinError, ValueError, OSError) as err:
            reasons.append(f"{name}: {err}")
            continue
        if isinstance(log, EventLog):
            return log, f"{name} {source}"
        reasons.append(f"{name}: " + ("not a source it reads" if log is None else f"gave a {type(log).__name__}"))
    what = "a run folder (with events.parquet), an events.parquet file"
    if path.is_dir():
        what = f"a run folder (no {EVENTS_FILE} in it), an events.parquet file"
    elif not path.exists() and not plugins:
        raise InputError(f"{source}: no such file or folder")
    if not path.exists():
        raise InputError(f"{source}: no such file or folder")
    if not plugins:
        raise InputError(f"{source}: not {what}, and no log-source plug-in ({LOG_SOURCES_GROUP}) is installed")
    raise InputError(f"{source}: not {what} or a source a log-source plug-in reads ({'; '.join(reasons)})")
