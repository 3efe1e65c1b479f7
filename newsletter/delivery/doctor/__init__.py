"""`newsletter doctor`: the sending set-up checked against DNS and the relay, as a checklist.

In:  the settings (`[dkim]`, `[mailing] return_path`, `[smtp]`), a resolver (the system's or
     `--nameserver`), the relay's sending addresses. Out: a `Checklist` — per line a verdict (ok,
     warning, error), what was found and the fix — and an exit code for monitoring (0, 1, 2).

    checks.py     Check, Checklist (text and JSON)
    dnschecks.py  SPF (pyspf), reverse DNS of the sending addresses, DKIM records against the configured
                  keys, DMARC and alignment, MX
    relay.py      TLS with a verified certificate, AUTH
    (here)        the headers a probe message of the newest edition carries, its DKIM signature
                  verified by dkimpy against the same DNS

What the rules for bulk senders (Gmail, Yahoo; February 2024) ask: SPF and DKIM, DMARC with the From
domain aligned, one-click unsubscribe (RFC 8058), a valid forward and reverse DNS, TLS.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import dkim

from ...config import Settings
from ...edition import build
from ...errors import NewsletterError
from ..dkim import DkimOptions, Signer, signer_for
from ..options import MailingOptions
from ..personalize import Personalizer
from ..sinks.smtp import SmtpConfig, config_from_settings, smtp_url
from ..unsubscribe import ONE_CLICK, secret_from_env
from ..verp import ReturnPath
from .checks import Check, Checklist, error, ok, warning
from .dnschecks import (
    Dns,
    DnsTrouble,
    check_alignment,
    check_dkim,
    check_dmarc,
    check_mx,
    check_reverse,
    check_spf,
)
from .relay import check_relay

REQUIRED = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")
HELPFUL = ("List-Id", "Feedback-ID", "Auto-Submitted")
PROBE = "doctor-probe@example.com"


def return_path_domain(settings: Settings) -> str:
    """The envelope sender's domain: `[mailing] return_path` (VERP or not), else the From address's."""
    template = MailingOptions.from_settings(settings).return_path or settings.sender.address
    verp = ReturnPath.parse(template)
    return (verp.sample() if verp else template).rsplit("@", 1)[-1].lower()


def doctor(
    settings: Settings, *, nameserver: str | None = None, smtp: str | None = None, sending_ips: list[str] | None = None
) -> Checklist:
    """Every check, in the order a reader fixes them: DNS, alignment, relay, headers."""
    resolver = Dns(nameserver)
    from_domain = settings.sender.address.rsplit("@", 1)[-1].lower()
    envelope = return_path_domain(settings)
    options = DkimOptions.from_settings(settings)
    relay = config_from_settings(settings, smtp) if smtp_url(settings, smtp) else None
    ips = list(sending_ips or []) or _relay_addresses(relay)
    title = (
        f"Sending set-up of {settings.sender.address}: return path @{envelope}, "
        + (f"DKIM d={options.domain} s={','.join(options.selectors())}" if options else "no DKIM")
        + f"; DNS from {resolver.where}"
    )
    checklist = Checklist(title)
    helo = (relay.local_hostname or "") if relay else ""
    checklist.add(check_spf(resolver, envelope, ips, helo))
    checklist.add(*(check_reverse(resolver, ip) for ip in ips))
    if options:
        checklist.add(*(check_dkim(resolver, options, s) for s in options.selectors()))
    dmarc, record = check_dmarc(resolver, from_domain)
    checklist.add(dmarc)
    checklist.add(*check_alignment(from_domain, options.domain if options else None, envelope, record))
    checklist.add(check_mx(resolver, envelope))
    if relay is None:
        checklist.add(warning("relay", "no [smtp] url: messages go to the outbox", "set [smtp] url or pass --smtp"))
    else:
        checklist.add(*check_relay(relay))
    checklist.add(*check_headers(settings, resolver))
    return checklist


def _relay_addresses(relay: SmtpConfig | None) -> list[str]:
    """What SPF is evaluated for when no --sending-ip is given: the relay's address, when it is a literal."""
    import ipaddress

    if relay is None:
        return []
    try:
        return [str(ipaddress.ip_address(relay.host))]
    except ValueError:
        return []


def check_headers(settings: Settings, resolver: Dns) -> list[Check]:
    """Build one message of the newest edition as a reader would get it, signed, and read it back."""
    try:
        secret = secret_from_env()
        signer = signer_for(settings)
        built = build(settings, None, skip_invalid=True)
        personalizer = Personalizer(settings, built.edition, secret=secret, date=datetime.now(UTC), verify=False)
    except NewsletterError as exc:
        return [warning("headers", f"no probe message: {exc}"[:300], "fix that, then run doctor again")]
    data = personalizer.message(PROBE, "Probe")
    if signer is not None:
        data = signer.sign(data)
    msg = message_from_bytes(data, policy=policy.SMTP)
    missing = [h for h in REQUIRED if msg[h] is None]
    checks = []
    if missing:
        checks.append(error("headers", f"missing {', '.join(missing)}", "keep the default templates' headers"))
    elif str(msg["List-Unsubscribe-Post"]) != ONE_CLICK or "<https://" not in str(msg["List-Unsubscribe"]):
        checks.append(error("headers", "List-Unsubscribe is not one-click (RFC 8058)", "set [list] unsubscribe_url"))
    else:
        absent = [h for h in HELPFUL if msg[h] is None]
        detail = f"{', '.join(REQUIRED)} present" + (
            f"; no {', '.join(absent)}" if absent else f", {', '.join(HELPFUL)}"
        )
        checks.append(ok("headers", detail))
    checks.append(_verify_signatures(data, signer, resolver))
    return checks


def _verify_signatures(data: bytes, signer: Signer | None, resolver: Dns) -> Check:
    name = "DKIM signature"
    if signer is None:
        return error(name, "messages go out unsigned", "newsletter dkim keygen --selector S, then [dkim] selector = S")

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            found = resolver.txt(name.decode("ascii").rstrip("."))
        except DnsTrouble:
            return None
        return found[0].encode() if found else None

    results = []
    for i, key in enumerate(signer.keys):
        try:
            good = bool(dkim.DKIM(data).verify(idx=i, dnsfunc=dnsfunc))
        except dkim.DKIMException:  # dkimpy raises some failures (a malformed key record) instead of returning
            good = False
        results.append((key, good))
    bad = [f"s={k.selector}" for k, good in results if not good]
    if bad:
        return error(name, f"a probe message does not verify with {', '.join(bad)}", "publish the keys (see above)")
    return ok(name, "a probe message verifies: " + ", ".join(f"s={k.selector} ({k.kind})" for k, _ in results))


__all__ = ["Check", "Checklist", "doctor", "return_path_domain"]
