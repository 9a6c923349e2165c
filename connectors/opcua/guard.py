"""The twin's OPC-UA servers (``twin serve``, ``twin emulate``) against hostile or broken connections.

    >>> server = GuardedServer(handshake_timeout=10.0, max_sessions=50)   # an asyncua ``Server``
    >>> await server.init(); ...; await server.start()

asyncua's binary server buffers a message of any declared size before it looks at it, and answers
garbage with silence. Here every message header is checked as it arrives (OPC 10000-6, 7.1):

- the first message must be a Hello of at most ``HELLO_MAX`` bytes; anything else is answered with an
  ``ERR`` message (``BadTcpMessageTypeInvalid`` or ``BadTcpMessageTooLarge``) and the connection closed
  at once, before its body is read;
- later messages must be OpenSecureChannel, Message or CloseSecureChannel chunks no larger than the
  server's receive buffer; the same ``ERR`` and close otherwise;
- a connection that sends more than ``HANDSHAKE_MAX_BYTES`` before its session is activated is
  refused the same way (a handshake is a few KB; asyncua would buffer a 100 MB message);
- a connection that has not activated a session ``handshake_timeout`` seconds after it was opened is
  closed (a silent client, half a Hello, a stalled handshake);
- at most ``max_sessions`` sessions are open: a CreateSession beyond that first closes the oldest
  session whose connection is gone (asyncua keeps those for their subscriptions until they time
  out), else is answered ``BadTooManySessions``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies, uacrypto
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession, SessionState
from asyncua.ua.ua_binary import uatcp_to_binary

from connectors.opcua.limits import HANDSHAKE_TIMEOUT_S, MAX_SESSIONS
from connectors.opcua.security import UNSECURED_CHANNEL

log = logging.getLogger(__name__)

HEADER = 8  # message type (3 bytes), chunk type (1), message size (4, little-endian, header included)
HELLO_MIN = HEADER + 24  # six UInt32 fields and an empty endpoint URL
HELLO_MAX = HEADER + 24 + 4096  # the endpoint URL is at most 4096 bytes
HANDSHAKE_MAX_BYTES = 1024 * 1024  # received before a session is activated
CHUNK_TYPES = (b"F", b"C", b"A")
AFTER_HELLO = (b"OPN", b"MSG", b"CLO")


class GuardedProtocol(OPCUAProtocol):
    """asyncua's connection protocol with each message header checked before its body is buffered."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._head = b""  # the header of the next message, as far as it has arrived
        self._skip = 0  # bytes of the current message's body still to come
        self._messages = 0
        self._refused = False
        self._handshake_bytes = 0  # received while no session is activated

    async def _process_one_msg(self, header: Any, buf: Any) -> bool:
        """asyncua's handling of one message, knowing whether its channel has SecurityPolicy None."""
        connection = getattr(self.processor, "_connection", None)
        policy = getattr(connection, "security_policy", None)
        token = UNSECURED_CHANNEL.set(getattr(policy, "URI", None) == security_policies.SecurityPolicyNone.URI)
        try:
            return await super()._process_one_msg(header, buf)
        finally:
            UNSECURED_CHANNEL.reset(token)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport is None:
            return
        session = self.processor.session if self.processor is not None else None
        if session is None or not session.is_activated():
            self._handshake_bytes += len(data)
            if self._handshake_bytes > HANDSHAKE_MAX_BYTES:
                self._refuse(
                    ua.StatusCodes.BadTcpMessageTooLarge, f"more than {HANDSHAKE_MAX_BYTES} bytes before a session"
                )
                return
        i = 0
        while i < len(data):
            if self._skip:
                n = min(self._skip, len(data) - i)
                self._skip -= n
                i += n
                continue
            n = min(HEADER - len(self._head), len(data) - i)
            self._head += data[i : i + n]
            i += n
            if len(self._head) < HEADER:
                break
            problem = self._check(self._head)
            if problem is not None:
                self._refuse(*problem)
                return
            self._skip = int.from_bytes(self._head[4:8], "little") - HEADER
            self._head = b""
            self._messages += 1
        super().data_received(data)

    def _check(self, header: bytes) -> tuple[int, str] | None:
        kind, chunk, size = header[:3], header[3:4], int.from_bytes(header[4:8], "little")
        if self._messages == 0:
            if kind != b"HEL" or chunk != b"F":
                return ua.StatusCodes.BadTcpMessageTypeInvalid, "the first message must be a Hello"
            if not HELLO_MIN <= size <= HELLO_MAX:
                return ua.StatusCodes.BadTcpMessageTooLarge, f"a Hello of {size} bytes ({HELLO_MIN} to {HELLO_MAX})"
            return None
        if kind not in AFTER_HELLO or chunk not in CHUNK_TYPES:
            return ua.StatusCodes.BadTcpMessageTypeInvalid, f"message type {kind!r}{chunk!r} after the Hello"
        largest = max(self.limits.max_recv_buffer, self.limits.max_send_buffer)
        if not HEADER + 4 <= size <= largest:
            return ua.StatusCodes.BadTcpMessageTooLarge, f"a chunk of {size} bytes ({HEADER + 4} to {largest})"
        return None

    def _refuse(self, code: int, reason: str) -> None:
        self._refused = True
        log.warning("closing the connection from %s: %s", self.peer_name, reason)
        if self.transport is not None:
            error = ua.ErrorMessage(Error=ua.StatusCode(code), Reason=reason)
            self.transport.write(uatcp_to_binary(ua.MessageType.Error, error))
            self.transport.close()


class GuardedInternalServer(InternalServer):
    """asyncua's internal server with a limit on the sessions open at once."""

    def __init__(self, max_sessions: int):
        super().__init__()
        self.max_sessions = max_sessions
        self.connections: list[OPCUAProtocol] = []  # the binary server's live connections
        self._sessions: list[InternalSession] = []  # external sessions, oldest first

    def open_sessions(self) -> list[InternalSession]:
        """Client sessions not closed yet, oldest first (those whose connection is gone included)."""
        self._sessions = [s for s in self._sessions if s.state != SessionState.Closed]
        return list(self._sessions)

    def create_session(self, name: str, *args: Any, external: bool = False, **kwargs: Any) -> InternalSession:
        if external and len(self.open_sessions()) >= self.max_sessions:
            live = {id(c.processor.session) for c in self.connections if c.processor is not None}
            orphan = next((s for s in self._sessions if id(s) not in live), None)
            if orphan is None:
                log.warning("refused a session: %d open, the limit (--max-sessions)", len(self._sessions))
                raise ServiceError(ua.StatusCodes.BadTooManySessions)
            log.info("closing session %s, whose client is gone, to make room", orphan.name)
            self._sessions.remove(orphan)
            task = asyncio.get_running_loop().create_task(orphan.close_session(True))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # no "exception never retrieved"
        session = super().create_session(name, *args, external=external, **kwargs)
        if external:
            self._sessions.append(session)
        return session


class GuardedBinaryServer(BinaryServer):
    """asyncua's socket server, making ``GuardedProtocol`` connections."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if isinstance(self.iserver, GuardedInternalServer):
            self.iserver.connections = self.clients

    def _make_protocol(self) -> OPCUAProtocol:
        return GuardedProtocol(
            iserver=self.iserver,
            policies=self._policies,
            clients=self.clients,
            closing_tasks=self.closing_tasks,
            limits=self.limits,
        )


class GuardedServer(Server):
    """An asyncua ``Server`` with a handshake timeout, checked message headers and a session limit."""

    def __init__(self, handshake_timeout: float = HANDSHAKE_TIMEOUT_S, max_sessions: int = MAX_SESSIONS):
        super().__init__(iserver=GuardedInternalServer(max_sessions))
        self.iserver.max_pending_activation_seconds = handshake_timeout  # asyncua closes the connection then

    async def start(self) -> None:
        """asyncua's ``Server.start`` (2.1), listening with ``GuardedBinaryServer``."""
        if self.iserver.certificate is not None:
            uacrypto.check_certificate(self.iserver.certificate, self._application_uri, socket.gethostname())
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            self.bserver = GuardedBinaryServer(self.iserver, host, port, self.limits)
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            await self.iserver.stop()
            raise
