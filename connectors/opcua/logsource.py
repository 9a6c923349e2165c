"""A historian as an event-log source: the plant's event log, decoded from what the sync stored.

    >>> decoded = historian_decoded("plant.db")          # Decoded(log, bad_values, missed)
    >>> spec = historian_spec("plant.db")                # the line the sync followed
    twin calibrate osd-tablet --from plant.db            # through the ``twin.log_sources`` entry point
    twin snapshot plant.db                               # the plant's state where the historian ends

The sync keeps in the historian's metadata the spec of the line and the tag map it used, so that a
historian can be read alone, by any process, while the sync goes on writing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml

from connectors.opcua.historian import DEFAULT_KEEP_RAW_HOURS, Historian
from connectors.opcua.plantlog import Decoded
from connectors.opcua.tagmap import TagMap, parse_tag_map
from twin.errors import InputError
from twin.eventlog import EventLog
from twin.spec.loader import spec_from_data
from twin.spec.model import LineSpec

_SQLITE_HEADER = b"SQLite format 3\x00"


def is_historian(path: str | Path) -> bool:
    """True for a SQLite file with the historian's tables."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(16) != _SQLITE_HEADER:
                return False
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except (OSError, sqlite3.Error):
        return False
    return {"tags", "samples", "meta"} <= names


def _described(h: Historian) -> tuple[LineSpec, TagMap, dict]:
    meta = h.meta()
    if "spec" not in meta or "tag_map" not in meta or meta.get("origin_us") is None:
        raise InputError(
            f"{h.path}: the historian does not say which line it follows (written by an older `twin sync`)"
        )
    spec = spec_from_data(meta["spec"], f"{h.path} (meta.spec)")
    tags = parse_tag_map(yaml.safe_load(meta["tag_map"]), f"{h.path} (meta.tag_map)", spec)
    return spec, tags, meta


def historian_spec(path: str | Path) -> LineSpec:
    """The spec of the line the historian's sync followed."""
    h = Historian(path, readonly=True)
    try:
        return _described(h)[0]
    finally:
        h.close()


def historian_decoded(path: str | Path, end_us: int | None = None) -> Decoded:
    """The plant's event log from the historian's samples (up to ``end_us``, default where the feed is)."""
    h = Historian(path, readonly=True)
    try:
        spec, tags, meta = _described(h)
        stored = set(h.tags().query("samples > 0")["name"])
        needed = {unit.state: f"{s}[{u}].state" for s, u, unit in tags.units()}
        needed.update({unit.done.tag: f"{s}[{u}].done" for s, u, unit in tags.units()})
        missing = [f"{tag} ({role})" for tag, role in needed.items() if tag not in stored]
        if missing:
            raise InputError(
                f"{path}: no samples of the tag(s) {', '.join(missing[:5])}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + " that the event log needs"
            )
        end = int(meta.get("plant_us") or meta["origin_us"]) if end_us is None else end_us
        warmup = float(meta.get("warmup") or 0.0)
        from connectors.opcua.observer import decode_historian

        return decode_historian(h, spec, tags, int(meta["origin_us"]), end, warmup, {"historian": str(path)})
    finally:
        h.close()


def historian_log(source: str) -> EventLog | None:
    """The ``twin.log_sources`` plug-in: the plant's event log if ``source`` is a historian, else None."""
    if not is_historian(source):
        return None
    return historian_decoded(source).log


def compact_historian(path: str | Path, keep_raw_hours: float = DEFAULT_KEEP_RAW_HOURS) -> tuple[int, int, int]:
    """Checkpoint the plant's decoded state, then compact what is older than ``keep_raw_hours``
    (``Historian.compact``); returns (samples deleted, bytes before, bytes after). Safe while a sync writes."""
    from connectors.opcua.observer import Observer

    path = Path(path)
    if not is_historian(path):
        raise InputError(f"{path}: not a historian written by `twin sync`")
    h = Historian(path)
    try:
        spec, tags, meta = _described(h)
        observer = Observer(spec, tags, int(meta["origin_us"]), float(meta.get("warmup") or 0.0))
        observer.advance(h)
        h.save_checkpoint(observer.key, *observer.checkpoint())
        before = h.size_bytes()
        deleted = h.compact(keep_raw_hours)
        h.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted, before, h.size_bytes()
    finally:
        h.close()
