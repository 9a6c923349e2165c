"""Users with hashed passwords, and HTTP basic authentication for the dashboard.

    >>> add_user("twin-dashboard-users.json", "ana", "a long passphrase")   # scrypt hash, file mode 0600
    >>> users = load_users("twin-dashboard-users.json")                      # name -> hash
    >>> require_auth(app.server, users)                                      # 401 without credentials

Passwords are never stored: werkzeug's scrypt hashes (salted) are. Basic authentication sends the
password with every request, so a dashboard on a network must sit behind TLS (see the README's
reverse-proxy example).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.security import check_password_hash, generate_password_hash

from twin.errors import InputError

USERS_FORMAT = "twin dashboard users"
DEFAULT_USERS_FILE = "twin-dashboard-users.json"
NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
MIN_PASSWORD = 8


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


def check(users: Mapping[str, str], name: str | None, password: str | None) -> bool:
    """Whether ``name`` and ``password`` match a user (constant work for unknown names)."""
    if not name or password is None:
        return False
    hashed = users.get(name)
    if hashed is None:
        check_password_hash(next(iter(users.values()), generate_password_hash("x")), password)
        return False
    return check_password_hash(hashed, password)


def require_auth(server: Flask, users: Mapping[str, str]) -> None:
    """Every request to ``server`` needs HTTP basic credentials of one of ``users``."""
    known = dict(users)
    salt = secrets.token_bytes(16)
    verified: set[bytes] = set()  # digests of credentials checked already: scrypt once per user, not per request

    @server.before_request
    def _authenticate() -> Response | None:
        auth = request.authorization
        if auth is not None and auth.type == "basic" and auth.username and auth.password is not None:
            token = hashlib.sha256(salt + f"{auth.username}\0{auth.password}".encode()).digest()
            if token in verified:
                return None
            if check(known, auth.username, auth.password):
                if len(verified) > 1000:
                    verified.clear()
                verified.add(token)
                return None
        return Response(
            "Authentication required.\n", 401, {"WWW-Authenticate": 'Basic realm="twin dashboard", charset="UTF-8"'}
        )
