"""Users with hashed passwords, and HTTP basic authentication for the dashboard.

    >>> add_user("twin-dashboard-users.json", "ana", "a long passphrase")   # scrypt hash, file mode 0600
    >>> users = load_users("twin-dashboard-users.json")                      # name -> hash
    >>> require_auth(app.server, users)                                      # 401 without credentials

Passwords are never stored: werkzeug's scrypt hashes (salted) are. Basic authentication sends the
password with every request, so a dashboard on a network must sit behind TLS (see the README's
reverse-proxy example).

Against guessing: an unknown user name costs the same scrypt as a wrong password (names cannot be
told apart by time); after ``FREE_FAILURES`` failed logins from one address, each further try from it
waits twice as long as the last (1 s, 2 s, ... at most ``BACKOFF_MAX_S``), answered ``429`` with
``Retry-After`` and no password check meanwhile; one address checks one password at a time.
Credentials that passed once are not checked again (a browser sends them with every request), so
users already in are never slowed down.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.security import check_password_hash, generate_password_hash

from twin.errors import InputError

USERS_FORMAT = "twin dashboard users"
DEFAULT_USERS_FILE = "twin-dashboard-users.json"
NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
MIN_PASSWORD = 8
FREE_FAILURES = 5  # failed logins from one address before the back-off starts
BACKOFF_BASE_S = 1.0  # the first wait; each further failure doubles it ...
BACKOFF_MAX_S = 60.0  # ... up to this
FORGET_S = 900.0  # an address with no failure for this long starts afresh
MAX_TRACKED = 10_000  # addresses remembered (the oldest are forgotten first)
LOCK_STRIPES = 64

log = logging.getLogger("twin.dashboard")


def default_users_path() -> Path:
    """``$TWIN_DASHBOARD_USERS`` if set, else ``./twin-dashboard-users.json``."""
    return Path(os.environ.get("TWIN_DASHBOARD_USERS") or DEFAULT_USERS_FILE)


def load_users(path: str | Path) -> dict[str, str]:
    """Name -> password hash from a users file; ``InputError`` naming the file when it is unusable."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no users file (create one with `twin dashboard-user add NAME`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable users file ({err.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != USERS_FORMAT or not isinstance(data.get("users"), dict):
        raise InputError(f"{path}: not a twin dashboard users file")
    users = data["users"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise InputError(f"{path}: users: expected name -> password hash")
    return dict(users)


def add_user(path: str | Path, name: str, password: str) -> bool:
    """Add or replace a user; returns True if the user is new. The file is replaced in one step."""
    path = Path(path)
    if not NAME.match(name):
        raise InputError(f"user name {name!r}: use 1-64 letters, digits, '_', '.', '@', '+' or '-'")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"password for {name!r}: at least {MIN_PASSWORD} characters")
    users = load_users(path) if path.exists() else {}
    new = name not in users
    users[name] = generate_password_hash(password, method="scrypt")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"format": USERS_FORMAT, "users": users}, out, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return new


@functools.cache
def _stand_in_hash() -> str:
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


def check(users: Mapping[str, str], name: str | None, password: str | None) -> bool:
    """Whether ``name`` and ``password`` match a user; an unknown name costs the same hash as a wrong password."""
    if not name or password is None:
        return False
    hashed = users.get(name)
    if hashed is None:  # the same work on a real user's hash (same method and cost), then no
        check_password_hash(next(iter(users.values()), None) or _stand_in_hash(), password)
        return False
    return check_password_hash(hashed, password)


class LoginThrottle:
    """Failed logins per client address, and how long an address must wait before its next try.

    >>> throttle = LoginThrottle()
    >>> throttle.wait("10.0.0.7")            # seconds left before it may try again (0: now)
    >>> throttle.failed("10.0.0.7"); throttle.succeeded("10.0.0.7")
    """

    def __init__(
        self,
        free: int = FREE_FAILURES,
        base: float = BACKOFF_BASE_S,
        cap: float = BACKOFF_MAX_S,
        forget: float = FORGET_S,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free, self.base, self.cap, self.forget, self.max_tracked = free, base, cap, forget, max_tracked
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (failures, last)
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failed logins in a row."""
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - self.free, 64))

    def wait(self, client: str) -> float:
        """Seconds ``client`` must still wait before its next login (0.0: it may try now)."""
        with self._lock:
            failures, last = self._failures.get(client, (0, 0.0))
            now = self.clock()
            if failures and now - last > self.forget:
                del self._failures[client]
                return 0.0
            return max(0.0, last + self.delay(failures) - now)

    def failed(self, client: str) -> None:
        with self._lock:
            failures, _ = self._failures.pop(client, (0, 0.0))
            self._failures[client] = (failures + 1, self.clock())
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)
        if failures + 1 == self.free:
            log.warning("%d failed logins from %s: each further try waits longer", self.free, client)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def require_auth(server: Flask, users: Mapping[str, str], throttle: LoginThrottle | None = None) -> None:
    """Every request to ``server`` needs HTTP basic credentials of one of ``users``; guessing is slowed down."""
    known = dict(users)
    throttle = throttle or LoginThrottle()
    salt = secrets.token_bytes(16)
    verified: set[bytes] = set()  # digests of credentials checked already: scrypt once per user, not per request
    stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]  # one password check at a time per address

    @server.before_request
    def _authenticate() -> Response | None:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username or auth.password is None:
            return _challenge()
        token = hashlib.sha256(salt + f"{auth.username}\0{auth.password}".encode()).digest()
        if token in verified:
            return None
        client = request.remote_addr or "unknown"
        with stripes[hash(client) % LOCK_STRIPES]:
            if token in verified:  # checked by a request of the same page meanwhile
                return None
            wait = throttle.wait(client)
            if wait > 0:
                return Response(
                    f"Too many failed logins from {client}; try again in {math.ceil(wait)} s.\n",
                    429,
                    {"Retry-After": str(math.ceil(wait))},
                )
            if check(known, auth.username, auth.password):
                if len(verified) > 1000:
                    verified.clear()
                verified.add(token)
                throttle.succeeded(client)
                return None
            throttle.failed(client)
        log.info("failed login for user %r from %s", auth.username[:64], client)
        return _challenge()


def _challenge() -> Response:
    return Response(
        "Authentication required.\n", 401, {"WWW-Authenticate": 'Basic realm="twin dashboard", charset="UTF-8"'}
    )
