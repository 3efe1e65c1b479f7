"""The reader base: one database for everything about readers, so a reader's record and the suppression
list are written in one transaction and can never disagree.

    subscribers      the reader: address, name, locale, time zone, overall status, pause, consent
    subscriptions    a reader's subscription to one newsletter, with its own status
    reader_events    the history: signed up, confirmed, unsubscribed (and how), bounced, complained, …
    suppression      addresses never to be mailed again; a forgotten reader's is kept as a hash
    reader_meta      one-time steps done on this base (the merge of an old suppression file)

SQLite: the subscriber store file (`[subscribers] path`, default `data/subscribers.sqlite`). A file from
before the reader base is rebuilt in place on open (one transaction; ids kept), and an old separate
suppression file is merged into it once (the old file is left as it was). PostgreSQL: the same tables,
from migration 0004.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
from pathlib import Path

from ..config import DEFAULT_NEWSLETTER
from ..errors import StorageError
from .adapter import Database, open_pg, open_sqlite

_log = logging.getLogger("newsletter.readers")

READER_STATUSES = ("pending", "confirmed", "unsubscribed", "bounced", "complained")
SUBSCRIPTION_STATUSES = ("pending", "confirmed", "unsubscribed")
EVENT_KINDS = (
    "signed_up",
    "confirmed",
    "unsubscribed",
    "bounced",
    "complained",
    "resubscribed",
    "updated",
    "paused",
    "forgotten",
)
VIAS = ("one-click", "page", "mailto", "operator", "import", "signup", "bounce", "complaint", "manage")

_SUBSCRIBERS = """
CREATE TABLE IF NOT EXISTS subscribers (
    id           INTEGER PRIMARY KEY,    -- insertion order: the "line" of a list, the send's paging key
    key          TEXT NOT NULL UNIQUE,   -- lower-cased address: what lookups compare
    email        TEXT NOT NULL,          -- as first given
    name         TEXT NOT NULL DEFAULT '',
    locale       TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained')),
    created_at   TEXT NOT NULL,
    confirmed_at TEXT,
    updated_at   TEXT NOT NULL,
    consent      TEXT,                   -- JSON of a Consent, or NULL
    timezone     TEXT NOT NULL DEFAULT '',  -- IANA name, or empty (the schedule's zone)
    paused_until TEXT                    -- ISO date: nothing is sent before it; NULL: not paused
);
"""

SCHEMA = (
    _SUBSCRIBERS
    + """
CREATE INDEX IF NOT EXISTS subscribers_status ON subscribers (status, id);
CREATE TABLE IF NOT EXISTS subscriptions (
    reader_key   TEXT NOT NULL,
    newsletter   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    confirmed_at TEXT,
    consent      TEXT,
    PRIMARY KEY (reader_key, newsletter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reader_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    reader_key  TEXT NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    newsletter  TEXT NOT NULL DEFAULT '',
    via         TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS reader_events_reader ON reader_events (reader_key, id);
CREATE TABLE IF NOT EXISTS suppression (
    key        TEXT PRIMARY KEY,   -- the address, lower-cased (or sha256:<hex> of it, once forgotten)
    address    TEXT NOT NULL,      -- as first recorded; empty once forgotten
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    diagnostic TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reader_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
)


def hashed_key(address: str) -> str:
    """What the suppression list keeps of a forgotten reader: `sha256:<hex of the lower-cased address>`."""
    return "sha256:" + hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def open_reader_base_file(path: Path, *, legacy: Path | None = None, newsletter: str = DEFAULT_NEWSLETTER) -> Database:
    """The reader base in the SQLite file `path`: created, or brought up to date in place; the old
    suppression file `legacy` (when it exists and is another file) merged once."""
    db = open_sqlite("the reader base", Path(path), schema="", names={"id": "id"})
    try:
        _upgrade_sqlite(db)
        with db.raw() as conn:
            conn.executescript(SCHEMA)
        backfill_subscriptions(db, newsletter)
        if legacy is not None and legacy.exists() and legacy.resolve() != Path(path).resolve():
            merge_suppression_file(db, legacy)
    except BaseException:
        db.close()
        raise
    return db


def open_reader_base_pg(url: str, *, newsletter: str = DEFAULT_NEWSLETTER, reconnect: float = 0.0) -> Database:
    """The reader base in PostgreSQL (migration 0004 made the tables)."""
    db = open_pg("the reader base", url, names={"id": "id"}, reconnect=reconnect)
    backfill_subscriptions(db, newsletter)
    return db


def _upgrade_sqlite(db: Database) -> None:
    """A subscriber store from before the reader base: its table rebuilt with the new status and columns,
    the rowids kept as ids (in one transaction; a crash leaves the old table whole)."""
    found = db.one("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'subscribers'")
    if found is None or "paused_until" in str(found[0]):
        return
    have = {str(r[1]) for r in db.query("SELECT * FROM pragma_table_info('subscribers')")}
    zone = "timezone" if "timezone" in have else "''"
    cols = "key, email, name, locale, status, created_at, confirmed_at, updated_at, consent"
    with db.transaction():
        db.execute("ALTER TABLE subscribers RENAME TO subscribers_before_readers")
        db.execute("DROP INDEX IF EXISTS subscribers_status")
        db.execute(_SUBSCRIBERS.replace("IF NOT EXISTS ", ""))
        db.execute(
            f"INSERT INTO subscribers (id, {cols}, timezone) "
            f"SELECT rowid, {cols}, {zone} FROM subscribers_before_readers ORDER BY rowid"
        )
        db.execute("DROP TABLE subscribers_before_readers")


def backfill_subscriptions(db: Database, newsletter: str) -> None:
    """Once per base: every confirmed reader without a subscription gets a confirmed one to `newsletter`
    (a store from before subscriptions existed keeps sending to the same readers)."""
    if db.one("SELECT 1 FROM reader_meta WHERE key = 'subscriptions_backfilled'") is not None:
        return
    reconcile(db)
    with db.transaction():
        db.execute(
            "INSERT INTO subscriptions (reader_key, newsletter, status, created_at, updated_at, confirmed_at, consent) "
            "SELECT s.key, :nl, s.status, s.created_at, s.updated_at, s.confirmed_at, s.consent FROM subscribers s "
            "WHERE s.status IN ('confirmed', 'pending') "
            "AND NOT EXISTS (SELECT 1 FROM subscriptions n WHERE n.reader_key = s.key) "
            "ON CONFLICT (reader_key, newsletter) DO NOTHING",
            {"nl": newsletter},
        )
        db.execute(
            "INSERT INTO reader_meta (key, value) VALUES ('subscriptions_backfilled', :nl) "
            "ON CONFLICT (key) DO NOTHING",
            {"nl": newsletter},
        )


def merge_suppression_file(db: Database, legacy: Path) -> int:
    """The rows of the old suppression file upserted into the base (the first reason kept), once: the
    merge is recorded in `reader_meta`. The old file is only read. How many rows were new."""
    done_key = f"merged:{legacy.resolve()}"
    if db.one("SELECT 1 FROM reader_meta WHERE key = ?", (done_key,)) is not None:
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"{legacy.resolve().as_uri()}?mode=ro", uri=True)) as src:
            have = {str(r[1]) for r in src.execute("SELECT * FROM pragma_table_info('suppression')")}
            extra = ", ".join(c if c in have else "''" for c in ("diagnostic", "message_id"))
            rows = src.execute(f"SELECT key, address, reason, source, created_at, {extra} FROM suppression").fetchall()
    except sqlite3.Error as exc:
        raise StorageError(
            f"{legacy}: the old suppression list cannot be merged into the reader base ({exc})"
        ) from None
    added = 0
    with db.transaction():
        for row in rows:
            added += db.execute(
                "INSERT INTO suppression (key, address, reason, source, created_at, diagnostic, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                tuple(row),
            )
        db.execute("INSERT INTO reader_meta (key, value) VALUES (?, ?)", (done_key, str(len(rows))))
    reconcile(db)
    _log.warning(
        "%s: merged %d suppressed address(es) (%d new) into the reader base %s; the old file is no longer read",
        legacy,
        len(rows),
        added,
        db.where,
    )
    return added


_STATUS_OF_REASON = (
    "CASE p.reason WHEN 'bounced' THEN 'bounced' WHEN 'complained' THEN 'complained' ELSE 'unsubscribed' END"
)


def reconcile(db: Database) -> int:
    """Readers the suppression list holds but the store still calls confirmed or pending (written before
    both lived in one base) take the status the list gives them; how many changed."""
    with db.transaction():
        changed = db.execute(
            f"UPDATE subscribers SET status = (SELECT {_STATUS_OF_REASON} FROM suppression p "
            "WHERE p.key = subscribers.key), updated_at = :now WHERE status IN ('confirmed', 'pending') "
            "AND key IN (SELECT key FROM suppression)",
            {"now": _now()},
        )
        db.execute(
            "UPDATE subscriptions SET status = 'unsubscribed', updated_at = :now WHERE status <> 'unsubscribed' "
            "AND reader_key IN (SELECT key FROM suppression)",
            {"now": _now()},
        )
    return changed


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
