"""Opening the reader base the settings name: PostgreSQL when `database_url` is set, else the SQLite file
`[subscribers] path` (default `data/subscribers.sqlite`), brought up to date, with an older separate
suppression file (`[mailing] suppression`, default `data/suppression.sqlite`) merged into it once.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings, default_newsletter_id
from .adapter import reconnect_seconds
from .readerbase import open_reader_base_file, open_reader_base_pg
from .readers import ReaderBase
from .subscribers import store_location


def reader_base_path(settings: Settings) -> Path:
    """The SQLite file of the reader base: `[subscribers] path`, default `data/subscribers.sqlite`."""
    return store_location(settings.root, settings.section("subscribers").get("path"))


def legacy_suppression_path(settings: Settings) -> Path:
    """The separate suppression file of older versions (`[mailing] suppression`), merged once."""
    value = settings.section("mailing").get("suppression") or "data/suppression.sqlite"
    return (settings.root / str(value)).resolve()


def open_readers(settings: Settings) -> ReaderBase:
    """The reader base, speaking for the newsletter of `settings`: PostgreSQL when `database_url` is set,
    else the SQLite file (created, or brought up to date, with an old suppression file merged in once)."""
    # Existing confirmed readers are subscribed, once, to the default newsletter; the base then speaks for
    # the newsletter of `settings` (sign-ups, one-click, enrolment).
    first = default_newsletter_id(settings.whole or settings)
    if settings.database_url:
        db = open_reader_base_pg(settings.database_url, newsletter=first, reconnect=reconnect_seconds(settings))
    else:
        db = open_reader_base_file(
            reader_base_path(settings), legacy=legacy_suppression_path(settings), newsletter=first
        )
    return ReaderBase(db, settings.newsletter)


def upgrade_reader_base_file(settings: Settings) -> Path:
    """The SQLite reader base brought up to date (an old store rebuilt, an old suppression file merged),
    whatever `database_url` says: what `db migrate-from-sqlite` copies from. Its path."""
    path, legacy = reader_base_path(settings), legacy_suppression_path(settings)
    if path.exists() or legacy.exists():
        open_reader_base_file(path, legacy=legacy, newsletter=default_newsletter_id(settings)).close()
    return path
