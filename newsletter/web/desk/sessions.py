"""Signed-in sessions of the desk: a random id in a cookie, its SHA-256 in the store, an expiry.

A session is made at sign-in, with a new id every time (an id a visitor carried before signing in is
never promoted: no session fixation). It ends at `session_hours` after sign-in, after `idle_minutes`
without a request, at sign-out, or when its user is disabled. The store keeps only a hash of the id, so a
copy of `data/desk.sqlite` signs nobody in. Each session has its own CSRF token, which every form carries.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import Settings
from ...editorial import open_desk
from ...storage import Database, RecordStore, open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_sessions (
    id_hash    TEXT PRIMARY KEY,   -- SHA-256 of the cookie's value
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at REAL NOT NULL,      -- Unix seconds
    seen_at    REAL NOT NULL,
    expires_at REAL NOT NULL,
    via        TEXT NOT NULL DEFAULT 'password'   -- or 'header' (single sign-on)
);
CREATE INDEX IF NOT EXISTS desk_sessions_user ON desk_sessions (user_name);
"""


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    csrf: str
    created_at: float
    expires_at: float
    via: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SessionStore(RecordStore):
    """Sessions (`source`: the SQLite file, or an open `Database`). `lifetime` and `idle` in seconds."""

    def __init__(self, source: Path | Database, *, lifetime: float = 12 * 3600, idle: float = 3600) -> None:
        self.db = source if isinstance(source, Database) else open_sqlite("the desk sessions", source, schema=SCHEMA)
        self.lifetime = lifetime
        self.idle = idle

    def create(self, user: str, via: str = "password", now: float | None = None) -> tuple[str, Session]:
        """A new session for `user`: (the cookie's value, the session)."""
        now = time.time() if now is None else now
        session_id = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now, now + self.lifetime, via)
        self.db.execute(
            "INSERT INTO desk_sessions (id_hash, user_name, csrf, created_at, seen_at, expires_at, via) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_hash(session_id), user, session.csrf, now, now, session.expires_at, via),
        )
        # Sign-ins are rare: sweep what has ended while here.
        self.db.execute("DELETE FROM desk_sessions WHERE expires_at < ? OR seen_at < ?", (now, now - self.idle))
        return session_id, session

    def get(self, session_id: str, now: float | None = None) -> Session | None:
        """The live session of that cookie value (and its last-seen time moved on), else None."""
        if not session_id or len(session_id) > 100:
            return None
        now = time.time() if now is None else now
        row: tuple[Any, ...] | None = self.db.one(
            "SELECT user_name, csrf, created_at, seen_at, expires_at, via FROM desk_sessions WHERE id_hash = ?",
            (_hash(session_id),),
        )
        if row is None:
            return None
        user, csrf, created, seen, expires, via = row
        if now >= float(expires) or now - float(seen) >= self.idle:
            self.end(session_id)
            return None
        if now - float(seen) > 30:  # a write per half minute, not per request
            self.db.execute("UPDATE desk_sessions SET seen_at = ? WHERE id_hash = ?", (now, _hash(session_id)))
        return Session(str(user), str(csrf), float(created), float(expires), str(via))

    def end(self, session_id: str) -> None:
        self.db.execute("DELETE FROM desk_sessions WHERE id_hash = ?", (_hash(session_id),))

    def end_all(self, user: str) -> int:
        """Sign `user` out everywhere (disabled, or their password changed)."""
        return self.db.execute("DELETE FROM desk_sessions WHERE user_name = ?", (user,))


def open_sessions(settings: Settings, lifetime: float, idle: float) -> SessionStore:
    return SessionStore(open_desk(settings, "the desk sessions", SCHEMA), lifetime=lifetime, idle=idle)


def end_sessions(settings: Settings, user: str) -> int:
    """Sign `user` out of every session (their password changed, or they were disabled)."""
    with SessionStore(open_desk(settings, "the desk sessions", SCHEMA)) as store:
        return store.end_all(user)
