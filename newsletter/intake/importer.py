"""Import runs: sources → fetched documents → items → story files, with one report.

One bad source (unreachable, malformed, not a feed) is one line in `failed`; the others go on. A source
whose document did not change since the last import — a 304 answer to the remembered ETag /
Last-Modified, or the same bytes as last time — is not parsed again. That memory is only updated after
a clean import, so entries that failed, or that `--no-update` held back, are looked at again next time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from ..config import Settings
from ..edition import parse_story
from ..errors import IntakeError
from ..fsutil import write_atomic
from .feeds import parse_feed
from .fetch import Fetched, Fetcher, file_path, is_url, read_file, user_agent
from .item import Item
from .options import IntakeOptions, intake_options
from .writer import State, digest, new_path, render_front, state_path

ActionKind = Literal["new", "updated", "kept", "deleted"]
_Parse = Callable[[Fetched], tuple[list[Item], list[str], int]]


@dataclass(frozen=True)
class Action:
    """A story file the import wrote or would write (dry run), or left alone on purpose."""

    kind: ActionKind
    path: str  # relative to the newsletter root
    title: str


@dataclass
class ImportReport:
    written: int = 0  # new story files
    updated: int = 0
    unchanged: int = 0
    kept: int = 0  # changed at the source but left as they are (--no-update)
    skipped: int = 0  # entries that cannot be stories (no date, no title); each has a warning
    failed: list[str] = field(default_factory=list)  # one line each, naming the source or entry
    warnings: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # one summary line per source
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _Counts:
    new: int
    updated: int
    unchanged: int
    kept: int
    skipped: int
    failed: int

    @classmethod
    def of(cls, r: ImportReport) -> _Counts:
        return cls(r.written, r.updated, r.unchanged, r.kept, r.skipped, len(r.failed))

    def __sub__(self, other: _Counts) -> _Counts:
        return _Counts(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def __str__(self) -> str:
        parts = [f"{n} {name}" for name, n in asdict(self).items() if n or name == "new"]
        return ", ".join(parts)


class Importer:
    """One import run over any number of sources, sharing the HTTP client, the state and the report."""

    def __init__(
        self,
        settings: Settings,
        *,
        dry_run: bool = False,
        update: bool = True,
        intake: IntakeOptions | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.intake = intake or intake_options(settings)
        self.dry_run = dry_run
        self.update = update
        self.cwd = cwd or Path.cwd()
        self.report = ImportReport(dry_run=dry_run)
        self.state = State(state_path(settings), readonly=dry_run)
        self._fetcher: Fetcher | None = None
        self._claimed: set[str] = set()  # paths given to new stories in this run (a dry run records nothing)
        self._written: list[Path] = []  # files written since the last flush

    def __enter__(self) -> Importer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
        self.state.close()

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = Fetcher(
                timeout=self.intake.timeout,
                max_bytes=self.intake.max_bytes,
                agent=self.intake.user_agent or user_agent(self.settings.base_url),
            )
        return self._fetcher

    # --- sources ------------------------------------------------------------------------------------

    def feed(self, source: str, *, section: str | None = None, relative_to: Path | None = None) -> None:
        def parse(fetched: Fetched) -> tuple[list[Item], list[str], int]:
            assert fetched.content is not None
            parsed = parse_feed(
                fetched.content,
                source=source,
                url=fetched.url,
                media_type=fetched.media_type,
                charset=fetched.charset,
            )
            return parsed.items, parsed.warnings, parsed.skipped

        self._source(source, "feed", section, parse, options=f"feed|{section or ''}", relative_to=relative_to)

    def page(
        self,
        source: str,
        *,
        section: str | None = None,
        canonical: str | None = None,
        published: datetime | None = None,
        relative_to: Path | None = None,
    ) -> None:
        path = None if is_url(source) else file_path(source, relative_to or self.cwd)

        def parse(fetched: Fetched) -> tuple[list[Item], list[str], int]:
            from .pages import parse_page  # trafilatura takes a while to import; feeds do not need it

            assert fetched.content is not None
            parsed = parse_page(
                fetched.content,
                source=source,
                url=fetched.url,
                timezone=self.settings.timezone,
                charset=fetched.charset,
                canonical=canonical,
                published=published,
                file=path,
            )
            return [parsed.item], parsed.warnings, 0

        options = f"page|{section or ''}|{canonical or ''}|{published.isoformat() if published else ''}"
        self._source(source, "page", section, parse, options=options, relative_to=relative_to)

    def _source(
        self,
        source: str,
        kind: Literal["feed", "page"],
        section: str | None,
        parse: _Parse,
        *,
        options: str,
        relative_to: Path | None,
    ) -> None:
        report = self.report
        before = _Counts.of(report)
        url = source if is_url(source) else None
        path = None if url else file_path(source, relative_to or self.cwd)
        key = str(path.resolve()) if path is not None else source
        remembered = self.state.source(key)
        try:
            if path is None:
                fetched = self.fetcher.get(
                    source,
                    kind,
                    etag=remembered.etag if remembered else None,
                    last_modified=remembered.last_modified if remembered else None,
                )
            else:
                fetched = read_file(path, source=source, max_bytes=self.intake.max_bytes)
        except IntakeError as exc:
            report.failed.append(str(exc))
            report.sources.append(f"{source}: failed")
            return
        if fetched.content is None:
            report.unchanged += remembered.items if remembered else 0
            report.sources.append(f"{source}: not modified since the last import (HTTP 304)")
            return
        fingerprint = hashlib.sha256(fetched.content + b"\0" + options.encode()).hexdigest()
        if remembered and remembered.fingerprint == fingerprint:
            report.unchanged += remembered.items
            report.sources.append(f"{source}: unchanged since the last import")
            self._remember(key, fetched, fingerprint, remembered.items)
            return
        try:
            items, warnings, skipped = parse(fetched)
        except IntakeError as exc:
            report.failed.append(str(exc))
            report.sources.append(f"{source}: failed")
            return
        report.warnings += warnings
        report.skipped += skipped
        self.state.begin()
        try:
            seen: set[str] = set()
            for item in items:
                identity = item.guid or item.url
                if identity and identity in seen:
                    # Feeds do repeat an entry; the first one (the newest, in feed order) is the story.
                    report.skipped += 1
                    report.warnings.append(f"{item.origin}: repeats an earlier entry (same GUID or URL); skipped")
                    continue
                if identity:
                    seen.add(identity)
                self._item(item, section, key)
            # The files reach the disk before the state says they exist: otherwise a crash could leave a
            # recorded story without its file, which the next import would take for one deleted by hand.
            # One pass over the batch costs a fraction of a flush per file.
            _flush(self._written)
            self._written.clear()
            done = _Counts.of(report) - before
            if not done.failed and not done.kept:
                self._remember(key, fetched, fingerprint, len(items))
            self.state.commit()
        except BaseException:
            self.state.rollback()
            raise
        report.sources.append(f"{source}: {done}")

    def _remember(self, key: str, fetched: Fetched, fingerprint: str, items: int) -> None:
        self.state.save_source(
            key, etag=fetched.etag, last_modified=fetched.last_modified, fingerprint=fingerprint, items=items
        )

    # --- items --------------------------------------------------------------------------------------

    def _item(self, item: Item, section: str | None, source: str) -> None:
        report = self.report
        head = render_front(item, section=section, default_section=self.intake.section)
        text = head + item.body
        new_digest = digest(text)
        record = self.state.find(item.guid, item.url or None)
        if record is not None:
            rel, adopted = record.path, False
            if record.digest == new_digest:
                report.unchanged += 1
                return
        else:
            try:
                rel, adopted = new_path(item, self.settings, self.state, self._claimed)
            except IntakeError as exc:
                report.failed.append(str(exc))
                return
            self._claimed.add(rel)
        path = self.settings.stories_dir / rel
        shown = self._shown(path)
        exists = record is not None or adopted
        if exists and not path.exists():
            # The editor deleted it: a deleted story is not brought back by the next morning's import.
            report.unchanged += 1
            report.actions.append(Action("deleted", shown, item.title))
            self.state.record(rel, item.guid, item.url, new_digest, source)
            return
        if adopted and path.read_text(encoding="utf-8", errors="replace") == text:
            report.unchanged += 1
            self.state.record(rel, item.guid, item.url, new_digest, source)
            return
        if exists and not self.update:
            report.kept += 1
            report.actions.append(Action("kept", shown, item.title))
            return
        # The story validator on the front matter: a body cannot make a story invalid (it is sanitized
        # when read), so rendering it here too would only double the cost of a big import.
        story, errors, _warnings = parse_story(
            head.encode("utf-8"), shown, rel.removesuffix(".md"), self.settings.base_url
        )
        if story is None:
            report.failed.append(f"{item.origin}: not imported: {errors[0] if errors else 'invalid story'}")
            return
        if not self.dry_run:
            try:
                write_atomic(path, text, fsync=False)
                self._written.append(path)
            except OSError as exc:
                report.failed.append(f"{item.origin}: cannot write {shown} ({exc.strerror})")
                return
            self.state.record(rel, item.guid, item.url, new_digest, source)
        if exists:
            report.updated += 1
            report.actions.append(Action("updated", shown, item.title))
        else:
            report.written += 1
            report.actions.append(Action("new", shown, item.title))

    def _shown(self, path: Path) -> str:
        try:
            return path.relative_to(self.settings.root).as_posix()
        except ValueError:
            return str(path)


def _flush(paths: list[Path]) -> None:
    """fsync the files, then their folders (so the renames are on disk too)."""
    for target in [*paths, *dict.fromkeys(p.parent for p in paths)]:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def import_feed(
    settings: Settings, source: str, *, section: str | None = None, dry_run: bool = False, update: bool = True
) -> ImportReport:
    """Import one feed (URL or file) into story files."""
    with Importer(settings, dry_run=dry_run, update=update) as run:
        run.feed(source, section=section)
        return run.report


def import_page(
    settings: Settings,
    source: str,
    *,
    section: str | None = None,
    canonical: str | None = None,
    published: datetime | None = None,
    dry_run: bool = False,
    update: bool = True,
) -> ImportReport:
    """Import one article page (URL or saved file) into a story file."""
    with Importer(settings, dry_run=dry_run, update=update) as run:
        run.page(source, section=section, canonical=canonical, published=published)
        return run.report


def import_configured(settings: Settings, *, dry_run: bool = False, update: bool = True) -> ImportReport:
    """Import every `[[intake.feeds]]` source of the configuration; one bad source does not stop the others.

    File paths in the configuration are relative to the newsletter folder. Raises ConfigError when the
    `[intake]` table is wrong; source problems land in `report.failed`.
    """
    intake = intake_options(settings)
    with Importer(settings, dry_run=dry_run, update=update, intake=intake) as run:
        for feed in intake.feeds:
            run.feed(feed.url, section=feed.section, relative_to=settings.root)
        return run.report
