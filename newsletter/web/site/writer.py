"""Write the web archive into `site/`: one edition after a build, or all of them from the outbox.

    site/editions/<date>/index.html     the edition (what "view in your browser" opens)
    site/YYYY/MM/DD/<slug>/index.html   a story in full, at the URL the email links to
    site/index.html, page/N/index.html  every public edition, newest first
    site/latest/index.html              a redirect page to the newest public edition
    site/feed.xml, sitemap.xml          Atom (full content) and sitemap of the public pages
    site/unsubscribe/index.html         how to unsubscribe (the list copy's generic link)
    site/robots.txt, 404.html, assets/site.css
    site/<lang>/…                       the same for each other language edition, in its language

Incremental: a build writes its own edition's pages and then the shared lists (index, feed, sitemap,
latest), which are made from a small catalog (`data/site/<date>.json`, plus the feed entry's HTML) so no
other edition is read or rendered again. Every file is written through a temp file and a rename, and only
when its bytes change, so an unchanged page keeps its modification time (and its HTTP caches).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel.dates import format_date

from ...config import Settings
from ...edition import Story, attach_images, read_story
from ...errors import NewsletterError
from ...fsutil import write_atomic
from . import pages
from .inputs import edition_key, fingerprint
from .model import (
    FEED_ENTRIES,
    PER_PAGE,
    WebEdition,
    file_for,
    lang_base,
    site_dir,
    story_pages,
    web_edition,
)

_PARALLEL_FROM = 40  # editions: below this, starting worker processes costs more than it saves


@dataclass
class SiteReport:
    editions: int = 0
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    skipped: int = 0  # editions whose inputs had not changed: not read nor rendered again (inputs.py)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, root: Path) -> str:
        return (
            f"web archive: {self.editions} edition(s), {len(self.written)} file(s) written, {self.unchanged} "
            f"unchanged ({self.skipped} edition(s) not rendered again) → {root}/ ({self.seconds:.2f} s)"
        )


def catalog_dir(settings: Settings) -> Path:
    """`data/site/` (the default language edition), `data/site/<lang>/` (another)."""
    base = settings.root / "data" / "site"
    if settings.file_prefix:  # another newsletter's catalogue: data/site/<newsletter>/[<lang>/]
        base = base / settings.newsletter
    return base / settings.language if settings.language != settings.languages[0] else base


class _Writer:
    def __init__(self, settings: Settings, report: SiteReport) -> None:
        self.settings = settings
        self.report = report
        self.root = site_dir(settings)

    def put(self, path: Path, data: str | bytes) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        try:
            if path.is_file() and path.stat().st_size == len(raw) and path.read_bytes() == raw:
                self.report.unchanged += 1
                return
            # No fsync: the archive is rebuilt from the outbox at will; the rename alone keeps it whole.
            write_atomic(path, raw, fsync=False)
        except OSError as exc:
            raise NewsletterError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
        self.report.written.append(path)

    def page(self, url: str, html: str) -> None:
        target = file_for(self.settings, url)
        if target is None:  # not under base_url: never happens for pages we make
            raise NewsletterError(f"{url} is not under base_url {self.settings.base_url}")
        self.put(target, html)

    def edition(self, edition: WebEdition, key: str = "") -> None:
        """The edition's page, its stories' pages, and its catalog entry (with `key`: see inputs.py)."""
        settings = self.settings
        self.page(edition.url, pages.edition_page(settings, edition))
        for item in story_pages(edition):
            assert item.page_url is not None
            self.page(item.page_url, pages.story_page(settings, edition, item))
        entry = {
            "date": edition.date.isoformat(),
            "date_long": format_date(edition.date, format="full", locale=settings.locale),
            "url": edition.url,
            "subject": edition.subject,
            "preheader": edition.preheader,
            "lead_title": edition.lead.story.title,
            "private": edition.private,
            "built_at": edition.built_at,
            "pages": [[item.page_url, item.private] for item in story_pages(edition)],
            "key": key,
        }
        folder = catalog_dir(settings)
        self.put(folder / f"{edition.date.isoformat()}.json", json.dumps(entry, ensure_ascii=False, indent=1))
        self.put(folder / f"{edition.date.isoformat()}.html", pages.feed_content(settings, edition))
        self.report.editions += 1

    def unchanged(self, day: str, key: str) -> bool:
        """Whether edition `day`'s pages were written from inputs with this key and are all still there."""
        folder = catalog_dir(self.settings)
        try:
            entry = json.loads((folder / f"{day}.json").read_text(encoding="utf-8"))
            urls = [str(entry["url"]), *(str(url) for url, _private in entry["pages"])]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not key or entry.get("key") != key:
            return False
        files = [file_for(self.settings, url) for url in urls] + [folder / f"{day}.html"]
        if not all(f is not None and f.is_file() for f in files):
            return False
        self.report.unchanged += len(files) + 1
        self.report.editions += 1
        self.report.skipped += 1
        return True

    def shared(self) -> None:
        """Index pages, latest/, feed, sitemap, and the fixed pages, from the catalog."""
        settings = self.settings
        entries = _catalog(settings)
        public = [e for e in entries if not e["private"]]
        count = max(1, -(-len(public) // PER_PAGE))
        base = lang_base(settings)
        home = file_for(settings, base + "/")
        assert home is not None
        for n in range(1, count + 1):
            chunk = public[(n - 1) * PER_PAGE : n * PER_PAGE]
            self.page(f"{base}/" if n == 1 else f"{base}/page/{n}/", pages.index_page(settings, chunk, n, count))
        if public:
            # The default newsletter's latest/ at the root, another's under its own section.
            latest = self.root / settings.newsletter if settings.file_prefix else self.root
            self.put(latest / "latest" / "index.html", pages.render("latest.html", settings, target=public[0]["url"]))
        feed = []
        for entry in public[:FEED_ENTRIES]:
            content = catalog_dir(settings) / f"{entry['date']}.html"
            feed.append((entry, content.read_text(encoding="utf-8") if content.is_file() else ""))
        self.put(home.parent / "feed.xml", pages.feed_xml(settings, feed))
        urls: list[tuple[str, str]] = [(f"{base}/", public[0]["built_at"] if public else "")]
        for entry in public:
            urls.append((entry["url"], entry["built_at"]))
            urls.extend((url, entry["built_at"]) for url, private in entry["pages"] if not private)
        self.put(home.parent / "sitemap.xml", pages.sitemap_xml(urls))
        self.put(self.root / "robots.txt", pages.robots_txt(settings))
        no_meta: dict[str, Any] = {"canonical": None, "description": "", "image": "", "noindex": True}
        # In the edition's language: `404.html` and `unsubscribe` at the root for the default language,
        # under `<lang>/` for the others (the server answers a miss there with that language's 404).
        self.put(home.parent / "404.html", pages.render("404.html", settings, **no_meta))
        self.page(f"{base}/unsubscribe", pages.render("unsubscribe.html", settings, **no_meta))
        self.put(self.root / "assets" / "site.css", pages.stylesheet(settings))


def _catalog(settings: Settings) -> list[dict[str, Any]]:
    """Every catalogued edition, newest first."""
    folder = catalog_dir(settings)
    entries = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            entries.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise NewsletterError(f"{path}: unreadable archive catalog entry ({exc}); run `newsletter site`") from None
    return entries


def publish_edition(settings: Settings, manifest: Mapping[str, Any], stories: Sequence[Story]) -> SiteReport:
    """After `newsletter build`: this edition's pages, then the shared lists. Nothing else is rewritten."""
    started = time.perf_counter()
    report = SiteReport()
    writer = _Writer(settings, report)
    edition = web_edition(settings, manifest, {s.id: s for s in stories}, report.warnings)
    if edition is not None:
        clean = not report.warnings
        writer.edition(edition, edition_key(settings, fingerprint(settings), manifest) if clean else "")
    writer.shared()
    report.seconds = time.perf_counter() - started
    return report


def _read_named(settings: Settings, manifest: Mapping[str, Any], cache: dict[str, Story | None]) -> dict[str, Story]:
    """The stories a manifest names, read from their files (only those: not the whole stories tree)."""
    found: dict[str, Story] = {}
    for entry in manifest.get("stories", []):
        shown = str(entry.get("file", ""))
        if shown and shown not in cache:
            path = settings.root / shown
            story = None
            if path.is_file():
                story, _errors, _warnings = read_story(path, settings.root, settings.stories_dir, settings.base_url)
            cache[shown] = story
        story = cache.get(shown)
        if story is not None:
            found[story.id] = story
    # Their photos as the build published them (the same names: already there, no image work).
    shown_stories, _warnings = attach_images(list(found.values()), settings)
    return {story.id: story for story in shown_stories}


def _rebuild_editions(settings: Settings, manifests: Sequence[Path]) -> tuple[SiteReport, list[str]]:
    """Write the pages of the editions `manifests` describe: (what was done, the dates written).

    An edition whose inputs have not changed since its pages were written (inputs.py) is left alone:
    no story of it is read or rendered.
    """
    report = SiteReport()
    writer = _Writer(settings, report)
    cache: dict[str, Story | None] = {}
    common = fingerprint(settings)
    seen = []
    for path in manifests:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            day = str(manifest["edition"])
            key = edition_key(settings, common, manifest)
            if writer.unchanged(day, key):
                seen.append(day)
                continue
            before = len(report.warnings)
            edition = web_edition(settings, manifest, _read_named(settings, manifest, cache), report.warnings)
        except (OSError, ValueError, KeyError) as exc:
            report.warnings.append(f"{path}: not an edition manifest ({exc}); skipped")
            continue
        if edition is not None:
            writer.edition(edition, key if len(report.warnings) == before else "")
            seen.append(edition.date.isoformat())
    return report, seen


def rebuild_site(settings: Settings, *, processes: int | None = None) -> SiteReport:
    """`newsletter site`: every edition built into the outbox, from its manifest and its stories' files
    (each language edition of a multilingual list under its own `/<lang>/`).

    A large archive is shared out among `processes` worker processes (default: one per CPU, at most 8):
    reading and rendering the stories is most of the work, and each edition's pages are its own files.
    """
    started = time.perf_counter()
    report = SiteReport()
    for lang in settings.languages:
        one = settings.for_language(lang) if settings.multilingual else settings
        pattern = f"*/{lang}/manifest.json" if settings.multilingual else "*/manifest.json"
        found = sorted(settings.outbox_dir.glob(pattern)) if settings.outbox_dir.is_dir() else []
        _rebuild_language(one, found, processes, report)
    report.seconds = time.perf_counter() - started
    return report


def _rebuild_language(settings: Settings, manifests: list[Path], processes: int | None, report: SiteReport) -> None:
    workers = processes if processes is not None else min(os.cpu_count() or 1, 8)
    seen: set[str] = set()
    if workers > 1 and (processes is not None or len(manifests) >= _PARALLEL_FROM):
        chunks = [manifests[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_rebuild_editions, [settings] * workers, chunks))
    else:
        results = [_rebuild_editions(settings, manifests)]
    for part, dates in results:
        report.editions += part.editions
        report.written += part.written
        report.unchanged += part.unchanged
        report.skipped += part.skipped
        report.warnings += part.warnings
        seen.update(dates)
    # Editions no longer in the outbox leave the lists (their pages stay, so old links keep working).
    folder = catalog_dir(settings)
    for stale in folder.glob("*.json") if folder.is_dir() else []:
        if stale.stem not in seen:
            stale.unlink(missing_ok=True)
            stale.with_suffix(".html").unlink(missing_ok=True)
    _Writer(settings, report).shared()
