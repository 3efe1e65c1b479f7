"""`[intake]` in newsletter.toml, read once into `IntakeOptions`: the feeds the morning imports and how
they are fetched.

    [intake]
    timeout = 20                 # seconds per fetch (0.05-600)
    max_mb = 5                   # a larger document is refused (0.001-1000)
    user_agent = "…"             # default: names the newsletter's base_url
    section = "Local"            # for stories whose source names no section

    [[intake.feeds]]
    url = "https://example.org/feed.xml"   # or a file in the newsletter folder
    section = "World"                      # optional: the section of this feed's stories
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import ConfigError
from ..options import Options, Table, check_number
from .fetch import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT

_FEED_KEYS = {"url", "section"}
_INTAKE_KEYS = {"feeds", "timeout", "max_mb", "user_agent", "section"}


@dataclass(frozen=True)
class FeedSource:
    url: str  # a URL, or a file path (relative to the newsletter folder in the config)
    section: str | None = None


@dataclass(frozen=True)
class IntakeOptions:
    feeds: tuple[FeedSource, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    user_agent: str | None = None
    section: str | None = None  # for stories whose source names no section


def intake_options(settings: Settings) -> IntakeOptions:
    """The `[intake]` options of `settings`: `settings.options(INTAKE)`, read once per settings."""
    return settings.options(INTAKE)


def parse_intake(table: Table) -> IntakeOptions:
    """The `[intake]` table, checked: every problem is one ConfigError line naming the file and the key."""
    where = f"{table.origin} [intake]"  # the lines read as they always did: `newsletter.toml [intake]: 'timeout' …`
    unknown = sorted(set(table.values) - _INTAKE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(_INTAKE_KEYS))})")
    feeds_raw = table.get("feeds", [])
    if isinstance(feeds_raw, dict):
        feeds_raw = [feeds_raw]
    if not isinstance(feeds_raw, list):
        raise ConfigError(f"{where}: 'feeds' must be a list of tables: [[intake.feeds]] url = \"…\"")
    feeds = tuple(_feed(f"{table.origin} [[intake.feeds]] #{n}", raw) for n, raw in enumerate(feeds_raw, 1))
    timeout = check_number(table.get("timeout", DEFAULT_TIMEOUT), f"{where}: 'timeout' (seconds)", 0.05, 600)
    max_mb = check_number(table.get("max_mb", DEFAULT_MAX_BYTES / 1_000_000), f"{where}: 'max_mb'", 0.001, 1000)
    agent = table.get("user_agent")
    if agent is not None and (not isinstance(agent, str) or not agent.strip() or "\n" in agent):
        raise ConfigError(f"{where}: 'user_agent' must be one line of text")
    section = table.get("section")
    if section is not None and (not isinstance(section, str) or not section.strip()):
        raise ConfigError(f"{where}: 'section' must be a section name")
    return IntakeOptions(feeds, timeout, int(max_mb * 1_000_000), agent, section.strip() if section else None)


def _feed(at: str, raw: Any) -> FeedSource:
    if not isinstance(raw, dict):
        raise ConfigError(f'{at}: must be a table with url = "…"')
    extra = sorted(set(raw) - _FEED_KEYS)
    if extra:
        raise ConfigError(f"{at}: unknown key '{extra[0]}' (known: url, section)")
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{at}: 'url' is required: a feed URL or a file in the newsletter folder")
    section = raw.get("section")
    if section is not None and (not isinstance(section, str) or not section.strip()):
        raise ConfigError(f"{at}: 'section' must be a section name")
    return FeedSource(url.strip(), section.strip() if section else None)


INTAKE = Options("intake", parse_intake)
