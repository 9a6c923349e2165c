"""Thin synchronous wrappers for scripts, notebooks and tests: a server in a background thread, one-shot calls.

>>> with BackgroundServer(lambda: TwinServer(spec, options)) as served:   # serves until the block ends
...     read_values(ClientOptions(endpoint), "urn:twin:mini", ["mini.SimTime"])
...     call_method(ClientOptions(endpoint, user="op", password="pw"), "urn:twin:mini", "mini", "Pause")
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from asyncua import ua

from connectors.opcua.uabase import ClientOptions, connect, namespace_index


class Serving(Protocol):
    async def start(self) -> None: ...
    async def run(self, stop: asyncio.Event) -> None: ...
    async def stop(self) -> None: ...


class BackgroundServer:
    """Run a server (``TwinServer``, ``PlantEmulator``) in its own thread and event loop."""

    def __init__(self, make: Callable[[], Serving]):
        self.make = make
        self.server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="opcua-server", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.server = self.make()
                await self.server.start()
            except BaseException as err:
                self._error = err
                self._ready.set()
                return
            self._ready.set()
            try:
                await self.server.run(self._stop)
            finally:
                await self.server.stop()

        asyncio.run(serve())

    def __enter__(self) -> Any:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` in the server's thread (to look at its state safely)."""
        done = threading.Event()
        box: list[Any] = []
        self._loop.call_soon_threadsafe(lambda: (box.append(fn()), done.set()))
        done.wait(10)
        return box[0]


def read_values(options: ClientOptions, namespace: str, node_ids: Sequence[str]) -> list[ua.DataValue]:
    """Read string node ids of a namespace once (whatever their status)."""

    async def go() -> list[ua.DataValue]:
        client = await connect(options, "script")
        try:
            ns = await namespace_index(client, namespace)
            nodes = [client.get_node(ua.NodeId(n, ns)) for n in node_ids]
            return await client.read_attributes(nodes, ua.AttributeIds.Value)
        finally:
            await client.disconnect()

    return asyncio.run(go())


def call_method(options: ClientOptions, namespace: str, obj: str, method: str, *args: Any) -> Any:
    """Call ``obj.method(*args)``; an error status raises ``asyncua.ua.UaStatusCodeError``."""

    async def go() -> Any:
        client = await connect(options, "script")
        try:
            ns = await namespace_index(client, namespace)
            return await client.get_node(ua.NodeId(obj, ns)).call_method(f"{ns}:{method}", *args)
        finally:
            await client.disconnect()

    return asyncio.run(go())
