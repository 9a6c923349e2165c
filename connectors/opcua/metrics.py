"""The sync's own figures as Prometheus text, served on loopback: ``twin sync --metrics-port 9464``.

    >>> server = MetricsServer(9464, sync.metrics)     # sync.metrics() -> {"tick_s": 0.04, "lag_s": 1.0, ...}
    >>> await server.start(); ...; await server.stop()
    $ curl -s http://127.0.0.1:9464/metrics
    twin_sync_tick_seconds 0.04

A minimal HTTP/1.1 server on asyncio (GET /metrics, anything else 404); it binds 127.0.0.1 only.
``METRICS`` is the one list of what is served: each figure's key, metric name, type and help.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Any

from twin.errors import InputError

# key in the sync's figures -> (metric name, type, help)
METRICS: dict[str, tuple[str, str, str]] = {
    "tick_s": ("twin_sync_tick_seconds", "gauge", "Duration of the last KPI tick (decode, KPIs, shadow twin)."),
    "lag_s": ("twin_sync_lag_seconds", "gauge", "Plant seconds the decoded state trails the newest value received."),
    "queue": ("twin_sync_queue_depth", "gauge", "Values received and not yet committed to the historian."),
    "values_per_s": ("twin_sync_values_per_second", "gauge", "Values received per second since the last tick."),
    "historian_bytes": ("twin_sync_historian_bytes", "gauge", "Size of the historian on disk (with its WAL)."),
    "plant_hours": ("twin_sync_plant_hours", "gauge", "Plant hours since the feed's time 0."),
    "connected": ("twin_sync_connected", "gauge", "1 while connected to the plant's server."),
    "received": ("twin_sync_values_received_total", "counter", "Values received (repeats included)."),
    "acknowledged": ("twin_sync_values_stored_total", "counter", "Values committed to the historian."),
    "duplicates": ("twin_sync_duplicates_total", "counter", "Exact repeats dropped."),
    "lost": ("twin_sync_values_lost_total", "counter", "Values lost over gaps (the server keeps no history)."),
    "reconnects": ("twin_sync_reconnects_total", "counter", "Reconnections after a lost connection."),
    "rebuilds": ("twin_sync_rebuilds_total", "counter", "Late samples taken in by decoding again from a mark."),
}


def render(figures: dict[str, Any]) -> str:
    """Prometheus text exposition (version 0.0.4) of the figures that have a number."""
    lines = []
    for key, (name, kind, text) in METRICS.items():
        value = figures.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {float(value):.9g}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serve ``render(figures())`` at ``http://127.0.0.1:port/metrics``."""

    def __init__(self, port: int, figures: Callable[[], dict[str, Any]]):
        if not 0 <= port <= 65535:
            raise InputError(f"--metrics-port {port}: choose a port from 1 to 65535")
        self.port, self.figures = port, figures
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        except OSError as err:
            raise InputError(f"--metrics-port {self.port}: cannot listen on 127.0.0.1 ({err.strerror})") from None
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), timeout=2)
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            parts = request.split(b"\r\n", 1)[0].split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                status, body = "200 OK", render(self.figures()).encode()
                kind = "text/plain; version=0.0.4; charset=utf-8"
            else:
                status, body, kind = "404 Not Found", b"not found: GET /metrics\n", "text/plain; charset=utf-8"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def metrics_markdown() -> str:
    """The served metrics as a Markdown table (the docs' copy: ``python -m connectors.opcua.metrics``)."""
    lines = ["| metric | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {kind} | {text} |" for name, kind, text in METRICS.values()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(metrics_markdown(), end="")
