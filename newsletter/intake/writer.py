"""Items → story files, and the small state that makes importing idempotent.

The state (`data/intake.sqlite`, git-ignored) remembers, per story file written, the identity it came
from (feed GUID and/or canonical URL) and a digest of what was written; per source, the ETag,
Last-Modified and a fingerprint of the last document imported. Nothing of it goes into the story files,
which stay plain stories an editor may change.

A story's file is chosen once — `stories/<yyyy>/<mm>/<dd>/<slug>.md` by its published date in the
newsletter's time zone — and kept: a changed entry rewrites the same file (unless told not to), a
different story with the same slug gets `<slug>-2`, never someone else's file. A file the editor
deleted stays deleted. If the state is lost, a file already holding the same URL is recognised and
adopted rather than duplicated.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import Settings
from ..errors import IntakeError
from .convert import clip, slugify
from .item import Item

STATE_FILE = Path("data") / "intake.sqlite"
# libyaml's emitter when PyYAML was built with it: the same output, twenty times faster than pure Python.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
MAX_TAGS = 12

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (
    path TEXT PRIMARY KEY,          -- under the stories folder, with '/' separators
    guid TEXT,
    url TEXT,
    digest TEXT NOT NULL,           -- sha256 of the file as last written by an import
    source TEXT NOT NULL,
    imported_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE UNIQUE INDEX IF NOT EXISTS stories_guid ON stories(guid) WHERE guid IS NOT NULL;
CREATE INDEX IF NOT EXISTS stories_url ON stories(url) WHERE url IS NOT NULL;
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,        -- a URL, or the absolute path of a file
    etag TEXT,
    last_modified TEXT,
    fingerprint TEXT,               -- sha256 of the document and the options it was imported with
    items INTEGER NOT NULL DEFAULT 0,
    checked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
"""


def state_path(settings: Settings) -> Path:
    return settings.root / STATE_FILE


@dataclass(frozen=True)
class Record:
    path: str
    guid: str | None
    url: str | None
    digest: str


@dataclass(frozen=True)
class SourceState:
    etag: str | None
    last_modified: str | None
    fingerprint: str | None
    items: int


class State:
    """The SQLite state. Writes happen in one transaction per source (`begin` … `commit`), which also keeps
    two imports running at once from both creating the same story."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        if readonly and not path.exists():
            # A dry run must not create data/ either: an empty in-memory state answers the same questions.
            self._db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            try:
                if not readonly:
                    path.parent.mkdir(parents=True, exist_ok=True)
                uri = path.resolve().as_uri() + ("?mode=ro" if readonly else "")
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60)
            except (OSError, sqlite3.Error) as exc:
                raise IntakeError(f"{path}: cannot open the import state ({exc})") from None
        try:
            if not readonly or not path.exists():
                self._db.executescript(_SCHEMA)
            else:
                self._db.execute("SELECT count(*) FROM stories").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IntakeError(f"{path}: not a usable import state ({exc}); move it away to start afresh") from None

    def close(self) -> None:
        self._db.close()

    def begin(self) -> None:
        if not self.readonly:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise IntakeError(f"{self.path}: {exc} (is another import running?)") from None

    def commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def find(self, guid: str | None, url: str | None) -> Record | None:
        """The story an item already has: by GUID; else by URL, among stories without a different GUID."""
        row = None
        if guid:
            row = self._db.execute("SELECT path, guid, url, digest FROM stories WHERE guid = ?", (guid,)).fetchone()
        if row is None and url:
            row = self._db.execute(
                "SELECT path, guid, url, digest FROM stories WHERE url = ? AND (guid IS NULL OR ? IS NULL) LIMIT 1",
                (url, guid),
            ).fetchone()
        return Record(*row) if row else None

    def taken(self, path: str) -> bool:
        return self._db.execute("SELECT 1 FROM stories WHERE path = ?", (path,)).fetchone() is not None

    def record(self, path: str, guid: str | None, url: str | None, digest: str, source: str) -> None:
        if self.readonly:
            return
        self._db.execute(
            "INSERT INTO stories (path, guid, url, digest, source) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET guid = coalesce(excluded.guid, guid), url = coalesce(excluded.url, url), "
            "digest = excluded.digest, source = excluded.source, imported_at = excluded.imported_at",
            (path, guid, url or None, digest, source),
        )

    def source(self, key: str) -> SourceState | None:
        row = self._db.execute(
            "SELECT etag, last_modified, fingerprint, items FROM sources WHERE source = ?", (key,)
        ).fetchone()
        return SourceState(*row) if row else None

    def save_source(
        self, key: str, *, etag: str | None, last_modified: str | None, fingerprint: str | None, items: int
    ) -> None:
        if self.readonly:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO sources (source, etag, last_modified, fingerprint, items) VALUES (?, ?, ?, ?, ?)",
            (key, etag, last_modified, fingerprint, items),
        )


# --- story files ------------------------------------------------------------------------------------


def render_front(item: Item, *, section: str | None = None, default_section: str | None = None) -> str:
    """The front matter block of `item`'s story file, '---' lines included.

    The section: `section` when given (the import's or the feed's own setting), else the one the source
    states, else `default_section`, else none (the story's default)."""
    front: dict[str, Any] = {"title": item.title, "published": item.published.isoformat()}
    if item.summary:
        front["summary"] = item.summary
    chosen = section or item.section or default_section or ""
    if chosen:
        front["section"] = clip(chosen, 80)
    if item.url:
        front["url"] = item.url
    if item.byline:
        front["byline"] = item.byline
    if item.image:
        image = {"src": item.image.src, "alt": item.image.alt}
        if item.image.credit:
            image["credit"] = item.image.credit
        front["image"] = image
    tags = [t for t in dict.fromkeys(item.categories) if len(t) <= 80][:MAX_TAGS]
    if tags:
        front["tags"] = tags
    if item.lang:
        front["lang"] = item.lang
    head = yaml.dump(front, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=110, default_flow_style=False)
    return f"---\n{head}---\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_path(item: Item, settings: Settings, state: State, claimed: set[str]) -> tuple[str, bool]:
    """A free path under the stories folder for a new story, and whether it is an existing file to adopt.

    Adopting: the file exists, no recorded story owns it, and it holds the same URL — the same story
    written by an import whose state was lost.
    """
    day = item.published.astimezone(settings.timezone)
    slug = slugify(item.title) or slugify(item.url.rstrip("/").rsplit("/", 1)[-1]) or "story"
    folder = f"{day:%Y}/{day:%m}/{day:%d}"
    for n in range(1, 10_000):
        rel = f"{folder}/{slug if n == 1 else f'{slug}-{n}'}.md"
        if rel in claimed or state.taken(rel):
            continue
        path = settings.stories_dir / rel
        if not path.exists():
            return rel, False
        if item.url and _front_url(path) == item.url:
            return rel, True
    raise IntakeError(f"{item.origin}: no free file name for slug {slug!r} in stories/{folder}")


def _front_url(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---", text, re.S)
    if not match:
        return None
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return meta.get("url") if isinstance(meta, dict) and isinstance(meta.get("url"), str) else None
