"""What is particular to a server on 127.0.0.1, where web pages in the same browser are the attackers:
loopback-only binding, the `Host` values a local browser sends, the pages' CSPs. The guards themselves
(Host allow-list, CSRF, security headers) are shared with the public app in `newsletter/web/security.py`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp

from ..security import CsrfGuard, SecurityHeaders
from ..security import HostGuard as _HostGuard

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

# Pages of the preview itself: scripts and styles only from /static, frames only from here.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The email as subscribers get it: inline styles, remote images, never a script; framed only by us.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; font-src https: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
# The edition's web-archive page: its own stylesheet, remote images, no script; framed only by us.
WEB_CSP = (
    "default-src 'none'; style-src 'self'; img-src https: http: data:; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'self'"
)
# The unsubscribe pages come from the mailing stage with one inline <style>.
UNSUBSCRIBE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"


def loopback_host(value: str) -> str:
    """The address to bind for `--host`; anything but a loopback address is refused with ValueError."""
    text = value.strip().lower()
    if text == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if not addr.is_loopback:
        raise ValueError(f"{value} is not a loopback address")
    return str(addr)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def allowed_hosts(bound: str, port: int) -> frozenset[str]:
    """Every `Host` header value a browser on this machine sends for our URL."""
    names = {*LOOPBACK_NAMES, url_host(bound)}
    values = {f"{n}:{port}" for n in names}
    if port == 80:
        values |= names  # browsers leave the default port out
    return frozenset(values)


PREVIEW_HOST_MESSAGE = "Host not allowed: open the preview at the http://127.0.0.1 address it printed.\n"


class HostGuard(_HostGuard):
    """The shared Host guard, telling a refused browser where the preview is."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        super().__init__(app, hosts, message=PREVIEW_HOST_MESSAGE)


__all__ = [
    "EMAIL_CSP",
    "PAGE_CSP",
    "PREVIEW_HOST_MESSAGE",
    "UNSUBSCRIBE_CSP",
    "WEB_CSP",
    "CsrfGuard",
    "HostGuard",
    "SecurityHeaders",
    "allowed_hosts",
    "loopback_host",
    "url_host",
]
