"""Subscriber lists, streamed: a CSV file with a header row, or a table in a SQLite file.

    subscribers.csv                 email,name,locale,timezone,… (a header row; other columns are ignored)
    subscribers.sqlite              the table `subscribers` (columns email, and optionally name, locale, timezone)
    subscribers.sqlite#members      another table
    (no list given)                 the subscriber store (`data/subscribers.sqlite`, or PostgreSQL with
                                    `database_url`): confirmed rows only, with their time zones

Rows are read one at a time, never the whole list, so a million subscribers cost no more memory than
ten. Each address is checked with email-validator (syntax only, no DNS): a bad row is reported with
the file, line and reason through `on_problem` and skipped. Duplicates are not caught here — that needs
a memory of every address seen, which the ledger keeps on disk (`Ledger.enrol`).
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import Settings
from ..errors import SubscriberError
from ..storage import ReaderBase, SubscriberStore, open_readers, store_location
from .addresses import check_address as check_address  # re-exported: the check every list row gets
from .options import MAILING
from .personalize import clean_name

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
DEFAULT_TABLE = "subscribers"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_LINE = 1 << 20  # a longer line is one bad row, reported, and never held in memory whole
csv.field_size_limit(MAX_LINE)


@dataclass(frozen=True, slots=True)
class Subscriber:
    address: str  # validated, ASCII (an internationalized domain in its IDNA form)
    name: str  # cleaned (see personalize.clean_name); may be empty
    locale: str
    line: int  # line of the CSV file, or rowid of the SQLite table
    timezone: str = ""  # IANA name as listed, unchecked (the scheduler falls back to the list's zone)


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


class SubscriberSource:
    """Iterate to get valid `Subscriber`s; problems go to `on_problem` (default: collected in `.problems`)."""

    def __init__(self, spec: str | Path, root: Path | None = None) -> None:
        self.store: ReaderBase | None = None
        self.newsletter = ""
        text = str(spec)
        table = DEFAULT_TABLE
        path_text, hash_, fragment = text.partition("#")
        if hash_ and Path(path_text).suffix.lower() in SQLITE_SUFFIXES:
            table = fragment
            text = path_text
        path = Path(text).expanduser()
        if root is not None and not path.is_absolute():
            path = root / path
        self.path = path
        self.table = table
        self.kind = "sqlite" if path.suffix.lower() in SQLITE_SUFFIXES else "csv"
        if self.kind == "sqlite" and not _IDENTIFIER.fullmatch(table):
            raise SubscriberError(f"{path}: {table!r} is not a table name")
        if not path.is_file():
            raise SubscriberError(f"{path}: subscriber list not found")
        self.problems: list[Problem] = []

    @classmethod
    def from_store(cls, store: ReaderBase, name: str, newsletter: str = "") -> SubscriberSource:
        """The readers of `store` newsletter `newsletter` (default: the base's own) may be sent to today
        (named `name` in reports): one paged, joined query (see `ReaderBase.enrolled`)."""
        source = cls.__new__(cls)
        source.store, source.path, source.table, source.kind = store, Path(name), DEFAULT_TABLE, "store"
        source.newsletter = newsletter
        source.problems = []
        return source

    @property
    def name(self) -> str:
        if self.kind == "store":
            return str(self.path)
        return str(self.path) + (f"#{self.table}" if self.kind == "sqlite" and self.table != DEFAULT_TABLE else "")

    def rows(self, on_problem: Callable[[Problem], None] | None = None) -> Iterator[Subscriber]:
        report = on_problem or self.problems.append
        if self.kind == "store":
            raw = self._stored()
        else:
            raw = self._csv_rows(report) if self.kind == "csv" else self._sqlite_rows()
        for line, email, name, locale, zone in raw:
            try:
                address = check_address(email)
            except ValueError as exc:
                report(Problem(self.path.name, line, str(exc)))
                continue
            yield Subscriber(address, clean_name(name), (locale or "").strip(), line, (zone or "").strip())

    def __iter__(self) -> Iterator[Subscriber]:
        return self.rows()

    def _csv_rows(self, report: Callable[[Problem], None]) -> Iterator[tuple[int, str, str, str, str]]:
        """Rows decoded and parsed one at a time: a bad byte, a stray quote or a field over 1 MiB costs that
        row alone (reported with its line), never the rows after it. A quoted field may span lines (the
        row's line is its last), up to MAX_RECORD_LINES."""
        try:
            with self.path.open("rb") as fh:
                lines = _physical_lines(fh)
                first = next(((n, t, p) for n, t, p in lines if t is None or t.strip()), None)
                if first is None:
                    raise SubscriberError(f"{self.path}: empty file; expected a header row email,name,locale")
                if first[1] is None:
                    raise SubscriberError(f"{self.path}:{first[0]}: the header row is {first[2]}")
                header = first[1]
                try:
                    columns = [h.strip().lower() for h in next(csv.reader([header], strict=True))]
                except csv.Error as exc:
                    raise SubscriberError(f"{self.path}:1: the header row cannot be read ({exc})") from None
                if "email" not in columns:
                    raise SubscriberError(
                        f"{self.path}:1: no 'email' column in the header row (found: {', '.join(columns) or 'nothing'})"
                    )
                at_email = columns.index("email")
                at_name = columns.index("name") if "name" in columns else None
                at_locale = columns.index("locale") if "locale" in columns else None
                at_zone = columns.index("timezone") if "timezone" in columns else None
                for line, text in _records(lines, report, self.path.name):
                    if not text.strip():
                        continue
                    try:
                        row = next(csv.reader([text], strict=True), [])
                    except csv.Error as exc:
                        report(Problem(self.path.name, line, f"cannot read the row ({exc})"))
                        continue
                    if all(not cell.strip() for cell in row):
                        continue
                    yield (
                        line,
                        row[at_email] if at_email < len(row) else "",
                        row[at_name] if at_name is not None and at_name < len(row) else "",
                        row[at_locale] if at_locale is not None and at_locale < len(row) else "",
                        row[at_zone] if at_zone is not None and at_zone < len(row) else "",
                    )
        except OSError as exc:
            raise SubscriberError(f"{self.path}: cannot read ({exc.strerror or exc})") from None

    def _stored(self) -> Iterator[tuple[int, str, str, str, str]]:
        assert self.store is not None
        for record in self.store.enrolled(self.newsletter or None):
            yield record.id, record.email, record.name, record.locale, record.timezone

    def _sqlite_rows(self) -> Iterator[tuple[int, str, str, str, str]]:
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise SubscriberError(f"{self.path}: cannot open ({exc})") from None
        try:
            try:
                columns = [r[1].lower() for r in conn.execute(f'PRAGMA table_info("{self.table}")')]
            except sqlite3.DatabaseError as exc:
                raise SubscriberError(f"{self.path}: not a SQLite database ({exc})") from None
            if not columns:
                raise SubscriberError(f"{self.path}: no table {self.table!r}")
            if "email" not in columns:
                raise SubscriberError(f"{self.path}: table {self.table!r} has no 'email' column")
            name = "name" if "name" in columns else "''"
            locale = "locale" if "locale" in columns else "''"
            zone = "timezone" if "timezone" in columns else "''"
            cursor = conn.execute(f'SELECT rowid, email, {name}, {locale}, {zone} FROM "{self.table}" ORDER BY rowid')
            for rowid, email, nm, loc, tz in cursor:
                yield (
                    rowid,
                    email if isinstance(email, str) else "",
                    nm if isinstance(nm, str) else "",
                    str(loc or ""),
                    tz if isinstance(tz, str) else "",
                )
        except sqlite3.Error as exc:
            raise SubscriberError(f"{self.path}: {exc}") from None
        finally:
            conn.close()


MAX_RECORD_LINES = 20  # a quote still open after this many lines is a stray one, not a multi-line field


def _open_quote(text: str, inside: bool) -> bool:
    """Whether a quoted field is still open at the end of `text` (CSV rules: a quote opens a field only at
    its start; inside one, a doubled quote is a quote)."""
    start = not inside
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if inside:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 2
                    continue
                inside = False
        elif c == '"' and start:
            inside = True
        start = c == "," and not inside
        i += 1
    return inside


def _records(
    lines: Iterator[tuple[int, str | None, str]], report: Callable[[Problem], None], name: str
) -> Iterator[tuple[int, str]]:
    """Physical lines joined into CSV records (a quoted field may hold line breaks). A record whose quote
    never closes, or that does not parse once joined, is reported at its first line, and the lines after
    it are read again as rows of their own."""
    pending: list[tuple[int, str | None, str]] = []
    source = iter(lines)
    while True:
        item = pending.pop(0) if pending else next(source, None)
        if item is None:
            return
        line, text, problem = item
        if text is None:
            report(Problem(name, line, problem))
            continue
        parts, last, broken = [text], line, False
        taken: list[tuple[int, str | None, str]] = []
        inside = _open_quote(text, False)
        while inside:
            more = pending.pop(0) if pending else next(source, None)
            if more is None or more[1] is None or len(taken) >= MAX_RECORD_LINES:
                if more is not None:
                    taken.append(more)
                broken = True
                break
            taken.append(more)
            parts.append(more[1])
            last = more[0]
            inside = _open_quote(more[1], True)
        record = "\n".join(parts)
        if taken and not broken:
            try:
                next(csv.reader([record], strict=True))
            except csv.Error:
                broken = True
        if broken:
            report(Problem(name, line, "a quote that is never closed; row skipped"))
            pending = taken + pending
            continue
        yield last, record


def _physical_lines(fh: BinaryIO) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text, "") per line; (line number, None, reason) for a line that is not UTF-8 or is
    longer than MAX_LINE bytes (read on to its end in bounded chunks)."""
    number = 0
    while True:
        raw = fh.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while (more := fh.readline(MAX_LINE)) and not more.endswith(b"\n"):
                pass
            yield number, None, f"line longer than {MAX_LINE // (1 << 20)} MiB"
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, None, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            continue
        yield number, text.rstrip("\r\n"), ""


def subscriber_store(settings: Settings) -> SubscriberStore:
    """The newsletter's subscriber store: PostgreSQL when `database_url` is set, else `[subscribers] path`
    (default `data/subscribers.sqlite`)."""
    return open_readers(settings).subscribers


def store_exists(settings: Settings) -> bool:
    """Is there a subscriber store to read (a SQLite file, or the PostgreSQL database)?"""
    # The PostgreSQL table exists once `newsletter db upgrade` has run (the store checks the schema).
    return (
        bool(settings.database_url)
        or store_location(settings.root, settings.section("subscribers").get("path")).is_file()
    )


def has_subscriber_list(settings: Settings) -> bool:
    """Is there a list to send to: `[mailing] subscribers`, or a subscriber store that exists?"""
    return settings.options(MAILING).subscribers is not None or store_exists(settings)


def store_source(settings: Settings) -> SubscriberSource:
    """The readers of the base who may be sent the newsletter of `settings` today (confirmed, not paused,
    a confirmed subscription to it, not suppressed), as a list `send` streams like any other."""
    if not store_exists(settings):
        raise SubscriberError(
            "no subscriber list: pass --subscribers FILE, set [mailing] subscribers, or add subscribers to the "
            "store (newsletter subscribers add|import)"
        )
    store = open_readers(settings)
    return SubscriberSource.from_store(store, str(store.path), settings.newsletter)


def reader_keys(settings: Settings) -> set[str]:
    """Lower-cased addresses of every reader the base knows, whatever their state (a bounce for a paused
    or pending reader is still theirs)."""
    with open_readers(settings) as base:
        return {record.email.lower() for record in base.subscribers.records()}
