"""OPC-UA security: application certificates, a trust list, users with hashed passwords and two roles.

    >>> pki = Pki("pki/server").ensure("urn:twin:serve", "twin serve")   # cert + key (0600) on first use
    >>> users = Users.load("users.yaml")                                 # name -> role + scrypt hash
    >>> await secure_server(server, pki, users, modes=("sign", "sign-encrypt"), allow_anonymous=False)
    >>> await secure_client(client, Pki("pki/sync").ensure(...), "sign-encrypt", "alice", password)

A PKI folder holds ``own/cert.der`` and ``own/key.pem``, ``trusted/`` (peer certificates you trust,
DER or PEM) and ``rejected/`` (certificates that were refused, saved so that you can review them and
move them into ``trusted/``). A peer certificate is accepted only if it is in ``trusted/`` (same
SHA-256 thumbprint), is within its validity period and names the peer's application URI.

Roles: ``read-only`` may browse, read and subscribe; ``operator`` may also call methods and write.
Anonymous sessions (only when allowed) are read-only.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from asyncua import ua
from asyncua.crypto import cert_gen, security_policies
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from twin.errors import InputError

log = logging.getLogger(__name__)

ROLES = ("read-only", "operator")
MODES = ("none", "sign", "sign-encrypt")
_SERVER_POLICY = {
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "sign-encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
_CLIENT_MODE = {"sign": ua.MessageSecurityMode.Sign, "sign-encrypt": ua.MessageSecurityMode.SignAndEncrypt}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def parse_modes(text: str) -> tuple[str, ...]:
    """``"sign,sign-encrypt"`` -> ("sign", "sign-encrypt"); raises ``InputError`` naming a bad mode."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InputError(f"--security {text!r}: expected a comma-separated list of {', '.join(MODES)}")
    return modes


# ---------------------------------------------------------------------------------------------------- certificates


def thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _read_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def application_uri(cert: x509.Certificate) -> str | None:
    """The application URI in a certificate's subject alternative names."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


@dataclass(frozen=True)
class Pki:
    """A folder with this application's certificate and key, and its trust list."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def cert_path(self) -> Path:
        return self.root / "own" / "cert.der"

    @property
    def key_path(self) -> Path:
        return self.root / "own" / "key.pem"

    @property
    def trusted(self) -> Path:
        return self.root / "trusted"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    def ensure(self, app_uri: str, name: str, server: bool = True) -> Pki:
        """Create the folders, and a self-signed certificate and key the first time (the key 0600)."""
        for folder in (self.root, self.root / "own", self.trusted, self.rejected):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.cert_path.exists() and self.key_path.exists():
            return self
        key = cert_gen.generate_private_key()
        host = socket.gethostname()
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(app_uri), x509.DNSName(host)]
        usage = (
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            if server
            else [ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        cert = cert_gen.generate_self_signed_app_certificate(key, name, {}, names, usage, days=3650)
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(cert_gen.dump_private_key_as_pem(key))
        os.chmod(self.key_path, 0o600)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        log.info("created certificate %s (thumbprint %s)", self.cert_path, thumbprint(cert))
        return self

    def certificate(self) -> x509.Certificate:
        return _read_cert(self.cert_path)

    def app_uri(self) -> str:
        uri = application_uri(self.certificate())
        if not uri:
            raise InputError(f"{self.cert_path}: certificate names no application URI")
        return uri

    def trust(self, cert_file: str | Path) -> Path:
        """Copy a peer certificate into the trust list; returns where it went."""
        source = Path(cert_file)
        try:
            cert = _read_cert(source)
        except (OSError, ValueError) as err:
            raise InputError(f"{source}: not a readable certificate ({err})") from None
        self.trusted.mkdir(parents=True, exist_ok=True)
        target = self.trusted / f"{thumbprint(cert)[:16]}.der"
        target.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        return target

    def trusted_thumbprints(self) -> set[str]:
        found = set()
        for path in sorted(self.trusted.glob("*")):
            if path.suffix.lower() in (".der", ".pem", ".crt", ".cer"):
                try:
                    found.add(thumbprint(_read_cert(path)))
                except ValueError:
                    log.warning("%s: not a certificate; ignored", path)
        return found


UNSECURED_CHANNEL: contextvars.ContextVar[bool] = contextvars.ContextVar("twin_unsecured_channel", default=False)
"""True while a server handles a message that came over a SecurityPolicy None channel (set by ``guard``)."""


class TrustListValidator:
    """A certificate validator for asyncua: only certificates in the trust list pass.

    asyncua accepts any certificate unless a validator is set; this one is set on every server and
    client the twin makes. A refused certificate is saved under ``rejected/`` for review.

    With SecurityPolicy None the certificate a client sends in CreateSession secures nothing (OPC 10000-4,
    5.6.2: the server ignores it), so it is not checked: many stacks send theirs even then.
    """

    def __init__(self, pki: Pki):
        self.pki = pki

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        if UNSECURED_CHANNEL.get():
            return
        print_ = thumbprint(cert)
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            self._reject(cert, "outside its validity period")
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateTimeInvalid)
        if app is not None and app.ApplicationUri and application_uri(cert) != app.ApplicationUri:
            self._reject(cert, f"names {application_uri(cert)!r}, the peer says {app.ApplicationUri!r}")
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUriInvalid)
        if print_ not in self.pki.trusted_thumbprints():
            self._reject(cert, "not in the trust list")
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted)

    def _reject(self, cert: x509.Certificate, why: str) -> None:
        self.pki.rejected.mkdir(parents=True, exist_ok=True)
        path = self.pki.rejected / f"{thumbprint(cert)[:16]}.der"
        path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        log.warning(
            "rejected certificate %s (%s); saved to %s: move it to %s to trust it",
            cert.subject.rfc4514_string(),
            why,
            path,
            self.pki.trusted,
        )


# ---------------------------------------------------------------------------------------------------- users


def hash_password(password: str) -> str:
    """An scrypt hash with a random salt: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str


class Users:
    """A users file: ``users: {alice: {role: operator, password: "scrypt$..."}}``."""

    def __init__(self, accounts: dict[str, Account], source: str = "<users>"):
        self.accounts, self.source = accounts, source

    @classmethod
    def load(cls, path: str | Path | None) -> Users:
        if path is None:
            return cls({})
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as err:
            raise InputError(f"{path}: cannot read the users file ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise InputError(f"{path}: not valid YAML ({err})") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise InputError(f"{path}: users: expected a mapping of user name -> {{role, password}}")
        accounts = {}
        for name, entry in users.items():
            if not isinstance(entry, dict) or entry.get("role") not in ROLES:
                raise InputError(f"{path}: users.{name}.role: expected one of {', '.join(ROLES)}")
            hashed = entry.get("password")
            if not isinstance(hashed, str) or not hashed.startswith("scrypt$") or hashed.count("$") != 5:
                raise InputError(f"{path}: users.{name}.password: expected a hash made by `twin opcua user add`")
            accounts[str(name)] = Account(str(name), entry["role"], hashed)
        return cls(accounts, str(path))

    @staticmethod
    def add(path: str | Path, name: str, role: str, password: str) -> None:
        """Add or replace a user in a users file (written atomically, mode 0600)."""
        if role not in ROLES:
            raise InputError(f"--role {role!r}: expected one of {', '.join(ROLES)}")
        if not password:
            raise InputError("the password is empty")
        path = Path(path)
        data: dict[str, Any] = {"users": {}}
        if path.exists():
            Users.load(path)  # refuse to rewrite a broken file
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {"users": {}}
        data["users"][name] = {"role": role, "password": hash_password(password)}
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=True)
        os.replace(tmp, path)

    def check(self, name: str, password: str) -> Account | None:
        account = self.accounts.get(name)
        if account is None:
            verify_password(password, hash_password("timing"))  # same cost for unknown names
            return None
        return account if verify_password(password, account.password_hash) else None


class TwinUser(User):
    """An asyncua user that carries the twin role."""

    def __init__(self, name: str | None, twin_role: str):
        super().__init__(role=UserRole.User, name=name)
        self.twin_role = twin_role


class UserDirectory(UserManager):
    """asyncua user manager over a ``Users`` file; anonymous sessions only when allowed (read-only)."""

    def __init__(self, users: Users, allow_anonymous: bool):
        self.users, self.allow_anonymous = users, allow_anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is None:  # anonymous (X509 user tokens are not offered; `certificate` is the channel's)
            return TwinUser(None, "read-only") if self.allow_anonymous else None
        account = self.users.check(username, password or "")
        if account is None:
            log.warning("login refused for user %r", username)
            return None
        return TwinUser(account.name, account.role)


_READ_ONLY = {ua.NodeId(t) for t in USER_TYPES} - {
    ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
    ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
}
_OPERATOR = {ua.NodeId(t) for t in USER_TYPES}


class RoleRuleset(PermissionRuleset):
    """Which requests each role may make: read-only never writes or calls methods."""

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        role = getattr(user, "twin_role", None)
        allowed = _OPERATOR if role == "operator" else _READ_ONLY if role == "read-only" else set()
        return action_type_id in allowed


# ---------------------------------------------------------------------------------------------------- wiring


async def secure_server(server: Any, pki: Pki, users: Users, modes: tuple[str, ...], allow_anonymous: bool) -> None:
    """Certificate, endpoints (policies), identity tokens, user check, roles and trust list of a server."""
    if not users.accounts and not allow_anonymous:
        raise InputError(
            "no users file given and anonymous access is off: nobody could log in "
            "(give --users FILE, made with `twin opcua user add`, or --allow-anonymous)"
        )
    await server.load_certificate(str(pki.cert_path))
    await server.load_private_key(str(pki.key_path))
    await server.set_application_uri(pki.app_uri())
    server.set_security_policy([_SERVER_POLICY[m] for m in modes], permission_ruleset=RoleRuleset())
    tokens: list[type] = [ua.UserNameIdentityToken]
    if allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    server.set_identity_tokens(tokens)
    server.iserver.user_manager = UserDirectory(users, allow_anonymous)
    server.set_certificate_validator(TrustListValidator(pki))


async def secure_client(client: Any, pki: Pki, mode: str, user: str | None, password: str | None) -> None:
    """Security mode, certificate, trust list and user of a client (call before ``connect``)."""
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    if mode == "none":
        return
    client.application_uri = pki.app_uri()
    client.certificate_validator = TrustListValidator(pki)
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        certificate=str(pki.cert_path),
        private_key=str(pki.key_path),
        mode=_CLIENT_MODE[mode],
    )
