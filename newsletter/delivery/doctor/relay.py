"""The relay half of `doctor`: TLS with a certificate that verifies, and AUTH (logged in when configured)."""

from __future__ import annotations

import smtplib
import ssl

from ..sinks.smtp import SmtpConfig, is_loopback
from .checks import Check, error, ok, warning


def _context(config: SmtpConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


def _tls_fix(config: SmtpConfig) -> str:
    return f"give {config.host} a certificate from a public CA (or set [smtp] ca_file for a private one)"


def check_relay(config: SmtpConfig) -> list[Check]:
    """Connect once, as the sender would, and say what the relay offers."""
    name = f"relay {config.url}"
    try:
        if config.tls == "implicit":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=min(config.timeout, 15), context=_context(config)
            )
        else:
            conn = smtplib.SMTP(config.host, config.port, timeout=min(config.timeout, 15))
    except ssl.SSLError as exc:
        return [error(f"TLS of {name}", f"the certificate does not verify ({exc.reason or exc})", _tls_fix(config))]
    except (OSError, smtplib.SMTPException) as exc:
        return [error(name, f"cannot connect ({exc})", "check [smtp] url and that the relay is up")]
    try:
        return _tls_and_auth(conn, config, name)
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()


def _tls_and_auth(conn: smtplib.SMTP, config: SmtpConfig, name: str) -> list[Check]:
    checks = []
    conn.ehlo_or_helo_if_needed()
    if config.tls == "implicit":
        checks.append(ok(f"TLS of {name}", "implicit TLS, certificate verified"))
    elif conn.has_extn("starttls"):
        try:
            conn.starttls(context=_context(config))
            conn.ehlo()
        except ssl.SSLError as exc:
            return [
                error(
                    f"TLS of {name}",
                    f"STARTTLS: the certificate does not verify ({exc.reason or exc})",
                    _tls_fix(config),
                )
            ]
        if config.tls == "starttls":
            checks.append(ok(f"TLS of {name}", "STARTTLS, certificate verified"))
        else:
            checks.append(
                warning(
                    f"TLS of {name}",
                    "the relay offers STARTTLS but the URL does not ask for it",
                    f"use smtp+starttls://{config.host}:{config.port}",
                )
            )
    elif is_loopback(config.host):
        checks.append(
            warning(
                f"TLS of {name}", "no TLS (a relay on this machine)", "fine for a local MTA; it must use TLS onwards"
            )
        )
    else:
        return [
            error(
                f"TLS of {name}",
                "no STARTTLS: messages and any password cross the network in clear",
                "enable TLS on the relay and use smtp+starttls:// or smtps://",
            )
        ]
    checks.append(_auth(conn, config, name))
    return checks


def _auth(conn: smtplib.SMTP, config: SmtpConfig, name: str) -> Check:
    offered = conn.has_extn("auth")
    if config.username:
        if not offered:
            return error(
                f"AUTH at {name}",
                "credentials configured but the relay offers no AUTH",
                "enable AUTH on the relay, or drop the user name",
            )
        try:
            conn.login(config.username, config.password or "")
        except smtplib.SMTPException as exc:
            return error(
                f"AUTH at {name}",
                f"login refused for {config.username!r} ({exc})",
                "check NEWSLETTER_SMTP_USERNAME / NEWSLETTER_SMTP_PASSWORD",
            )
        return ok(f"AUTH at {name}", f"logged in as {config.username!r}")
    if is_loopback(config.host):
        return ok(f"AUTH at {name}", "no login (a relay on this machine, trusted by address)")
    fix = "set NEWSLETTER_SMTP_USERNAME and NEWSLETTER_SMTP_PASSWORD" if offered else "require AUTH on the relay"
    return warning(f"AUTH at {name}", "sending without logging in: the relay trusts this address", fix)
