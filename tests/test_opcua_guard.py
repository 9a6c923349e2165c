"""The twin's OPC-UA servers against hostile connections: raw sockets and real asyncua clients on loopback.

Garbage gets an ERR message and a closed socket at once (the server's handshake timeout is long here, so
nothing else could have closed it); silent and half-finished connections are closed after the handshake
timeout; a session beyond the limit is refused with BadTooManySessions, after the server first makes room
by closing a session whose client has vanished. Socket timeouts are generous caps only a hang reaches.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest
import yaml
from asyncua import ua
from asyncua.ua.ua_binary import uatcp_to_binary
from opcua_helpers import LINE_YAML, endpoint, wait_until

from connectors.opcua.blocking import BackgroundServer, read_values
from connectors.opcua.server import TwinServer
from connectors.opcua.uabase import ClientOptions, ServerOptions, connect
from twin.errors import InputError
from twin.spec.loader import spec_from_data

NS = "urn:twin:mini"
CAP_S = 60.0  # only a hang reaches it


def _serve(root: Path, handshake_timeout: float, max_sessions: int = 50) -> tuple[BackgroundServer, ServerOptions]:
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    options = ServerOptions(
        endpoint=endpoint(),
        pki=root / "pki",
        security=("none",),
        allow_anonymous=True,
        handshake_timeout=handshake_timeout,
        max_sessions=max_sessions,
    )
    return BackgroundServer(lambda: TwinServer(spec, options, speed=3600.0)), options


def _address(ep: str) -> tuple[str, int]:
    host, port = ep.removeprefix("opc.tcp://").split(":")
    return host, int(port)


def _hello(ep: str) -> bytes:
    return uatcp_to_binary(ua.MessageType.Hello, ua.Hello(EndpointUrl=ep))


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    """One message from the server: (type, body); (b"", b"") when the server closed the connection."""
    head = b""
    while len(head) < 8:
        part = sock.recv(8 - len(head))
        if not part:
            return b"", b""
        head += part
    size = int.from_bytes(head[4:8], "little")
    body = b""
    while len(body) < size - 8:
        part = sock.recv(size - 8 - len(body))
        if not part:
            break
        body += part
    return head[:3], body


def _error_status(body: bytes) -> int:
    return int.from_bytes(body[:4], "little")


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory):
    """A server whose handshake timeout (10 min) cannot explain a closed connection within a test."""
    server, options = _serve(tmp_path_factory.mktemp("patient"), handshake_timeout=600.0)
    with server as served:
        yield options.endpoint, served


def test_garbage_gets_an_error_message_and_a_closed_connection_at_once(patient, tmp_path: Path):
    ep, _ = patient
    hello = _hello(ep)
    after_hello = {
        "a chunk of 10 MB": (b"MSGF\x00\x00\xa0\x00", ua.StatusCodes.BadTcpMessageTooLarge),
        "a second Hello": (hello, ua.StatusCodes.BadTcpMessageTypeInvalid),
        "an unknown type": (b"XYZF\x20\x00\x00\x00" + b"\x00" * 24, ua.StatusCodes.BadTcpMessageTypeInvalid),
        "1.1 MB of chunks before a session": (
            (b"MSGC" + (65535).to_bytes(4, "little") + b"\x00" * 65527) * 17,
            ua.StatusCodes.BadTcpMessageTooLarge,
        ),
    }
    cases = {
        "an HTTP request": (b"GET / HTTP/1.1\r\nHost: twin\r\n\r\n", ua.StatusCodes.BadTcpMessageTypeInvalid),
        "zeros": (b"\x00" * 64, ua.StatusCodes.BadTcpMessageTypeInvalid),
        "a Hello of 2 GB": (b"HELF\xff\xff\xff\x7f" + b"\x00" * 32, ua.StatusCodes.BadTcpMessageTooLarge),
        "a Hello of 16 bytes": (b"HELF\x10\x00\x00\x00" + b"\x00" * 8, ua.StatusCodes.BadTcpMessageTooLarge),
        **{f"{what} after the Hello": case for what, case in after_hello.items()},
    }
    for what, (payload, status) in cases.items():
        with socket.create_connection(_address(ep), timeout=CAP_S) as sock:
            if what.endswith("after the Hello"):
                sock.sendall(hello)
                assert _read_message(sock)[0] == b"ACK", what  # the Hello itself was fine
            sock.sendall(payload)
            kind, body = _read_message(sock)
            assert kind == b"ERR" and _error_status(body) == status, (what, kind, body[:80])
            assert _read_message(sock) == (b"", b""), what  # closed by the server, long before its timeout
    (state,) = read_values(ClientOptions(ep, pki=tmp_path / "c", security="none"), NS, ["mini.RunState"])
    assert state.Value.Value == "running"  # the server goes on serving real clients


def test_silent_and_stalled_connections_are_closed_after_the_handshake_timeout(tmp_path: Path):
    server, options = _serve(tmp_path, handshake_timeout=1.0)
    with server:
        ep = options.endpoint
        silent = socket.create_connection(_address(ep), timeout=CAP_S)
        half = socket.create_connection(_address(ep), timeout=CAP_S)
        half.sendall(_hello(ep)[:20])  # half a Hello, then nothing
        stalled = socket.create_connection(_address(ep), timeout=CAP_S)
        stalled.sendall(_hello(ep))  # a Hello, then no secure channel or session
        try:
            assert _read_message(silent) == (b"", b"")
            assert _read_message(half) == (b"", b"")
            assert _read_message(stalled)[0] == b"ACK"
            assert _read_message(stalled) == (b"", b"")
        finally:
            for sock in (silent, half, stalled):
                sock.close()


def test_sessions_beyond_the_limit_are_refused_after_vanished_clients_make_room(tmp_path: Path):
    server, options = _serve(tmp_path, handshake_timeout=600.0, max_sessions=2)
    client = ClientOptions(options.endpoint, pki=tmp_path / "c", security="none")

    async def scenario(iserver) -> None:
        a = await connect(client, "script")
        b = await connect(client, "script")
        with pytest.raises(InputError, match="BadTooManySessions"):
            await connect(client, "script")
        await b.disconnect()  # a closed session frees its place
        c = await connect(client, "script")
        sub = await a.create_subscription(500, None)  # a session with a subscription outlives its connection
        await sub.subscribe_data_change(a.get_node(ua.NodeId("mini.SimTime", 2)))
        a.uaclient.protocol.transport.abort()  # a vanishes without closing its session
        await asyncio.to_thread(
            wait_until, lambda: len(iserver.connections) == 1, CAP_S, 0.05, "the server sees a's connection go"
        )
        assert len(iserver.open_sessions()) == 2  # a's session is kept for its subscription ...
        d = await connect(client, "script")  # ... until a new client needs the place
        assert len(iserver.open_sessions()) == 2
        with pytest.raises(InputError, match="BadTooManySessions"):
            await connect(client, "script")  # c and d are live: nothing to close
        await c.disconnect()
        await d.disconnect()
        with contextlib.suppress(Exception):  # its connection is gone: stop its tasks
            await asyncio.wait_for(a.disconnect(), timeout=5)

    with server as served:
        assert served.ns == 2  # the node id above
        asyncio.run(scenario(served.server.iserver))


def test_bad_limits_exit_2_with_one_line(tmp_path: Path):
    from conftest import run_cli

    (tmp_path / "line.yaml").write_text(LINE_YAML)
    common = ["--pki", "pki", "--security", "none", "--allow-anonymous", "--endpoint", endpoint()]
    for command, args, message in (
        ("serve", ["--max-sessions", "0"], "--max-sessions 0: choose from 1 to 1000"),
        ("serve", ["--handshake-timeout", "nan"], "--handshake-timeout nan"),
        ("emulate", ["--max-sessions", "5000"], "--max-sessions 5000"),
        ("emulate", ["--handshake-timeout", "0"], "--handshake-timeout 0"),
    ):
        r = run_cli(command, "line.yaml", *common, *args, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (command, args, r.stderr)
