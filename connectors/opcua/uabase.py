"""What the twin's OPC-UA servers and clients share: endpoints, secured servers, namespaces, values.

>>> server = await make_server(ServerOptions(endpoint="opc.tcp://127.0.0.1:4840", pki=..., users=...), "twin serve")
>>> ns = await namespace_index(client, "urn:twin:osd-tablet")     # by URI, never by number
>>> await server.write_attribute_value(node_id, value(3, ua.VariantType.Int16, when))
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from asyncua import Client, Server, ua

from connectors.opcua.limits import HANDSHAKE_TIMEOUT_S, MAX_SESSIONS
from connectors.opcua.security import Pki, Users, secure_client, secure_server
from twin.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840"
WATCHDOG_S = 10.0  # asyncua's client watchdog; its 1 s default drops connections on a busy machine


@dataclass(frozen=True)
class ServerOptions:
    """How a twin server listens and whom it lets in."""

    endpoint: str = DEFAULT_ENDPOINT
    pki: Path = Path("pki/server")
    users: Path | None = None
    security: tuple[str, ...] = ("sign", "sign-encrypt")
    allow_anonymous: bool = False
    handshake_timeout: float = HANDSHAKE_TIMEOUT_S  # seconds to send a Hello and activate a session
    max_sessions: int = MAX_SESSIONS  # sessions open at once


@dataclass(frozen=True)
class ClientOptions:
    """How a twin client connects: security mode, its own PKI, user and password."""

    endpoint: str
    pki: Path = Path("pki/client")
    security: str = "sign-encrypt"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0


def check_endpoint(endpoint: str) -> tuple[str, int]:
    """Host and port of an ``opc.tcp://host:port`` endpoint (``InputError`` otherwise)."""
    url = urlparse(endpoint)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "opc.tcp" or not url.hostname or port is None:
        raise InputError(f"endpoint {endpoint!r}: expected opc.tcp://HOST:PORT")
    return url.hostname, port


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_limits(options: ServerOptions) -> None:
    """``InputError`` for a bad endpoint, handshake timeout or session limit."""
    check_endpoint(options.endpoint)
    if not 0 < options.handshake_timeout <= 3600:
        raise InputError(f"--handshake-timeout {options.handshake_timeout:g}: choose from 0 to 3600 seconds (not 0)")
    if not 1 <= options.max_sessions <= 1000:  # asyncua refuses more than 1000 activated sessions per process
        raise InputError(f"--max-sessions {options.max_sessions}: choose from 1 to 1000")


async def make_server(options: ServerOptions, name: str, uri_role: str) -> Server:
    """An asyncua server with the twin's security settings and limits (``guard``), not started yet."""
    from connectors.opcua.guard import GuardedServer

    check_limits(options)
    server = GuardedServer(options.handshake_timeout, options.max_sessions)
    await server.init()
    server.set_endpoint(options.endpoint)
    server.set_server_name(name)
    pki = Pki(options.pki).ensure(f"urn:twin:{uri_role}:{socket.gethostname()}", name, server=True)
    await secure_server(server, pki, Users.load(options.users), options.security, options.allow_anonymous)
    return server


async def start_server(server: Server, endpoint: str) -> None:
    """Start listening; a port in use or an address that cannot be bound is an ``InputError``."""
    try:
        await server.start()
    except OSError as err:
        raise InputError(f"cannot listen on {endpoint}: {err.strerror or err}") from None


async def connect(options: ClientOptions, role: str = "client") -> Client:
    """A connected, secured asyncua client (``InputError`` with the reason when it cannot connect)."""
    check_endpoint(options.endpoint)
    client = Client(options.endpoint, timeout=options.timeout, watchdog_intervall=WATCHDOG_S)
    client.name = f"twin {role}"
    pki = Pki(options.pki).ensure(f"urn:twin:{role}:{socket.gethostname()}", f"twin {role}", server=False)
    refusals: list[ua.UaStatusCodeError] = []
    try:
        with _channel_refusals() as refusals:
            await secure_client(client, pki, options.security, options.user, options.password)
            await client.connect()
    except AssertionError:  # asyncua's answer to an OpenSecureChannel the server refused (the status is logged)
        status = _status_text(refusals[-1]) if refusals else "no reason given"
        hint = "" if options.security == "none" else f"; if it does not trust this program, give it {pki.cert_path}"
        raise InputError(f"{options.endpoint} refused the secure channel ({status}){hint}") from None
    except (OSError, TimeoutError) as err:
        raise InputError(
            f"cannot reach {options.endpoint}: {getattr(err, 'strerror', None) or err or 'timed out'}"
        ) from None
    except ua.UaStatusCodeError as err:
        hint = ""
        if "Certificate" in ua.StatusCode(getattr(err, "code", 0) or 0).name:
            hint = f"; the server does not accept this program's certificate: give it {pki.cert_path} to trust"
        raise InputError(f"{options.endpoint} refused the connection: {_status_text(err)}{hint}") from None
    except ua.UaError as err:
        raise InputError(f"{options.endpoint}: {err}") from None
    return client


_CLIENT_PROTOCOL_LOG = "asyncua.client.ua_client.UASocketProtocol"


@contextlib.contextmanager
def _channel_refusals() -> Iterator[list[ua.UaStatusCodeError]]:
    """The error statuses asyncua's client protocol logs while the block runs.

    A server that answers OpenSecureChannel with a bad status (a certificate it does not trust, say)
    makes asyncua log the status and then fail an ``assert``; this keeps the status for the message.
    The records are kept from the twin's log handlers unless asyncua logs at ERROR already (``-v``).
    """
    seen: list[ua.UaStatusCodeError] = []
    logger = logging.getLogger(_CLIENT_PROTOCOL_LOG)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            args = record.args if isinstance(record.args, tuple) else ()
            seen.extend(a for a in args if isinstance(a, ua.UaStatusCodeError))

    handler = Keep(logging.ERROR)
    level, propagate = logger.level, logger.propagate
    if not logger.isEnabledFor(logging.ERROR):
        logger.setLevel(logging.ERROR)
        logger.propagate = False
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _status_text(err: ua.UaStatusCodeError) -> str:
    code = getattr(err, "code", None)
    name = ua.StatusCode(code).name if isinstance(code, int) else ""
    return f"{name}: {err}" if name and name not in str(err) else str(err)


async def namespace_index(client: Client, uri: str) -> int:
    """The index of namespace ``uri`` on the server (``InputError`` when it has none)."""
    array = await client.get_namespace_array()
    if uri not in array:
        raise InputError(f"the server has no namespace {uri!r} (it has: {', '.join(array[1:]) or 'none'})")
    return array.index(uri)


def utcnow() -> datetime:
    return datetime.now(UTC)


class SharedValue(ua.DataValue):
    """A DataValue that asyncua's server may share between subscriptions instead of deep-copying it.

    asyncua deep-copies every written value for every monitored item (about 0.2 ms a write), in case
    the writer changes it later; the twin never changes a value once written, so the copy is the
    value itself. This makes a server write about three times cheaper.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedValue:
        return self


def value(v: Any, vtype: ua.VariantType, source: datetime, status: ua.StatusCode | None = None) -> ua.DataValue:
    """A DataValue with its source timestamp (and the server's, now)."""
    return SharedValue(
        Value=ua.Variant(v, vtype),
        StatusCode=status or ua.StatusCode(),
        SourceTimestamp=source,
        ServerTimestamp=utcnow(),
    )
