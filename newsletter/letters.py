"""Several newsletters on one reader base: the `[newsletters.<id>]` tables, read once into typed options.

In: the settings (`[newsletters]` is an open table of `config.py`). Out: `Newsletter` per table, and
`for_newsletter(settings, letter)`, the settings that build and send that newsletter, so every stage
downstream (edition, delivery, web, schedule) stays written for "the settings" and learns nothing new.

Without any `[newsletters.<id>]` table the single `[list]` form is one newsletter, `default_newsletter_id`,
whose settings are the loaded ones unchanged (same outbox, ledgers and archive as ever).

    [newsletters.weekly]
    name = "The Weekly"
    rhythm = "weekly"            # daily | weekly | on-demand
    day = "sunday"               # weekly: the edition's day
    at = "08:00"                 # the send time; the edition's window ends at it
    sections = ["Culture"]       # which stories: folders, sections, tags, min_priority (all optional)
    public = true                # offered on the sign-up form and in the archive's front page
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from .config import (
    ListSettings,
    Sender,
    Settings,
    StorySelection,
    default_newsletter_id,
    primary_language,
    subject_pattern,
)
from .errors import ConfigError
from .options import Options, Table

RHYTHMS = ("daily", "weekly", "on-demand")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KEYS = {
    "name",
    "description",
    "sender_name",
    "sender_address",
    "subject",
    "languages",
    "list_id",
    "list_address",
    "templates",
    "palette",
    "folders",
    "sections",
    "tags",
    "min_priority",
    "rhythm",
    "at",
    "day",
    "public",
    "welcome_template",
    "alert_template",
}
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_SHORT_TEXT = 200


@dataclass(frozen=True)
class Newsletter:
    """One newsletter: who sends it, what it takes, when it goes, who may see it."""

    id: str
    name: str
    description: str = ""
    sender_name: str = ""  # empty: the newsletter's name
    sender_address: str = ""  # empty: `[sender] address`
    subject: str = ""  # empty: the top-level `subject`
    languages: tuple[str, ...] = ()  # empty: `[list] languages`
    list_id: str = ""  # the List-Id (RFC 2919); empty: "<id>." + the domain of `[list] id`
    list_address: str = ""  # the list copy's To; empty: "<id>@" + the domain of `[list] address`
    templates: Path | None = None  # a folder searched before `[paths] templates`
    palette: Path | None = None  # a file standing in for palette.j2
    selection: StorySelection = field(default_factory=StorySelection)
    rhythm: str = "daily"
    at: time | None = None  # daily/weekly: the send time (and the window's end); None: `cutoff`
    day: int | None = None  # weekly: 0 = Monday
    public: bool = True
    welcome_template: str = ""  # a template name under the templates: the welcome email on confirmation
    alert_template: str = "alert.mjml.j2"  # the layout of a one-story alert (`newsletter alert`)
    configured: bool = True  # False for the newsletter a single `[list]` configuration is

    @property
    def on_demand(self) -> bool:
        return self.rhythm == "on-demand"


@dataclass(frozen=True)
class NewslettersOptions:
    """Every `[newsletters.<id>]` table, in the file's order (empty: the single `[list]` form)."""

    tables: tuple[Newsletter, ...] = ()


def parse_newsletters(table: Table) -> NewslettersOptions:
    found: list[Newsletter] = []
    for key, value in table.values.items():
        if not isinstance(value, dict):
            table.fail(key, f"must be a table [newsletters.{key}], got {value!r}")
        if not _ID.fullmatch(key):
            raise ConfigError(
                f"{table.origin}: [newsletters.{key}]: a newsletter id is lower-case letters, digits and '-' "
                "(at most 40), starting with a letter or digit"
            )
        found.append(_parse_one(Table(f"newsletters.{key}", value, table.origin, table.root), key))
    return NewslettersOptions(tuple(found))


def _parse_one(table: Table, key: str) -> Newsletter:
    table.only(KEYS)
    rhythm = table.text("rhythm", "daily")
    if rhythm not in RHYTHMS:
        table.fail("rhythm", f"must be one of {', '.join(RHYTHMS)}, got {rhythm!r}")
    day_name = table.text("day", "monday" if rhythm == "weekly" else "").lower()
    if rhythm == "weekly" and day_name not in WEEKDAYS:
        table.fail("day", f"must be a day of the week like sunday, got {day_name!r}")
    if rhythm != "weekly" and "day" in table.values:
        table.fail("day", 'is for a weekly newsletter (rhythm = "weekly")')
    return Newsletter(
        id=key,
        name=_line(table, "name", key),
        description=_line(table, "description", ""),
        sender_name=_line(table, "sender_name", ""),
        sender_address=_address(table, "sender_address"),
        subject=_line(table, "subject", ""),
        languages=_words(table, "languages"),
        list_id=_list_id(table),
        list_address=_address(table, "list_address"),
        templates=_optional_path(table, "templates", "a folder"),
        palette=_optional_path(table, "palette", "a file path"),
        selection=StorySelection(
            folders=tuple(f.strip("/") for f in _words(table, "folders")),
            sections=_words(table, "sections"),
            tags=_words(table, "tags"),
            min_priority=table.whole("min_priority", 0, -1000, 1000) if "min_priority" in table.values else None,
        ),
        rhythm=rhythm,
        at=_time(table),
        day=WEEKDAYS.index(day_name) if rhythm == "weekly" else None,
        public=table.flag("public", True),
        welcome_template=_line(table, "welcome_template", ""),
        alert_template=_line(table, "alert_template", "alert.mjml.j2"),
    )


def _line(table: Table, key: str, default: str) -> str:
    text = table.text(key, default).strip()
    if "\r" in text or "\n" in text or len(text) > _SHORT_TEXT:
        table.fail(key, f"must be one line of at most {_SHORT_TEXT} characters")
    return text


def _words(table: Table, key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):  # from the environment: a,b,c
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        table.fail(key, f'must be a list of names like ["a", "b"], got {value!r}')
    return tuple(v.strip() for v in value)


def _address(table: Table, key: str) -> str:
    text = _line(table, key, "")
    if not text:
        return ""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        table.fail(key, f"must be an email address, got {text!r} ({exc})")


def _list_id(table: Table) -> str:
    text = _line(table, "list_id", "")
    if text and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+", text):
        table.fail("list_id", f"must be a dotted name like weekly.news.example.org, got {text!r}")
    return text


def _optional_path(table: Table, key: str, what: str) -> Path | None:
    return table.path(key, "", what=what) if key in table.values else None


def _time(table: Table) -> time | None:
    if "at" not in table.values:
        return None
    text = table.text("at")
    try:
        if not re.fullmatch(r"\d{2}:\d{2}", text):
            raise ValueError
        return time.fromisoformat(text)
    except ValueError:
        table.fail("at", f"must be a 24-hour time HH:MM, got {text!r}")


NEWSLETTERS = Options("newsletters", parse_newsletters)


def newsletters(settings: Settings) -> tuple[Newsletter, ...]:
    """Every newsletter of the configuration: the `[newsletters.<id>]` tables, or the single `[list]` one."""
    tables = settings.options(NEWSLETTERS).tables
    if tables:
        return tables
    return (Newsletter(id=default_newsletter_id(settings), name=settings.title, configured=False),)


def find_newsletter(settings: Settings, wanted: str) -> Newsletter:
    """The newsletter called `wanted`; a ConfigError listing the known ones otherwise."""
    letters = newsletters(settings)
    for letter in letters:
        if letter.id == wanted:
            return letter
    raise ConfigError(f"no newsletter '{wanted}' (known: {', '.join(letter.id for letter in letters)})")


def chosen_settings(settings: Settings, wanted: str | None, *, scheduled_only: bool = False) -> list[Settings]:
    """The settings of newsletter `wanted`, or of every newsletter (on-demand ones left out with
    `scheduled_only`: they go out through `newsletter alert`)."""
    if wanted:
        return [for_newsletter(settings, find_newsletter(settings, wanted))]
    letters = newsletters(settings)
    return [for_newsletter(settings, letter) for letter in letters if not (scheduled_only and letter.on_demand)]


def default_settings(settings: Settings) -> Settings:
    """The settings of the default newsletter (`default_newsletter_id`): its table's when it has one."""
    whole = settings.whole or settings
    wanted = default_newsletter_id(whole)
    return next((for_newsletter(whole, n) for n in newsletters(whole) if n.id == wanted), whole)


def for_newsletter(settings: Settings, letter: Newsletter) -> Settings:
    """The settings that build and send `letter`: its name, sender, List-Id, languages, stories and
    rhythm over the shared ones. The default newsletter keeps the outbox and ledger names it always had;
    another one writes under `outbox/<id>/` and prefixes its ledgers with `<id>.`."""
    settings = settings.whole or settings
    if not letter.configured:
        return settings
    origin = f"{settings.config_file.name if settings.config_file else 'settings'}: [newsletters.{letter.id}]"
    default = letter.id == default_newsletter_id(settings)
    changes: dict[str, Any] = {
        "newsletter": letter.id,
        "file_prefix": "" if default else f"{letter.id}.",
        "title": letter.name,
        "tagline": letter.description or settings.tagline,
        "sender": _sender(settings.sender, letter),
        "list": _list(settings.list, letter, default),
        "selection": letter.selection,
        "public": letter.public,
        "outbox_dir": settings.outbox_dir if default else settings.outbox_dir / letter.id,
        "template_dirs": (letter.templates,) if letter.templates else (),
        "template_files": (("palette.j2", letter.palette),) if letter.palette else (),
        "parsed": {},
        "whole": settings,
    }
    if letter.subject:
        changes["subject"] = subject_pattern(letter.subject, "subject", origin)
        changes["subjects"] = {}
    if letter.at is not None:
        changes["cutoff"] = letter.at
    if letter.rhythm == "weekly":
        changes.update(window_days=7, weekday=letter.day)
    if letter.languages:
        changes.update(_languages(settings, letter, origin))
    return replace(settings, **changes)


def alert_settings(settings: Settings, letter: Newsletter, story_id: str, title: str, template: Path) -> Settings:
    """The settings of an alert of `letter`: an edition of the one story `story_id`, laid out by `template`
    (standing in for newsletter.mjml.j2), its Subject the newsletter's name and the story's title, its
    ledger and outbox its own (`<id>+<story digest>.<date>`, `outbox/<id>/alerts/<story>/`): a rerun
    resumes it, and a story alerted once is never alerted again."""
    base = for_newsletter(settings, letter)
    digest = hashlib.sha256(story_id.encode("utf-8")).hexdigest()[:12]
    escaped = " ".join(title.split()).replace("{", "{{").replace("}", "}}")
    return replace(
        base,
        file_prefix=f"{letter.id}+{digest}.",
        outbox_dir=(base.whole or settings).outbox_dir / letter.id / "alerts" / digest,
        selection=StorySelection(only=(story_id,)),
        subject=f"{{title}}: {escaped}",
        subjects={},
        template_files=(*base.template_files, ("newsletter.mjml.j2", template)),
        parsed={},
    )


def _sender(base: Sender, letter: Newsletter) -> Sender:
    # Readers see the newsletter's name in their inbox unless the table names another sender.
    return Sender(letter.sender_name or letter.name, letter.sender_address or base.address, base.reply_to)


def _list(base: ListSettings, letter: Newsletter, default: bool) -> ListSettings:
    """The newsletter's List-Id and list address: its own `list_id`/`list_address`; the default newsletter
    keeps `[list]`'s; another one is `<id>.` + the domain of `[list] id` (`weekly.newsletter.example.org`)
    and `<id>@` + the domain of `[list] address`."""
    if default:
        return replace(base, id=letter.list_id or base.id, address=letter.list_address or base.address)
    domain = base.id.split(".", 1)[1] if "." in base.id else base.id
    address = letter.list_address or f"{letter.id}@{base.address.rpartition('@')[2]}"
    # Its unsubscribe links are its own (`/u/<id>/<token>`): they end this subscription only.
    url = base.unsubscribe_url.rstrip("/") + f"/{letter.id}/"
    return replace(base, id=letter.list_id or f"{letter.id}.{domain}", address=address, unsubscribe_url=url)


def _languages(settings: Settings, letter: Newsletter, origin: str) -> dict[str, Any]:
    unknown = [lang for lang in letter.languages if lang not in settings.languages]
    if unknown:
        raise ConfigError(
            f"{origin} languages: {unknown[0]!r} is not one of [list] languages ({', '.join(settings.languages)})"
        )
    first = letter.languages[0]
    same = primary_language(settings.locale) == primary_language(first)
    return {"languages": letter.languages, "language": first, "locale": settings.locale if same else first}


__all__ = [
    "NEWSLETTERS",
    "Newsletter",
    "NewslettersOptions",
    "alert_settings",
    "chosen_settings",
    "default_settings",
    "find_newsletter",
    "for_newsletter",
    "newsletters",
]
