"""`[desk]` settings, read once into `DeskOptions` (each bad value is one line naming the file and key).

[desk]
session_hours = 12                 # a session ends this long after sign-in, whatever happens
idle_minutes = 60                  # … or after this long without a request
login_attempts = 5                 # failed sign-ins per user name, and per client address, per window
login_window_minutes = 15
min_password = 12                  # characters, for `newsletter desk add-user` and the users page
trusted_header = ""                # e.g. "X-Forwarded-User": single sign-on through an authenticating proxy
trusted_proxies = []               # the proxy addresses that header is believed from (nothing else)
seeds = []                         # addresses "send a test" mails besides the signed-in editor
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ...options import Options, Table

_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class DeskOptions:
    session_hours: float = 12.0
    idle_minutes: float = 60.0
    login_attempts: int = 5
    login_window: float = 15 * 60.0
    min_password: int = 12
    trusted_header: str = ""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    seeds: tuple[str, ...] = ()

    def proxy_trusted(self, address: str) -> bool:
        """Is `address` (a client address as the server saw it) one of `trusted_proxies`?"""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)


def _texts(table: Table, key: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):  # from the environment: comma-separated
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        table.fail(key, f"must be a list of text, got {value!r}")
    return [v.strip() for v in value]


def _networks(table: Table) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    found = []
    for value in _texts(table, "trusted_proxies"):
        try:
            found.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            table.fail("trusted_proxies", f"must be IP addresses or networks, got {value!r}")
    return tuple(found)


def parse_desk(table: Table) -> DeskOptions:
    table.only(
        {"session_hours", "idle_minutes", "login_attempts", "login_window_minutes", "min_password",
         "trusted_header", "trusted_proxies", "seeds"}
    )  # fmt: skip
    header = table.text("trusted_header", "").strip()
    if header and not _HEADER.fullmatch(header):
        table.fail("trusted_header", f"must be an HTTP header name, got {header!r}")
    proxies = _networks(table)
    if header and not proxies:
        table.fail("trusted_proxies", "must name the proxy addresses when trusted_header is set")
    seeds = _texts(table, "seeds")
    for seed in seeds:
        if "@" not in seed or any(c in seed for c in "\r\n,<> "):
            table.fail("seeds", f"must be email addresses, got {seed!r}")
    return DeskOptions(
        session_hours=table.number("session_hours", 12, 0.1, 24 * 30, unit="hours"),
        idle_minutes=table.number("idle_minutes", 60, 1, 24 * 60, unit="minutes"),
        login_attempts=table.whole("login_attempts", 5, 1, 1000),
        login_window=table.whole("login_window_minutes", 15, 1, 24 * 60) * 60.0,
        min_password=table.whole("min_password", 12, 8, 1024),
        trusted_header=header,
        trusted_proxies=proxies,
        seeds=tuple(seeds),
    )


DESK = Options("desk", parse_desk)
