"""Security of the twin's OPC-UA server: every rejection proved with real clients on loopback."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
import yaml
from asyncua import ua
from opcua_helpers import LINE_YAML, endpoint

from connectors.opcua.blocking import BackgroundServer, call_method, read_values
from connectors.opcua.security import Pki, Users, hash_password, verify_password
from connectors.opcua.server import TwinServer
from connectors.opcua.uabase import ClientOptions, ServerOptions
from twin.errors import InputError
from twin.spec.loader import spec_from_data

HOST = socket.gethostname()
NS = "urn:twin:mini"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """A twin server offering Sign and SignAndEncrypt only, anonymous off, an operator and a read-only user."""
    root = tmp_path_factory.mktemp("secured")
    Users.add(root / "users.yaml", "op", "operator", "op-pw")
    Users.add(root / "users.yaml", "viewer", "read-only", "viewer-pw")
    server_pki = Pki(root / "pki-server").ensure(f"urn:twin:serve:{HOST}", "twin serve")
    client_pki = Pki(root / "pki-client").ensure(f"urn:twin:script:{HOST}", "twin script", server=False)
    server_pki.trust(client_pki.cert_path)
    client_pki.trust(server_pki.cert_path)
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    options = ServerOptions(
        endpoint=endpoint(), pki=root / "pki-server", users=root / "users.yaml", security=("sign", "sign-encrypt")
    )
    with BackgroundServer(lambda: TwinServer(spec, options, speed=3600.0)) as server:
        yield root, options.endpoint, server


def client(
    root: Path,
    ep: str,
    user: str | None = "op",
    password: str | None = "op-pw",
    security: str = "sign-encrypt",
    pki: str = "pki-client",
) -> ClientOptions:
    return ClientOptions(ep, pki=root / pki, security=security, user=user, password=password)


def test_trusted_users_connect_with_sign_and_with_sign_and_encrypt(secured):
    root, ep, _ = secured
    for mode in ("sign", "sign-encrypt"):
        (sim_time,) = read_values(client(root, ep, "viewer", "viewer-pw", mode), NS, ["mini.SimTime"])
        assert sim_time.StatusCode.value == ua.StatusCodes.UncertainSimulatedValue


def test_wrong_password_and_unknown_user_are_refused(secured):
    root, ep, _ = secured
    for user, password in (("op", "wrong"), ("nobody", "op-pw")):
        with pytest.raises(InputError, match="BadUserAccessDenied"):
            read_values(client(root, ep, user, password), NS, ["mini.SimTime"])


def test_anonymous_is_refused_unless_allowed(secured):
    root, ep, _ = secured
    with pytest.raises(InputError, match="refused the connection"):
        read_values(client(root, ep, None, None), NS, ["mini.SimTime"])


def test_no_security_is_not_offered_by_default(secured):
    root, ep, _ = secured
    with pytest.raises(InputError):
        read_values(client(root, ep, security="none"), NS, ["mini.SimTime"])


def test_an_untrusted_client_certificate_is_rejected_and_kept_for_review(secured):
    root, ep, _ = secured
    stranger = Pki(root / "pki-stranger").ensure(f"urn:twin:script:{HOST}", "stranger", server=False)
    Pki(root / "pki-stranger").trust(root / "pki-server" / "own" / "cert.der")  # it trusts the server, not vice versa
    with pytest.raises(InputError, match="BadCertificateUntrusted"):
        read_values(client(root, ep, pki="pki-stranger"), NS, ["mini.SimTime"])
    from connectors.opcua.security import thumbprint

    kept = [p.name for p in (root / "pki-server" / "rejected").iterdir()]
    assert f"{thumbprint(stranger.certificate())[:16]}.der" in kept


def test_the_client_rejects_a_server_certificate_it_does_not_trust(secured):
    root, ep, _ = secured
    Pki(root / "pki-naive").ensure(f"urn:twin:script:{HOST}", "naive", server=False)
    Pki(root / "pki-server").trust(root / "pki-naive" / "own" / "cert.der")  # the server trusts it; it trusts nobody
    with pytest.raises(InputError, match="BadCertificateUntrusted"):
        read_values(client(root, ep, pki="pki-naive"), NS, ["mini.SimTime"])


def test_read_only_users_can_neither_call_methods_nor_write(secured):
    root, ep, server = secured
    viewer = client(root, ep, "viewer", "viewer-pw")
    with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
        call_method(viewer, NS, "mini", "Pause")

    import asyncio

    from connectors.opcua.uabase import connect, namespace_index

    async def write() -> None:
        c = await connect(viewer, "script")
        try:
            ns = await namespace_index(c, NS)
            await c.get_node(ua.NodeId("mini.LastMessage", ns)).write_value(ua.Variant("hacked", ua.VariantType.String))
        finally:
            await c.disconnect()

    with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
        asyncio.run(write())
    assert server.run_.running  # nothing changed
    call_method(client(root, ep), NS, "mini", "Pause")  # the operator may
    assert not server.run_.running
    call_method(client(root, ep), NS, "mini", "Start")


def test_keys_are_private_and_passwords_are_salted_scrypt_hashes(secured):
    root, _, _ = secured
    for pki in ("pki-server", "pki-client"):
        assert stat.S_IMODE((root / pki / "own" / "key.pem").stat().st_mode) == 0o600
    users = yaml.safe_load((root / "users.yaml").read_text())["users"]
    assert users["op"]["role"] == "operator" and users["op"]["password"].startswith("scrypt$16384$8$1$")
    assert "op-pw" not in (root / "users.yaml").read_text()
    assert stat.S_IMODE((root / "users.yaml").stat().st_mode) == 0o600
    a, b = hash_password("same"), hash_password("same")
    assert a != b and verify_password("same", a) and not verify_password("Same", a)


def test_anonymous_clients_are_read_only_when_allowed(tmp_path: Path):
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    options = ServerOptions(endpoint=endpoint(), pki=tmp_path / "pki", security=("none",), allow_anonymous=True)
    with BackgroundServer(lambda: TwinServer(spec, options, speed=60.0)):
        anonymous = ClientOptions(options.endpoint, pki=tmp_path / "c", security="none")
        (state,) = read_values(anonymous, NS, ["mini.RunState"])
        assert state.Value.Value == "running"
        with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
            call_method(anonymous, NS, "mini", "Pause")


def test_a_server_nobody_could_log_in_to_does_not_start(tmp_path: Path):
    spec = spec_from_data(yaml.safe_load(LINE_YAML), "line.yaml")
    options = ServerOptions(endpoint=endpoint(), pki=tmp_path / "pki")
    with pytest.raises(InputError, match="nobody could log in"), BackgroundServer(lambda: TwinServer(spec, options)):
        pass


def test_clients_keep_a_watchdog_well_above_asyncuas_one_second(secured):
    """asyncua's 1 s client watchdog drops sessions on a busy machine; every twin client sets a longer one."""
    import asyncio

    from connectors.opcua.uabase import WATCHDOG_S, connect

    async def watchdog() -> float:
        c = await connect(client(root, ep), "script")
        try:
            return c._watchdog_intervall
        finally:
            await c.disconnect()

    root, ep, _ = secured
    assert asyncio.run(watchdog()) == WATCHDOG_S >= 10


def test_twin_opcua_user_add_cert_and_trust_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import json

    from conftest import run_cli

    users = tmp_path / "users.yaml"
    monkeypatch.setenv("TWIN_OPCUA_PASSWORD", "s3cret")
    r = run_cli("opcua", "user", "add", str(users), "alice", "--role", "operator")
    assert r.returncode == 0 and "alice (operator) saved" in r.stdout, r.stderr
    assert run_cli("opcua", "user", "add", str(users), "bob").returncode == 0  # read-only by default
    loaded = Users.load(users)
    assert loaded.check("alice", "s3cret").role == "operator" and loaded.check("bob", "s3cret").role == "read-only"
    assert loaded.check("alice", "wrong") is None and "s3cret" not in users.read_text()
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    r = run_cli("opcua", "user", "add", str(users), "carol", "--role", "admin")
    assert r.returncode == 2 and "--role 'admin'" in r.stderr and "Traceback" not in r.stderr
    assert set(Users.load(users).accounts) == {"alice", "bob"}  # nothing half-written

    r = run_cli("opcua", "cert", str(tmp_path / "pki-a"), "--role", "serve")
    info = json.loads(r.stdout)
    assert r.returncode == 0 and info["application_uri"] == f"urn:twin:serve:{HOST}"
    assert stat.S_IMODE((tmp_path / "pki-a" / "own" / "key.pem").stat().st_mode) == 0o600
    r = run_cli("opcua", "trust", str(tmp_path / "pki-b"), info["certificate"])
    assert r.returncode == 0 and Pki(tmp_path / "pki-b").trusted_thumbprints() == {info["thumbprint"]}
    r = run_cli("opcua", "trust", str(tmp_path / "pki-b"), str(users))
    assert r.returncode == 2 and "not a readable certificate" in r.stderr and "Traceback" not in r.stderr


class _ChannelRefusingPeer:
    """A real asyncua server that, like many industrial servers, checks the client certificate when the secure
    channel opens and answers OpenSecureChannel with BadCertificateUntrusted (signed and encrypted as the
    policy says); the twin's own servers refuse at CreateSession instead."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.server = None

    async def start(self) -> None:
        from connectors.opcua.uabase import make_server, start_server

        self.server = await make_server(self.options, "refusing peer", "serve")
        await start_server(self.server, self.options.endpoint)

    async def run(self, stop) -> None:
        await stop.wait()

    async def stop(self) -> None:
        await self.server.stop()


def test_a_peer_refusing_the_syncs_certificate_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from asyncua.server.uaprocessor import UaProcessor, struct_from_binary
    from conftest import run_cli

    def refuse(self, algohdr, seqhdr, body) -> None:
        request = struct_from_binary(ua.OpenSecureChannelRequest, body)
        self._connection.select_policy(
            algohdr.SecurityPolicyURI, algohdr.SenderCertificate, request.Parameters.SecurityMode
        )
        response = ua.OpenSecureChannelResponse()
        response.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadCertificateUntrusted)
        self.send_response(request.RequestHeader.RequestHandle, seqhdr, response, ua.MessageType.SecureOpen)

    monkeypatch.setattr(UaProcessor, "open_secure_channel", refuse)  # in this process only: the peer's side
    options = ServerOptions(endpoint=endpoint(), pki=tmp_path / "pki-peer", allow_anonymous=True)
    with BackgroundServer(lambda: _ChannelRefusingPeer(options)):
        Pki(tmp_path / "pki-sync").ensure(f"urn:twin:sync:{HOST}", "twin sync", server=False)
        Pki(tmp_path / "pki-sync").trust(tmp_path / "pki-peer" / "own" / "cert.der")  # the sync trusts the peer
        for security in ("sign-encrypt", "sign", "none"):
            args = ["sync", "osd-tablet", "--endpoint", options.endpoint, "--pki", str(tmp_path / "pki-sync")]
            done = run_cli(*args, "--historian", str(tmp_path / "h.db"), "--security", security, timeout=120)
            assert done.returncode == 2, (security, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in done.stderr and "internal error" not in done.stderr, lines
            assert "refused the secure channel" in lines[0] and "BadCertificateUntrusted" in lines[0], lines
            assert ("pki-sync/own/cert.der" in lines[0]) == (security != "none"), lines
            assert not (tmp_path / "h.db").exists()  # nothing written for a refused start
