"""Settings: defaults < `newsletter.toml` < `NEWSLETTER_*` environment < CLI flags, into one frozen object.

Environment variables name a key with `__` for nesting: `NEWSLETTER_TIMEZONE=Asia/Tokyo`,
`NEWSLETTER_SENDER__ADDRESS=news@example.com`. Secrets (SMTP password, unsubscribe secret) are never part
of the settings object: the code that needs one reads it from the environment at the moment of use, so a
settings dump can never leak it.

Sections other stages own (`[smtp]`, `[schedule]`, `[intake]`, `[preview]`, `[mailing]`…) are kept as plain
tables; each stage reads its own into a typed options object once, through `Settings.options()` (see
`options.py`).
"""

from __future__ import annotations

import copy
import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email

from .errors import ConfigError
from .options import Options, Table, check_number

T = TypeVar("T")

CONFIG_FILE = "newsletter.toml"
ENV_PREFIX = "NEWSLETTER_"

# The demo newsletter: everything a fresh checkout needs to build without a config file.
DEFAULTS: dict[str, Any] = {
    "title": "The Morning Brief",
    "tagline": "Essential international news, every morning",
    "locale": "en",
    "timezone": "Europe/Paris",
    "cutoff": "06:00",
    "base_url": "https://newsletter.example.org",
    "subject": "{title} — {date}",
    "html_budget_kb": 100,
    "excerpt_words": 150,
    "card_excerpt_words": 50,
    # reply_to: where readers' replies go (empty: to the sender address, no Reply-To header).
    "sender": {"name": "The Morning Brief", "address": "morning@newsletter.example.org", "reply_to": ""},
    "list": {
        "address": "morning-brief@newsletter.example.org",
        "id": "morning-brief.newsletter.example.org",
        "unsubscribe_url": "https://newsletter.example.org/u/",
        "unsubscribe_mailto": "",
        "languages": [],  # empty: one edition, in the language of `locale`
        "subject": {},  # per-language Subject patterns, e.g. fr = "{title} — {date}"
    },
    "paths": {"stories": "stories", "templates": "templates", "outbox": "outbox"},
    # Where records live: empty keeps SQLite files under data/; "postgresql://…" puts them in one
    # PostgreSQL database (the password from PGPASSWORD, never from this file).
    "database_url": "",
}
# Tables owned by later stages: free-form here, validated by the stage that reads them.
OPEN_SECTIONS = (
    "smtp",
    "schedule",
    "intake",
    "preview",
    "mailing",
    "bounces",
    "webhooks",
    "subscribers",
    "site",
    "web",
    "images",
    "dkim",
    "metrics",  # read by newsletter/metrics.py and the public app's /metrics
    "logging",  # read by the CLI when it sets up log lines
    "database",
    "desk",  # the editors' desk (newsletter/web/desk/options.py)
    "newsletters",  # several newsletters on one reader base: read by letters.py
)
# The id of the one newsletter a single `[list]` configuration sends (unless `[list] id` names another).
DEFAULT_NEWSLETTER = "daily"


@dataclass(frozen=True)
class Sender:
    name: str
    address: str
    reply_to: str = ""  # the Reply-To address; empty: none (replies go to the From address)


@dataclass(frozen=True)
class ListSettings:
    address: str
    id: str
    unsubscribe_url: str
    unsubscribe_mailto: str


@dataclass(frozen=True)
class StorySelection:
    """Which stories a newsletter takes (`[newsletters.<id>]`); empty: every story of its window."""

    folders: tuple[str, ...] = ()  # paths under the stories folder, e.g. "2016" or "samples/fr"
    sections: tuple[str, ...] = ()  # a story's `section`, compared without case
    tags: tuple[str, ...] = ()  # any one of them, without case
    min_priority: int | None = None
    only: tuple[str, ...] = ()  # these story ids and no other (an alert's one story)


@dataclass(frozen=True)
class Settings:
    root: Path
    title: str
    tagline: str
    locale: str
    timezone: ZoneInfo
    cutoff: time
    base_url: str
    subject: str
    html_budget: int  # bytes of HTML; Gmail clips above ~102 KB
    excerpt_words: int  # of the lead story's body
    card_excerpt_words: int  # of a card's body, shown only when the story has no summary
    sender: Sender
    list: ListSettings
    stories_dir: Path
    templates_dir: Path
    outbox_dir: Path
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config_file: Path | None = None
    # The list's language editions (`[list] languages`), the first being the default; `language` is the
    # one these settings render (see `for_language`).
    languages: tuple[str, ...] = ("en",)
    language: str = "en"
    subjects: Mapping[str, str] = field(default_factory=dict)
    database_url: str = ""
    # Each subsystem's options, read from its table on first use (`options`); shared by `for_language`
    # copies, whose tables are the same.
    parsed: dict[Options[Any], Any] = field(default_factory=dict, repr=False, compare=False)
    # The newsletter these settings build (`letters.for_newsletter`); a single `[list]` configuration is one
    # newsletter, `default_newsletter_id`. Another newsletter's ledgers and runs carry `file_prefix`
    # ("<id>."), so an install that grows a second newsletter keeps the files of its first.
    newsletter: str = DEFAULT_NEWSLETTER
    file_prefix: str = ""
    selection: StorySelection = field(default_factory=StorySelection)
    window_days: int = 1  # 7 for a weekly: the edition covers the week up to its cut-off
    weekday: int | None = None  # a weekly's edition day (0 = Monday): editions fall on it
    public: bool = True  # offered on the sign-up form, in the web archive; a private newsletter is neither
    # Templates of this newsletter: folders searched first, and single files standing in for a named
    # template ("palette.j2" → the newsletter's palette, "newsletter.mjml.j2" → an alert's layout).
    template_dirs: tuple[Path, ...] = ()
    template_files: tuple[tuple[str, Path], ...] = ()
    # The settings of the whole configuration these were derived from (None: these are they), so that
    # another newsletter's settings can be had from any newsletter's (`letters.for_newsletter`).
    whole: Settings | None = field(default=None, repr=False, compare=False)

    def section(self, name: str) -> dict[str, Any]:
        """A copy of an open table such as `[smtp]`; empty when absent."""
        return copy.deepcopy(dict(self.sections.get(name, {})))

    def table(self, name: str) -> Table:
        """The open table `name` with the checks a subsystem reads its options with (`options.Table`)."""
        origin = CONFIG_FILE if self.config_file else "settings"
        return Table(name, self.section(name), origin, self.root)

    def options(self, spec: Options[T]) -> T:
        """The options of a subsystem's table (`[mailing]` → `MailingOptions`), read once per settings."""
        if spec not in self.parsed:
            self.parsed[spec] = spec.parse(self.table(spec.section))
        found: T = self.parsed[spec]
        return found

    @property
    def multilingual(self) -> bool:
        """More than one language edition: outbox folders and ledgers then carry the language."""
        return len(self.languages) > 1

    @property
    def archive_prefix(self) -> str:
        """Where this edition's part of the web archive lives under base_url: '' for the default
        newsletter's first language, `/<lang>` for another language, under `/<newsletter>` for another
        newsletter."""
        letter = f"/{self.newsletter}" if self.file_prefix else ""
        return letter + (f"/{self.language}" if self.language != self.languages[0] else "")

    def edition_dir(self, day: date) -> Path:
        """`outbox/<date>/`, or `outbox/<date>/<lang>/` when the list has several language editions."""
        base = self.outbox_dir / day.isoformat()
        return base / self.language if self.multilingual else base

    def for_language(self, language: str) -> Settings:
        """These settings for one language edition: its locale (dates, numbers, catalogue) and Subject.

        The list's own `locale` is kept for the edition of its language (`en_GB` keeps British dates in
        the `en` edition); another edition uses its language tag as its locale.
        """
        if language not in self.languages:
            raise ConfigError(f"'{language}' is not one of [list] languages ({', '.join(self.languages)})")
        same = primary_language(self.locale) == primary_language(language)
        return replace(
            self,
            language=language,
            locale=self.locale if same else language,
            subject=self.subjects.get(language, self.subject),
        )


def default_newsletter_id(settings: Settings) -> str:
    """The id of the one newsletter a single `[list]` configuration sends: "daily", unless `[list] id`
    names another (an install that set its own List-Id keeps it as the newsletter's id)."""
    return DEFAULT_NEWSLETTER if settings.list.id == DEFAULTS["list"]["id"] else settings.list.id


def primary_language(tag: str) -> str:
    """`fr-CA` → `fr`, `zh_Hant_TW` → `zh`: the part of a language tag that picks an edition."""
    return tag.replace("_", "-").split("-", 1)[0].strip().lower()


def edition_language(tag: str | None, languages: tuple[str, ...]) -> str:
    """The edition for a reader's (or a story's) language tag: the exact one, else the same primary
    language (`fr-CA` → `fr`, `ar-EG` → `ar`), else the default (first) language. Never fails."""
    wanted = (tag or "").replace("_", "-").strip().lower()
    if wanted:
        for lang in languages:
            if lang.lower() == wanted:
                return lang
        primary = primary_language(wanted)
        for lang in languages:
            if primary_language(lang) == primary:
                return lang
    return languages[0]


def load_settings(
    root: str | Path = ".", overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the layered configuration for the newsletter folder `root`.

    `overrides` are CLI flags as dotted keys (`{"timezone": "UTC", "sender.name": "X"}`).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"--root {root}: not a directory")
    data = copy.deepcopy(DEFAULTS)
    config_file: Path | None = root / CONFIG_FILE
    if config_file is not None and config_file.is_file():
        try:
            file_data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{CONFIG_FILE}: {exc}") from None
        _merge(data, file_data, CONFIG_FILE, "")
    else:
        config_file = None
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        if _known_key(keys):
            _set(data, keys, value, f"environment {name}")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(data, dotted.split("."), value, f"--{dotted.replace('.', '-').replace('_', '-')}")
    return _build(root, data, config_file)


def _known_key(keys: list[str]) -> bool:
    if keys[0] in OPEN_SECTIONS:
        return len(keys) > 1
    node: Any = DEFAULTS
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return not isinstance(node, dict)


def _merge(target: dict[str, Any], source: Mapping[str, Any], origin: str, prefix: str) -> None:
    for key, value in source.items():
        dotted = f"{prefix}{key}"
        if not prefix and key in OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{key}' must be a table")
            target.setdefault(key, {}).update(value)
        elif key not in target:
            raise ConfigError(f"{origin}: unknown setting '{dotted}'")
        elif isinstance(target[key], dict) and dotted == "list.subject":
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{dotted}' must be a table of language = pattern")
            target[key] = dict(value)
        elif isinstance(target[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{dotted}' must be a table")
            _merge(target[key], value, origin, f"{dotted}.")
        else:
            target[key] = value


def _set(data: dict[str, Any], keys: list[str], value: Any, origin: str) -> None:
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{origin}: '{'.'.join(keys)}' is not a setting")
    default = node.get(keys[-1])
    if isinstance(value, str) and isinstance(default, bool):
        value = value.strip().lower() in ("1", "true", "yes", "on")
    elif isinstance(value, str) and isinstance(default, int):
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(f"{origin}: '{'.'.join(keys)}' must be a whole number, got {value!r}") from None
    node[keys[-1]] = value


def _build(root: Path, data: dict[str, Any], config_file: Path | None) -> Settings:
    origin = CONFIG_FILE if config_file else "settings"
    tz, cutoff = _timezone(data["timezone"], origin), _cutoff(data["cutoff"], origin)
    locale = _text(data["locale"], "locale", origin)
    try:
        Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ConfigError(f"{origin}: 'locale': unknown locale {locale!r}") from None
    base_url = _text(data["base_url"], "base_url", origin).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise ConfigError(f"{origin}: 'base_url' must be an absolute http(s) URL, got {base_url!r}")
    subject = subject_pattern(_text(data["subject"], "subject", origin), "subject", origin)
    languages = _languages(data["list"]["languages"], locale, origin)
    if primary_language(locale) != primary_language(languages[0]):
        locale = languages[0]  # the first language's edition speaks it (dates, catalogue)
    subjects = _subjects(data["list"]["subject"], languages, origin)
    reply_to = _text(data["sender"]["reply_to"], "sender.reply_to", origin).strip()
    sender = Sender(
        _text(data["sender"]["name"], "sender.name", origin),
        _address(data["sender"]["address"], "sender.address", origin),
        _address(reply_to, "sender.reply_to", origin) if reply_to else "",
    )
    list_settings = _list_settings(data["list"], origin)
    title = _text(data["title"], "title", origin)
    if any(c in v for v in (sender.name, subject, *subjects.values(), title) for c in "\r\n"):
        raise ConfigError(f"{origin}: header values (title, subject, sender.name) must be one line")
    paths = {k: (root / _text(v, f"paths.{k}", origin)).resolve() for k, v in data["paths"].items()}
    settings = Settings(
        root=root,
        title=title,
        tagline=_text(data["tagline"], "tagline", origin),
        locale=locale,
        timezone=tz,
        cutoff=cutoff,
        base_url=base_url,
        subject=subject,
        html_budget=_whole(data["html_budget_kb"], "html_budget_kb", 10, 10_000, origin) * 1000,
        excerpt_words=_whole(data["excerpt_words"], "excerpt_words", 20, 100_000, origin),
        card_excerpt_words=_whole(data["card_excerpt_words"], "card_excerpt_words", 0, 100_000, origin),
        sender=sender,
        list=list_settings,
        stories_dir=paths["stories"],
        templates_dir=paths["templates"],
        outbox_dir=paths["outbox"],
        sections={k: data.get(k, {}) for k in OPEN_SECTIONS},
        config_file=config_file,
        languages=languages,
        language=languages[0],
        subjects=subjects,
        database_url=_database_url(data["database_url"], origin),
    )
    return replace(settings, newsletter=default_newsletter_id(settings))


def _text(value: Any, key: str, origin: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: '{key}' must be a string, got {value!r}")
    return value


def _whole(value: Any, key: str, low: int, high: int, origin: str) -> int:
    return int(check_number(value, f"{origin}: '{key}'", low, high, whole=True))


def _timezone(value: Any, origin: str) -> ZoneInfo:
    try:
        return ZoneInfo(_text(value, "timezone", origin))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{origin}: 'timezone': unknown time zone {value!r}") from None


def _cutoff(value: Any, origin: str) -> time:
    text = _text(value, "cutoff", origin)
    if not re.fullmatch(r"\d{2}:\d{2}", text):
        raise ConfigError(f"{origin}: 'cutoff' must be HH:MM, got {text!r}")
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{origin}: 'cutoff' must be HH:MM, got {text!r}") from None


def _subjects(value: Any, languages: tuple[str, ...], origin: str) -> dict[str, str]:
    """`[list.subject]`: a Subject pattern per language edition."""
    if not isinstance(value, dict):
        raise ConfigError(f"{origin}: 'list.subject' must be a table of language = pattern")
    subjects: dict[str, str] = {}
    for lang, pattern in value.items():
        if lang not in languages:
            raise ConfigError(f"{origin}: 'list.subject.{lang}': '{lang}' is not one of list.languages")
        key = f"list.subject.{lang}"
        subjects[lang] = subject_pattern(_text(pattern, key, origin), key, origin)
    return subjects


def _list_settings(lst: dict[str, Any], origin: str) -> ListSettings:
    list_settings = ListSettings(
        address=_address(lst["address"], "list.address", origin),
        id=_text(lst["id"], "list.id", origin),
        unsubscribe_url=_text(lst["unsubscribe_url"], "list.unsubscribe_url", origin),
        unsubscribe_mailto=_text(lst["unsubscribe_mailto"], "list.unsubscribe_mailto", origin),
    )
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+", list_settings.id):
        raise ConfigError(f"{origin}: 'list.id' must be a dotted name like news.example.org, got {lst['id']!r}")
    if not list_settings.unsubscribe_url.startswith("https://"):
        raise ConfigError(f"{origin}: 'list.unsubscribe_url' must be an https URL (RFC 8058)")
    return list_settings


def subject_pattern(pattern: str, key: str, origin: str) -> str:
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{origin}: '{key}': {exc}") from None
    # Only the two plain fields: attribute or index access ({title.__class__}) would reach into Python objects.
    if any(name not in ("title", "date") or conv for name, _spec, conv in fields):
        raise ConfigError(f"{origin}: '{key}': only {{title}} and {{date}} may appear, got {pattern!r}")
    return pattern


def _languages(value: Any, locale: str, origin: str) -> tuple[str, ...]:
    """`[list] languages`: language tags known to Babel, no two for the same language; default: `locale`'s."""
    if isinstance(value, str):  # NEWSLETTER_LIST__LANGUAGES=en,fr,ar
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{origin}: \'list.languages\' must be a list of language tags like ["en", "fr"]')
    if not value:
        return (primary_language(locale),)
    seen: dict[str, str] = {}
    for tag in value:
        try:
            Locale.parse(tag.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            raise ConfigError(f"{origin}: 'list.languages': unknown language {tag!r}") from None
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", tag):
            raise ConfigError(f"{origin}: 'list.languages': {tag!r} is not a language tag like fr or pt-BR")
        primary = primary_language(tag)
        if primary in seen:
            raise ConfigError(f"{origin}: 'list.languages': {seen[primary]!r} and {tag!r} are the same language")
        seen[primary] = tag
    return tuple(value)


def _database_url(value: Any, origin: str) -> str:
    """Empty (SQLite files) or a `postgresql://` URL; a password in it is refused (PGPASSWORD carries it)."""
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: 'database_url' must be a string, got {value!r}")
    url = value.strip()
    if not url:
        return ""
    if not re.match(r"postgres(ql)?://", url):
        raise ConfigError(f"{origin}: 'database_url' must start with postgresql:// (or be empty for SQLite files)")
    if re.match(r"postgres(ql)?://[^/@]*:[^/@]*@", url):
        raise ConfigError(f"{origin}: 'database_url' must not hold a password; set PGPASSWORD in the environment")
    return url


def _address(value: Any, key: str, origin: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: '{key}' must be an email address, got {value!r}")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ConfigError(f"{origin}: '{key}': {value!r} is not a valid address ({exc})") from None
