"""`[web]` settings of the public app, checked once at start-up (each bad value is one line).

[web]
hosts = ["newsletter.example.org"]   # Host values answered (default: the host of base_url)
confirm_hours = 48                   # how long a confirmation link works
max_body_kb = 16                     # larger request bodies get 413
subscribe_per_ip = 10                # sign-ups per client IP per window
subscribe_per_address = 3            # confirmation emails per address per window
window_minutes = 60
client_timeout = 10                  # seconds a client has to send a whole request (head and body)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ...config import Settings
from ...options import Options, Table

_KNOWN = {
    "hosts", "confirm_hours", "max_body_kb", "subscribe_per_ip", "subscribe_per_address", "window_minutes",
    "client_timeout",
}  # fmt: skip


@dataclass(frozen=True)
class WebOptions:
    hosts: frozenset[str]  # empty in what the table gives: the host of base_url (`from_settings`)
    confirm_hours: int = 48
    max_body: int = 16 * 1024
    per_ip: int = 10
    per_address: int = 3
    window: float = 3600.0
    client_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebOptions:
        """The `[web]` options of `settings` (`settings.options(WEB)`, read once); without `hosts`, the
        host of `base_url`."""
        options = settings.options(WEB)
        if options.hosts:
            return options
        host = urlsplit(settings.base_url).netloc.strip().lower()
        if not host:
            settings.table("web").fail("hosts", f"must be a list of host names, got {[host]!r}")
        return replace(options, hosts=frozenset({host}))


def parse_web(table: Table) -> WebOptions:
    table.only(_KNOWN)
    hosts = table.get("hosts", [])
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h.strip()]
    if "hosts" in table.values and (
        not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h.strip() for h in hosts)
    ):
        table.fail("hosts", f"must be a list of host names, got {hosts!r}")
    number = table.whole
    return WebOptions(
        hosts=frozenset(h.strip().lower() for h in hosts),
        confirm_hours=number("confirm_hours", 48, 1, 24 * 30),
        max_body=number("max_body_kb", 16, 1, 1024) * 1024,
        per_ip=number("subscribe_per_ip", 10, 0, 1_000_000),
        per_address=number("subscribe_per_address", 3, 0, 1_000_000),
        window=number("window_minutes", 60, 1, 24 * 60) * 60.0,
        client_timeout=float(number("client_timeout", 10, 1, 300)),
    )


WEB = Options("web", parse_web)
