"""`SmtpSink`: delivery to an SMTP server (smtplib), with TLS, AUTH and reused connections.

    [smtp]
    url = "smtp://mail.example.org:587"   # smtp:// plain, smtp+starttls:// STARTTLS, smtps:// implicit TLS
    tls = "starttls"                      # optional: none | starttls | implicit (overrides the scheme)
    connections = 4                       # messages in flight at once, one connection each
    rate = 50                             # at most this many messages per second (0: no limit)
    timeout = 30                          # seconds per SMTP command
    username = "newsletter"               # or NEWSLETTER_SMTP_USERNAME
    ca_file = "certs/relay.pem"           # extra CA to trust (a private relay)

The password comes only from `NEWSLETTER_SMTP_PASSWORD`, never from the file or the URL, and is never
printed. AUTH is refused over an unencrypted connection except to the loopback interface.

Connections are pooled: a worker thread takes one, runs MAIL/RCPT/DATA and gives it back, so a run of
ten thousand messages opens `connections` connections, not ten thousand. smtplib opens them (TLS, AUTH);
the transactions themselves are `wire.py`'s, pipelined (and chunked) where the server offers it. A
connection the server drops is discarded and the message reported as transient; the send loop retries it
on a fresh one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...config import Settings
from ...errors import ConfigError, DeliveryError
from ...options import Options, Table, check_number
from .base import Envelope, Outcome, Sink, Stage
from .wire import Wire, WireError, one_line

USERNAME_ENV = "NEWSLETTER_SMTP_USERNAME"
PASSWORD_ENV = "NEWSLETTER_SMTP_PASSWORD"
_SCHEMES = {"smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("implicit", 465)}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    connections: int = 1
    rate: float = 0.0
    timeout: float = 30.0
    ca_file: Path | None = None
    local_hostname: str | None = None

    @property
    def url(self) -> str:
        scheme = {"none": "smtp", "starttls": "smtp+starttls", "implicit": "smtps"}[self.tls]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class SmtpOptions:
    """`[smtp]`, checked once: where the relay is and how it is used (the password is never here)."""

    url: str | None = None  # None: no relay configured (the outbox)
    tls: str | None = None  # none | starttls | implicit; None: what the URL's scheme says
    connections: int = 1
    rate: float = 0.0  # messages per second, 0: no limit
    timeout: float = 30.0
    username: str | None = None
    ca_file: Path | None = None
    helo: str | None = None


def parse_smtp(table: Table) -> SmtpOptions:
    table.only(("url", "tls", "connections", "rate", "timeout", "username", "ca_file", "helo"))
    url = table.get("url")
    if url is not None and not isinstance(url, str):
        table.fail("url", f"must be a string like smtp://host:587, got {url!r}")
    tls = table.get("tls")
    if tls is not None and tls not in ("none", "starttls", "implicit"):
        table.fail("tls", f"must be none, starttls or implicit, got {tls!r}")
    ca_file = table.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        table.fail("ca_file", f"must be a path, got {ca_file!r}")
    username, helo = table.get("username") or None, table.get("helo") or None
    for key, value in (("username", username), ("helo", helo)):
        if value is not None and (not isinstance(value, str) or "\n" in value or "\r" in value):
            table.fail(key, f"must be one line of text, got {value!r}")
    return SmtpOptions(
        url=url or None,
        tls=tls,
        connections=table.whole("connections", 1, 1, 64),
        rate=table.number("rate", 0, 0, 1_000_000, unit="messages per second (0: no limit)"),
        timeout=table.number("timeout", 30, 0.1, 3600, unit="seconds"),
        username=username,
        ca_file=(table.root / ca_file).resolve() if ca_file is not None else None,
        helo=helo,
    )


SMTP = Options("smtp", parse_smtp)


def smtp_url(settings: Settings, override: str | None = None) -> str | None:
    """The SMTP URL in effect: the --smtp flag, else `[smtp] url`, else None (use the outbox)."""
    return override if override else settings.options(SMTP).url


def config_from_settings(settings: Settings, url: str | None = None, **flags: Any) -> SmtpConfig:
    """The relay `settings` name (`[smtp]`, or `url` from --smtp); `flags` and the rest as `smtp_config`."""
    return smtp_config(settings.options(SMTP), url, **flags)


def smtp_config(
    options: SmtpOptions,
    url: str | None = None,
    *,
    connections: int | None = None,
    rate: float | None = None,
    environ: dict[str, str] | None = None,
) -> SmtpConfig:
    """The relay to connect to: `url` (--smtp) else `[smtp] url`, the credentials from the environment;
    a URL, a credential or a CA file that cannot work is a ConfigError line."""
    env = os.environ if environ is None else environ
    url = url or options.url
    if url is None:
        raise ConfigError("no SMTP server: pass --smtp smtp://host:port or set [smtp] url")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(f"--smtp {url!r}: the scheme must be smtp://, smtp+starttls:// or smtps://")
    if parts.username or parts.password:
        raise ConfigError(f"--smtp: put no credentials in the URL; use {USERNAME_ENV} and {PASSWORD_ENV} (environment)")
    if not parts.hostname:
        raise ConfigError(f"--smtp {url!r}: no host name")
    tls, default_port = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"--smtp {url!r}: bad port") from None
    username = env.get(USERNAME_ENV) or options.username
    password = env.get(PASSWORD_ENV) or None
    if username and not password:
        raise ConfigError(f"SMTP user {username!r} but no password: set {PASSWORD_ENV}")
    if password and not username:
        raise ConfigError(f"{PASSWORD_ENV} is set but no user: set {USERNAME_ENV} or [smtp] username")
    if options.ca_file is not None and not options.ca_file.is_file():
        raise ConfigError(f"[smtp] ca_file: {options.ca_file} not found")
    config = SmtpConfig(
        host=parts.hostname,
        port=port,
        tls=options.tls or tls,
        username=username,
        password=password,
        connections=options.connections
        if connections is None
        else int(check_number(connections, "--connections", 1, 64, whole=True)),
        rate=options.rate if rate is None else check_number(rate, "--rate", 0, 1_000_000, unit="messages per second"),
        timeout=options.timeout,
        ca_file=options.ca_file,
        local_hostname=options.helo,
    )
    if config.username and config.tls == "none" and not is_loopback(config.host):
        raise ConfigError(
            f"refusing to send the SMTP password unencrypted to {config.host}; use smtps:// or smtp+starttls://"
        )
    return config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Unreachable(Exception):
    pass


class _Busy(Exception):
    """A 4xx greeting: the server is there but takes no more connections now (a load signal)."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(reply)
        self.code = code


class SmtpSink(Sink):
    """See the module docstring. `config.connections` messages go out at once, one per pooled connection."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.concurrency = config.connections
        self._pool: queue.LifoQueue[tuple[smtplib.SMTP, Wire]] = queue.LifoQueue()
        self.connects = 0  # connections opened over the sink's life (tests check reuse)
        self.extensions: frozenset[str] = frozenset()  # of PIPELINING, CHUNKING: what the last connection used

    def describe(self) -> str:
        return f"{self.config.url} ({self.config.connections} connection{'s' * (self.config.connections > 1)})"

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.config.ca_file) if self.config.ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        """A ready connection (greeted, TLS, logged in); `_Unreachable` or DeliveryError when not."""
        cfg = self.config
        conn: smtplib.SMTP
        try:
            if cfg.tls == "implicit":
                conn = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, local_hostname=cfg.local_hostname, context=self._context()
                )
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout, local_hostname=cfg.local_hostname)
        except ssl.SSLError as exc:
            raise DeliveryError(f"{cfg.url}: TLS failed ({exc.reason or exc})") from None
        except smtplib.SMTPConnectError as exc:
            if 400 <= exc.smtp_code < 500:
                raise _Busy(exc.smtp_code, f"{exc.smtp_code} {one_line(exc.smtp_error)} (at connect)") from None
            raise DeliveryError(f"{cfg.url}: server refused us: {exc.smtp_code} {one_line(exc.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _Unreachable(f"cannot reach SMTP server {cfg.url}: {_describe_os_error(exc)}") from None
        self.connects += 1
        try:
            conn.ehlo_or_helo_if_needed()
            if cfg.tls == "starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise DeliveryError(f"{cfg.url}: the server does not offer STARTTLS")
                conn.starttls(context=self._context())
                conn.ehlo()
            if cfg.username:
                if not conn.has_extn("auth"):
                    conn.close()
                    raise DeliveryError(f"{cfg.url}: credentials given but the server offers no AUTH")
                conn.login(cfg.username, cfg.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            raise DeliveryError(
                f"{cfg.url}: login refused for user {cfg.username!r}: {exc.smtp_code} {one_line(exc.smtp_error)}"
            ) from None
        except ssl.SSLError as exc:
            conn.close()
            raise DeliveryError(f"{cfg.url}: TLS failed ({exc.reason or exc})") from None
        except (OSError, smtplib.SMTPException) as exc:
            conn.close()
            raise _Unreachable(f"{cfg.url}: connection lost while greeting: {_describe_os_error(exc)}") from None
        return conn

    def _connection(self) -> tuple[smtplib.SMTP, Wire]:
        conn = self._connect()
        assert conn.sock is not None  # connected by `_connect`
        wire = Wire(conn.sock, pipelining=conn.has_extn("pipelining"), chunking=conn.has_extn("chunking"))
        self.extensions = frozenset(
            name for name, used in (("PIPELINING", wire.pipelining), ("CHUNKING", wire.chunking)) if used
        )
        return conn, wire

    def open(self) -> None:
        """Connect once up front, so an unreachable server is an error before anything is sent."""
        try:
            self._pool.put(self._connection())
        except _Busy as exc:
            raise DeliveryError(f"{self.config.url}: server busy: {exc}") from None
        except _Unreachable as exc:
            raise DeliveryError(str(exc)) from None

    def send(self, envelope: Envelope) -> Outcome:
        try:
            conn, wire = self._pool.get_nowait()
        except queue.Empty:
            try:
                conn, wire = self._connection()
            except _Busy as exc:
                return Outcome("transient", exc.code, str(exc), stage="connect")
            except _Unreachable as exc:
                return Outcome("transient", None, str(exc), reachable=False, stage="connect")
        stage: list[Stage] = ["mail"]
        try:
            outcome = wire.transaction(envelope, stage)
        except (OSError, WireError) as exc:
            # Dropped mid-transaction (or a reply we cannot read): this message did not go; the connection
            # is unusable.
            _discard(conn)
            return Outcome("transient", None, f"connection lost: {_describe_os_error(exc)}", stage=stage[0])
        if wire.closing:  # the server said 421: it is closing this connection
            _discard(conn)
        else:
            self._pool.put((conn, wire))
        return outcome

    def close(self) -> None:
        while True:
            try:
                conn, wire = self._pool.get_nowait()
            except queue.Empty:
                return
            wire.quit()
            _discard(conn)


def _discard(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return one_line(str(exc)) or type(exc).__name__
