"""Test sends: the edition as it will go out, to the newsletter's seed list or to a given address.

    [desk]
    seeds = ["editor@example.org", "desk@example.org"]   # who gets "send a test" when no address is given

Each test goes through the normal message path — the same personalization, headers, DKIM signature and
sink (`[smtp] url`, else `outbox/<date>/test/`) — with a Message-ID of its own, and never touches the
edition's ledger: a seed who is also a reader still gets the real morning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from ..config import CONFIG_FILE, Settings
from ..edition import languages_present, read_window
from ..errors import ConfigError, SubscriberError
from .addresses import check_address
from .send import send_test

MAX_SEEDS = 50  # a seed list is a few editors' inboxes, not a mailing


def seed_list(settings: Settings) -> list[str]:
    """`[desk] seeds`, checked: one clear line naming the key and the bad address."""
    raw = settings.section("desk").get("seeds", [])
    where = f"{CONFIG_FILE if settings.config_file else 'settings'}: [desk] seeds"
    if isinstance(raw, str):
        raw = [part for part in raw.replace(";", ",").split(",") if part.strip()]  # from the environment
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise ConfigError(f"{where} must be a list of addresses, got {raw!r}")
    if len(raw) > MAX_SEEDS:
        raise ConfigError(f"{where} must hold at most {MAX_SEEDS} addresses, got {len(raw)}")
    seeds = []
    for address in raw:
        try:
            seeds.append(check_address(address.strip()))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return seeds


def send_tests(
    settings: Settings, day: date | None, to: Sequence[str] = (), *, languages: Sequence[str] = ()
) -> list[str]:
    """Mail each language edition (or `languages`) of `day` to `to`, else to the seed list; one line each."""
    addresses = list(to) or seed_list(settings)
    if not addresses:
        raise SubscriberError("no address to send a test to: give --to ADDRESS or set [desk] seeds")
    for address in addresses:
        try:
            check_address(address)
        except ValueError as exc:
            raise SubscriberError(f"--to: {exc}") from None
    chosen = list(languages)
    if not chosen:  # every language edition that has stories of its own that day
        loaded, the_day = read_window(settings, day)
        chosen = list(languages_present(settings, the_day, loaded.stories)[0])
        day = the_day
    lines = []
    for lang in chosen:
        edition = settings.for_language(lang) if settings.multilingual else settings
        for address in addresses:
            lines.append(send_test(edition, day, address))
    return lines
