"""Staff accounts of the desk: a name, a role, a password hashed with Argon2id, a language.

Roles: `editor` arranges, tests and approves editions; `admin` also manages users and settings. There is
no default account and no default password: `newsletter desk add-user NAME --role …` makes the first one.
Passwords are hashed with argon2-cffi's `PasswordHasher` (Argon2id, RFC 9106's parameters); a hash made
with older parameters is renewed at the next sign-in. An account may have no password at all: it signs
in only through the trusted single sign-on header.

Users live in the `desk_users` table of `data/desk.sqlite` (or PostgreSQL, migration 0005).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ...config import Settings
from ...editorial import open_desk
from ...storage import Database, RecordStore, open_sqlite

ROLES = ("editor", "admin")
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS desk_users (
    name       TEXT PRIMARY KEY,          -- lower case
    role       TEXT NOT NULL CHECK (role IN ('editor', 'admin')),
    password   TEXT NOT NULL DEFAULT '',  -- an Argon2id hash, or '' (single sign-on only)
    language   TEXT NOT NULL DEFAULT '',  -- the desk's language for this person ('' = the browser's)
    active     INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

_HASHER = PasswordHasher()  # Argon2id; argon2-cffi's defaults follow RFC 9106's recommendation
# Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _HASHER.hash("not a password of anyone")


class AccountError(ValueError):
    """A name, role or password that cannot be used; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    language: str = ""
    active: bool = True
    has_password: bool = True
    created_at: str = ""

    def can(self, role: str) -> bool:
        """May this user do what `role` may? An admin may do everything an editor may."""
        return self.active and (self.role == "admin" or role == self.role or role == "")


def clean_name(raw: str) -> str:
    name = raw.strip().lower()
    if not NAME.fullmatch(name):
        raise AccountError(
            "a user name is 1 to 64 of a-z, 0-9 and . _ @ -, starting with a letter or digit, got " + repr(raw[:80])
        )
    return name


def check_password(password: str, minimum: int) -> str:
    """`password` when it is long enough; AccountError otherwise (never an empty one)."""
    if not password.strip():
        raise AccountError("the password is empty")
    if len(password) < minimum:
        raise AccountError(f"the password is too short: at least {minimum} characters")
    if len(password) > 1024:
        raise AccountError("the password is too long: at most 1024 characters")
    return password


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _user(row: tuple[Any, ...]) -> User:
    name, role, password, language, active, created = row
    return User(str(name), str(role), str(language), bool(int(active)), bool(password), str(created))


class UserStore(RecordStore):
    """The desk's accounts (`source`: the SQLite file, or an open `Database`)."""

    def __init__(self, source: Path | Database) -> None:
        self.db = source if isinstance(source, Database) else open_sqlite("the desk users", source, schema=SCHEMA)

    def get(self, name: str) -> User | None:
        row = self.db.one(
            "SELECT name, role, password, language, active, created_at FROM desk_users WHERE name = ?",
            (name.strip().lower(),),
        )
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        rows = self.db.query("SELECT name, role, password, language, active, created_at FROM desk_users ORDER BY name")
        return [_user(row) for row in rows]

    def add(self, name: str, role: str, password: str, *, minimum: int = 12, language: str = "") -> bool:
        """Create the account, or set the role and password of an existing one; True when it is new.
        An empty `password` is refused unless the account is for single sign-on (`password=None` is not
        accepted here: use `add_sso`)."""
        name = clean_name(name)
        if role not in ROLES:
            raise AccountError(f"the role must be one of {', '.join(ROLES)}, got {role!r}")
        hashed = _HASHER.hash(check_password(password, minimum))
        return self._put(name, role, hashed, language)

    def add_sso(self, name: str, role: str, *, language: str = "") -> bool:
        """An account without a password: it signs in only through the trusted header."""
        name = clean_name(name)
        if role not in ROLES:
            raise AccountError(f"the role must be one of {', '.join(ROLES)}, got {role!r}")
        return self._put(name, role, "", language)

    def _put(self, name: str, role: str, hashed: str, language: str) -> bool:
        now = _now()
        row = {"name": name, "role": role, "password": hashed, "language": language, "active": 1,
               "created_at": now, "updated_at": now}  # fmt: skip
        with self.db.transaction() as db:
            if db.upsert("desk_users", row, ("name",)) == 1:
                return True
            db.execute(
                "UPDATE desk_users SET role = :role, password = :password, active = 1, updated_at = :updated_at "
                "WHERE name = :name",
                row,
            )
            return False

    def set_role(self, name: str, role: str) -> bool:
        if role not in ROLES:
            raise AccountError(f"the role must be one of {', '.join(ROLES)}, got {role!r}")
        sql = "UPDATE desk_users SET role = ?, updated_at = ? WHERE name = ?"
        return self.db.execute(sql, (role, _now(), name)) == 1

    def set_active(self, name: str, active: bool) -> bool:
        sql = "UPDATE desk_users SET active = ?, updated_at = ? WHERE name = ?"
        return self.db.execute(sql, (1 if active else 0, _now(), name)) == 1

    def set_language(self, name: str, language: str) -> bool:
        sql = "UPDATE desk_users SET language = ?, updated_at = ? WHERE name = ?"
        return self.db.execute(sql, (language, _now(), name)) == 1

    def admins(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM desk_users WHERE role = 'admin' AND active = 1") or 0)

    def verify(self, name: str, password: str) -> User | None:
        """The active user when `password` is theirs, else None (in about the same time either way)."""
        key = name.strip().lower()
        row = self.db.one("SELECT password FROM desk_users WHERE name = ? AND active = 1", (key,))
        hashed = str(row[0]) if row is not None and row[0] else ""
        try:
            _HASHER.verify(hashed or _DUMMY, password[:1024])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if not hashed:
            return None
        if _HASHER.check_needs_rehash(hashed):
            sql = "UPDATE desk_users SET password = ?, updated_at = ? WHERE name = ?"
            self.db.execute(sql, (_HASHER.hash(password), _now(), key))
        return self.get(key)


def open_users(settings: Settings) -> UserStore:
    """The accounts the settings name (SQLite `data/desk.sqlite`, or PostgreSQL with `database_url`)."""
    return UserStore(open_desk(settings, "the desk users", SCHEMA))
