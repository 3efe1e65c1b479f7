"""Real aiosmtpd servers for the mailing tests (storing, fault-injecting, TLS, AUTH) and the SmtpSink on them.

The other mailing test modules import `SmtpTestServer`, `FaultHandler` and `serve` from here.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import load_settings
from newsletter.delivery.sinks.base import Envelope
from newsletter.delivery.sinks.smtp import PASSWORD_ENV, USERNAME_ENV, SmtpConfig, SmtpSink, config_from_settings
from newsletter.errors import ConfigError, DeliveryError

# A self-signed certificate for localhost / 127.0.0.1, valid for a century: the TLS tests need no tool at
# run time. Test-only key material, trusted by nothing but these tests.
CERT = """-----BEGIN CERTIFICATE-----
MIIDJzCCAg+gAwIBAgIUauCTFaF0RXF5g3wr1J+0D5xDWdEwDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNjEwMDUyOFoYDzIxMjYx
MTAyMTAwNTI4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQCoHF2UvbNP2lSMs3+Ul6cSWY/H7AHONdNA1d/9wcEZ
3vegNawolx8eRNjOgpCD9pTMZ8RAoSbefXI5XR56115yFhA1qiK8vhF35rxgw8PM
dzO1b/CYXp5QNAKgSE4zw/lLa/XSIIRwyRmce0adhZjeUD48tZbKPPpi5I8lIdUO
dicv5Cr+ccw2qyNHKk23b1tO2ctTJ43uJkET0zIhnc6J3X6hZLmjToVaRzF4id11
YWsxzXVwXyYlP8F+Xi7v5K0QSikV77MqiXp3YDM/WTUCQ3MunacRIOmzAKMcQy89
v07dxKYxRMLW+0QAmIkJO9cpMVFZVJUFgYTEkfs6awVdAgMBAAGjbzBtMB0GA1Ud
DgQWBBTOKzb6paWApztwkVdmXadeeR/CezAfBgNVHSMEGDAWgBTOKzb6paWApztw
kVdmXadeeR/CezAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGCCWxvY2FsaG9z
dIcEfwAAATANBgkqhkiG9w0BAQsFAAOCAQEAQiHHedHGt1B90QuOWq6ochp/sNt/
4p0FADYYiLIWpqYzMIIHKWGOl8lZIMjvdf8JZI4uLVqvEPda2ZXcpXqr1ZvNwb14
ajRb2lfm10F42aE8I4bD2nHWrZRMBimwXtWKJhmxNNlsVb4d+uj0cGn+Nxtd62Yu
+OCLtedSzG8lyXBVZPnJrLUT04pOQwg9yqglnuirTwq/Ls/4pR50RNUw3RvNCxll
rKmiUbtu6i59Q/NCYiPMVYqDdIZENK1uOjPpiuH4RN7M9hGYcFx5yU0kxveEZQQS
NmH12QMpapHhshb03Dg+7CQJH8QPngGj1aZwEu0Kv90doFGC77KZ6dlIVQ==
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCoHF2UvbNP2lSM
s3+Ul6cSWY/H7AHONdNA1d/9wcEZ3vegNawolx8eRNjOgpCD9pTMZ8RAoSbefXI5
XR56115yFhA1qiK8vhF35rxgw8PMdzO1b/CYXp5QNAKgSE4zw/lLa/XSIIRwyRmc
e0adhZjeUD48tZbKPPpi5I8lIdUOdicv5Cr+ccw2qyNHKk23b1tO2ctTJ43uJkET
0zIhnc6J3X6hZLmjToVaRzF4id11YWsxzXVwXyYlP8F+Xi7v5K0QSikV77MqiXp3
YDM/WTUCQ3MunacRIOmzAKMcQy89v07dxKYxRMLW+0QAmIkJO9cpMVFZVJUFgYTE
kfs6awVdAgMBAAECggEAAKLBoHIHamylGum3eI1XRcMLDGkPCH1DH1DMjOlHH+z4
/kUQ5NyaphLOe0xBAo+NUgJgp2CEpPaplsZy1E+Z5smnEr2u1AxnxM6Qu7cmnfbj
pIX35x4EFsHcZa57haFLp5zQ3FQ6DZjxGbQ/2N4o7ReCfyVhQw884JPEZ9IYLzqp
FfgOWWgAM/KUNYDwpNcrA4dZJl1gW6ZMUjH1Okmw1skitHNRQ/g+FBKaQmxvG3eE
Jg8P4HbRM1scq2XzQWZjOY/ZxOt/Nz/u7MhD6ZqQpEWQkyqFmJo1aawhUuTuZ2vT
5ViwFHTBbTyr5subrT9rOh5Xx99wZQlcCU0/GqkkAQKBgQDkuHLW08tI+k4FtZEO
rLQhfjRC4vSVwYt6pREp13SZbuFgBdAKhqKvOMwFxpmll+z+MK9lmrpHyqoJ0k3D
0HG0n4YkL5i6QPh7aTDfX2Swn2MzLpEpGxIaqQ1AGyivwF01SknCBa6alMtzQfrs
1kofonNC0fhQAeMUe7MiX/iZXQKBgQC8KVBB+aPei1iq1VtT0q9lGKBJku2w7hvd
NvPLMvQkI4hKn3uRiH71q3E4ySIgUH5giEJUs2j/bxMVStl3GqdCp1PDpudvitoZ
U4Bc11qSFetonL2RMwtvq/c2W8kOl9gJl9XB/PeGNPe94IkwGg5nzQJvMLuWLBqE
DX9Z2llcAQKBgEMGPjjwBcFUAGsx4tk/COZLunrjUTNVbU86cgYl6jhQQuFFsspy
29enODp1EW9yTvPKRovqxK3nGN8Z7sn0Gm4I1WFjRUlHYsmfcL/0j2gmvQYxnj5C
fZKseYKQsuKV53qHU4f07E7GTbxv2F1xCnWswEQTjcW8V9QXz83B+/LNAoGAPN9Y
uZ9bplmKW+oeW6XjXF91K5g/EWhW12A5ytk3JqHgK9Qgk9qGyE+ol2hqg+3GlNBA
NUq9gzWaBN9sLx4OUn/zl25dnTZcjKj49BAvmudAe12J7nmHD5+goJNdHj19hMz8
OH/wTBjCtUj42Pj1BBvM18/6QAEQqvv64UTEeAECgYBe7/2pmRv2OzEeXMMSkpu6
Qyg6KzRx2nd8ppTVDq6n5EQFBbfL26zvOMCmmYYlCU0yathPNIBpG7ktjmNc8mm5
wCu41Ckq+GahAU5ELE8UCoeRkMezLhZVWPGkwHYF0KODfoo5ek3fncpQtFjjsjrS
nZPNMmsOv+FAOZOvTOuQJA==
-----END PRIVATE KEY-----
"""


REPLIES = {
    "450": "450 4.2.1 Mailbox busy, try again later",
    "451": "451 4.3.0 Temporary failure, try again later",
    "421": "421 4.7.0 Too many messages, slow down",
    "454": "454 4.7.0 Temporary authentication failure",
    "550": "550 5.1.1 No such user here",
    "554": "554 5.7.1 Message rejected as spam",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


class StoreHandler:
    """Accepts everything and keeps it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()

    def store(self, envelope: Any) -> None:
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.store(envelope)
        return "250 2.0.0 OK queued"


class FaultHandler(StoreHandler):
    """Scripted trouble: for each recipient, the action for its 1st, 2nd, … attempt (then "ok").

    Actions: "ok"; "450", "451", "421", "454", "550", "554" as the reply to DATA; "rcpt451", "rcpt550" as the reply
    to RCPT; "drop" closes the connection after the message data arrived, before any reply (mid-DATA, as
    the client sees it). `hold` (an Event) makes the server wait before replying to DATA.
    """

    def __init__(self, script: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.script = script or {}
        self.attempts: Counter[str] = Counter()
        self.actions: dict[int, str] = {}

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.lock:
            n = self.attempts[address]
            self.attempts[address] += 1
        plan = self.script.get(address, [])
        action = plan[n] if n < len(plan) else "ok"
        if action.startswith("rcpt"):
            return REPLIES[action[4:]]
        envelope.rcpt_tos.append(address)
        self.actions[id(session)] = action
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        action = self.actions.pop(id(session), "ok")
        if action == "drop":
            server.transport.abort()
            return "451 4.4.2 connection dropped"  # never reaches the client
        if action != "ok":
            return REPLIES[action]
        self.store(envelope)
        return "250 2.0.0 OK queued"


class SmtpTestServer:
    """aiosmtpd on 127.0.0.1 in a thread; `tls` is None, "starttls" or "implicit"; `auth` is (user, password)."""

    def __init__(self, handler: Any, *, tls: str | None = None, auth: tuple[str, str] | None = None,
                 tmp: Path | None = None) -> None:  # fmt: skip
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.handler = handler
        self.port = free_port()
        self.tls = tls
        kwargs: dict[str, Any] = {}
        if tls:
            assert tmp is not None
            cert, key = tmp / "cert.pem", tmp / "key.pem"
            cert.write_text(CERT)
            key.write_text(KEY)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.ca_file = cert
            if tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        if auth:

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
                ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                    auth[0].encode(),
                    auth[1].encode(),
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_require_tls=bool(tls))
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def received(self) -> list[Received]:
        return self.handler.received  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        scheme = {None: "smtp", "starttls": "smtp+starttls", "implicit": "smtps"}[self.tls]
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> SmtpTestServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@contextlib.contextmanager
def serve(handler: Any, **kwargs: Any) -> Iterator[SmtpTestServer]:
    server = SmtpTestServer(handler, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """A real aiosmtpd server on 127.0.0.1 that stores what it receives (this module's own kind)."""
    with serve(StoreHandler()) as server:
        yield server


@pytest.fixture
def fault_server() -> Iterator[SmtpTestServer]:
    """A real aiosmtpd server following `server.handler.script`."""
    with serve(FaultHandler()) as server:
        yield server


# --- the SmtpSink on these servers -------------------------------------------------------------------------


def envelope(to: str, body: str = "Hello.\r\n") -> Envelope:
    data = f"From: a@example.org\r\nTo: {to}\r\nSubject: test\r\n\r\n{body}".encode()
    return Envelope("a@example.org", to, data)


def sink_for(server: SmtpTestServer, **kwargs: Any) -> SmtpSink:
    host, port = server.url.rsplit("/", 1)[1].rsplit(":", 1)
    tls = {None: "none", "starttls": "starttls", "implicit": "implicit"}[server.tls]
    return SmtpSink(SmtpConfig(host=host, port=int(port), tls=tls, timeout=5, **kwargs))


def test_connection_is_reused(smtp_server: SmtpTestServer) -> None:
    with sink_for(smtp_server) as sink:
        outcomes = [sink.send(envelope(f"r{i}@example.com")) for i in range(20)]
    assert all(o.sent and o.code == 250 for o in outcomes)
    assert sink.connects == 1
    assert [r.rcpt_tos for r in smtp_server.received] == [[f"r{i}@example.com"] for i in range(20)]


def test_concurrent_connections(smtp_server: SmtpTestServer) -> None:
    sink = sink_for(smtp_server, connections=4)
    sink.open()
    results: list[bool] = []

    def work(n: int) -> None:
        for i in range(10):
            results.append(sink.send(envelope(f"t{n}-{i}@example.com")).sent)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    assert results == [True] * 40 and len(smtp_server.received) == 40
    assert 1 <= sink.connects <= 4


def test_dot_stuffing_round_trips(smtp_server: SmtpTestServer) -> None:
    body = ".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\nno final newline"
    with sink_for(smtp_server) as sink:
        assert sink.send(envelope("dots@example.com", body)).sent
    assert smtp_server.received[0].data.endswith(
        b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\nno final newline\r\n"
    )


def test_replies_become_outcomes(fault_server: SmtpTestServer) -> None:
    fault_server.handler.script = {
        "soft@example.com": ["451"],
        "gone@example.com": ["550"],
        "spam@example.com": ["554"],
        "rcpt@example.com": ["rcpt550"],
        "drop@example.com": ["drop"],
        "busy@example.com": ["421"],
    }
    with sink_for(fault_server) as sink:
        soft = sink.send(envelope("soft@example.com"))
        assert (soft.status, soft.code) == ("transient", 451)
        gone = sink.send(envelope("gone@example.com"))
        assert (gone.status, gone.code, gone.reply) == ("permanent", 550, "550 5.1.1 No such user here")
        assert sink.send(envelope("spam@example.com")).status == "permanent"
        assert sink.send(envelope("rcpt@example.com")).code == 550
        assert sink.connects == 1  # refusals do not cost the connection
        dropped = sink.send(envelope("drop@example.com"))
        assert dropped.status == "transient" and dropped.code is None and "connection lost" in dropped.reply
        assert dropped.reachable
        busy = sink.send(envelope("busy@example.com"))
        assert (busy.status, busy.code) == ("transient", 421)
        # Each of those second attempts succeeds, on fresh connections where needed.
        for who in ("soft", "drop", "busy"):
            assert sink.send(envelope(f"{who}@example.com")).sent
        assert sink.connects == 3
    assert sorted(r.rcpt_tos[0] for r in fault_server.received) == [
        "busy@example.com",
        "drop@example.com",
        "soft@example.com",
    ]


def test_unreachable_server() -> None:
    sink = SmtpSink(SmtpConfig(host="127.0.0.1", port=free_port(), timeout=2))
    with pytest.raises(DeliveryError, match=r"cannot reach SMTP server smtp://127\.0\.0\.1:\d+: Connection refused"):
        sink.open()
    outcome = sink.send(envelope("x@example.com"))
    assert outcome.status == "transient" and not outcome.reachable


def test_starttls(tmp_path: Path) -> None:
    server = SmtpTestServer(StoreHandler(), tls="starttls", tmp=tmp_path).start()
    try:
        with sink_for(server, ca_file=server.ca_file) as sink:
            assert sink.send(envelope("tls@example.com")).sent
        # Without trusting the certificate, TLS fails: a clear error, nothing sent in the clear.
        with pytest.raises(DeliveryError, match="TLS failed"):
            sink_for(server).open()
        # A plain client is refused by a server that requires STARTTLS.
        plain = SmtpSink(SmtpConfig(host="127.0.0.1", port=server.port, timeout=5))
        plain.open()
        assert plain.send(envelope("plain@example.com")).code == 530
        plain.close()
    finally:
        server.stop()
    assert [r.rcpt_tos for r in server.received] == [["tls@example.com"]]


def test_implicit_tls(tmp_path: Path) -> None:
    server = SmtpTestServer(StoreHandler(), tls="implicit", tmp=tmp_path).start()
    try:
        with sink_for(server, ca_file=server.ca_file) as sink:
            assert sink.send(envelope("smtps@example.com")).sent
    finally:
        server.stop()
    assert len(server.received) == 1


def test_auth(tmp_path: Path) -> None:
    server = SmtpTestServer(StoreHandler(), tls="starttls", auth=("news", "s3cret-pw"), tmp=tmp_path).start()
    try:
        with sink_for(server, ca_file=server.ca_file, username="news", password="s3cret-pw") as sink:
            assert sink.send(envelope("auth@example.com")).sent
            assert "s3cret" not in sink.describe() and "s3cret" not in repr(sink.config)
        bad = sink_for(server, ca_file=server.ca_file, username="news", password="wrong-pw")
        with pytest.raises(DeliveryError, match="login refused for user 'news'") as info:
            bad.open()
        assert "wrong-pw" not in str(info.value)
    finally:
        server.stop()
    assert len(server.received) == 1


def test_config_from_settings(tmp_path: Path) -> None:
    root = tmp_path / "paper"
    root.mkdir()
    settings = load_settings(root, environ={})
    cfg = config_from_settings(settings, "smtp://127.0.0.1:2525", environ={})
    assert (cfg.host, cfg.port, cfg.tls, cfg.connections, cfg.username) == ("127.0.0.1", 2525, "none", 1, None)
    assert config_from_settings(settings, "smtps://mail.example.org", environ={}).port == 465
    cfg = config_from_settings(settings, "smtp+starttls://mail.example.org", connections=4, environ={})
    assert (cfg.port, cfg.tls, cfg.connections) == (587, "starttls", 4)
    env = {USERNAME_ENV: "news", PASSWORD_ENV: "pw"}
    cfg = config_from_settings(settings, "smtp+starttls://mail.example.org", environ=env)
    assert (cfg.username, cfg.password) == ("news", "pw") and "pw" not in repr(cfg)
    with pytest.raises(ConfigError, match="unencrypted"):
        config_from_settings(settings, "smtp://mail.example.org:25", environ=env)
    assert config_from_settings(settings, "smtp://127.0.0.1:25", environ=env).username == "news"  # loopback is fine
    with pytest.raises(ConfigError, match="no credentials in the URL"):
        config_from_settings(settings, "smtp://user:pw@mail.example.org", environ={})
    with pytest.raises(ConfigError, match="no password"):
        config_from_settings(settings, "smtps://mail.example.org", environ={USERNAME_ENV: "news"})
    with pytest.raises(ConfigError, match="scheme"):
        config_from_settings(settings, "http://mail.example.org", environ={})
    (root / "newsletter.toml").write_text('[smtp]\nurl = "smtps://relay.example.org:2465"\nconnections = 0\n')
    with pytest.raises(ConfigError, match="connections"):
        config_from_settings(load_settings(root, environ={}), environ={})
    (root / "newsletter.toml").write_text('[smtp]\nurl = "smtps://relay.example.org:2465"\nconnections = 3\n')
    cfg = config_from_settings(load_settings(root, environ={}), environ={})
    assert (cfg.host, cfg.port, cfg.connections) == ("relay.example.org", 2465, 3)


def test_send_edition_over_starttls_with_auth(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date

    from newsletter.delivery.send import send_edition
    from newsletter.delivery.unsubscribe import SECRET_ENV

    server = SmtpTestServer(StoreHandler(), tls="starttls", auth=("news", "pw-from-env"), tmp=tmp_path).start()
    try:
        (demo_root / "newsletter.toml").write_text(
            f'[smtp]\nurl = "{server.url}"\nca_file = "{server.ca_file}"\nconnections = 2\n', encoding="utf-8"
        )
        (demo_root / "list.csv").write_text("email\na@example.com\nb@example.com\nc@example.com\n", encoding="utf-8")
        monkeypatch.setenv(SECRET_ENV, "tls-secret")
        monkeypatch.setenv(USERNAME_ENV, "news")
        monkeypatch.setenv(PASSWORD_ENV, "pw-from-env")
        report = send_edition(load_settings(demo_root), date(2016, 12, 30), subscribers="list.csv", progress=False)
        assert report.ok and report.sent == 3 and "pw-from-env" not in report.summary()
        monkeypatch.setenv(PASSWORD_ENV, "wrong")
        (demo_root / "list.csv").write_text("email\nd@example.com\n", encoding="utf-8")
        with pytest.raises(DeliveryError, match="login refused") as info:
            send_edition(load_settings(demo_root), date(2016, 12, 30), subscribers="list.csv", progress=False)
        assert "wrong" not in str(info.value)
    finally:
        server.stop()
    assert sorted(r.rcpt_tos[0] for r in server.received) == ["a@example.com", "b@example.com", "c@example.com"]
