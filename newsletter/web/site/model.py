"""What the web archive shows of an edition, and where each page lives.

An edition's web side is made from its manifest (the stories in the email's order, where each landed,
the subject and preheader) and the stories themselves, so `newsletter site` can rebuild every edition
from `outbox/` and `stories/` without rendering an email again.

URLs and files: a page at `<base_url>/a/b/` or `<base_url>/a/b` is the file `site/a/b/index.html`; the
servers (nginx, Caddy, `newsletter serve --site`) look for `<path>/index.html` first, so the address
the email links to is served without a redirect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...config import Settings
from ...edition import Story
from ...errors import ConfigError

# First path segments the archive and the web app own: a story URL there would overwrite them.
RESERVED = frozenset(
    {"editions", "page", "latest", "assets", "unsubscribe", "subscribe", "confirm", "u", "healthz"}
    | {"index.html", "feed.xml", "sitemap.xml", "robots.txt", "404.html"}
)
PER_PAGE = 20  # editions per index page
FEED_ENTRIES = 20


@dataclass(frozen=True)
class PageStory:
    story: Story
    anchor: str
    placement: str  # lead, section, more
    page_url: str | None  # our page for it (absolute), or None when it links out
    link: str  # where its title points: its page, or its own url

    @property
    def private(self) -> bool:
        return self.story.private


@dataclass(frozen=True)
class WebEdition:
    date: date
    subject: str
    preheader: str
    url: str
    stories: tuple[PageStory, ...]
    private: bool
    built_at: str  # ISO 8601, from the manifest: the <updated> of feeds and sitemaps

    @property
    def lead(self) -> PageStory:
        return self.stories[0]

    @property
    def public_stories(self) -> tuple[PageStory, ...]:
        return tuple(s for s in self.stories if not s.private)


def site_dir(settings: Settings) -> Path:
    """`[site] dir` relative to the newsletter folder; default `site/`."""
    value = settings.section("site").get("dir", "site")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"[site] dir must be a folder path, got {value!r}")
    return (settings.root / value).resolve()


def private_dates(settings: Settings) -> frozenset[str]:
    """`[site] private = ["2016-12-30", …]`: editions left out of the index, feed, sitemap and latest/."""
    value = settings.section("site").get("private", [])
    if not isinstance(value, list) or not all(isinstance(v, str | date) for v in value):
        raise ConfigError(f"[site] private must be a list of edition dates, got {value!r}")
    return frozenset(v.isoformat() if isinstance(v, date) else v for v in value)


def lang_prefix(settings: Settings) -> str:
    """`/<lang>` for a language edition other than the list's first (default) one, else ''; under
    `/<newsletter>` for a newsletter other than the default one (its own section of the archive)."""
    return settings.archive_prefix


def lang_base(settings: Settings) -> str:
    """Where this language edition's part of the archive lives: base_url, or base_url + `/<lang>`."""
    return settings.base_url.rstrip("/") + lang_prefix(settings)


def base_path(settings: Settings) -> str:
    """The path part of base_url without its trailing slash ('' for a site at the root)."""
    return urlsplit(settings.base_url).path.rstrip("/")


def file_for(settings: Settings, url: str) -> Path | None:
    """The file under `site/` that answers `url`, or None when `url` is not under base_url."""
    base = settings.base_url.rstrip("/")
    if url != base and not url.startswith(base + "/"):
        return None
    parts = urlsplit(url)
    if parts.query:
        return None
    rel = parts.path[len(base_path(settings)) :].strip("/")
    target = site_dir(settings) / rel if rel else site_dir(settings)
    if rel and "." in rel.rsplit("/", 1)[-1]:
        return target  # a file name: feed.xml, an image
    return target / "index.html"


def own_page(settings: Settings, url: str) -> bool:
    """Is `url` (a story's `url`) one of ours, under base_url, outside the reserved paths?"""
    base = settings.base_url.rstrip("/")
    if not url.startswith(base + "/"):
        return False
    parts = urlsplit(url)
    rel = parts.path[len(base_path(settings)) :].strip("/")
    if parts.query or parts.fragment or not rel or ".." in rel.split("/"):
        return False
    return rel.split("/", 1)[0] not in RESERVED and "." not in rel.rsplit("/", 1)[-1]


def web_edition(
    settings: Settings, manifest: Mapping[str, Any], stories: Mapping[str, Story], warn: list[str]
) -> WebEdition | None:
    """The web side of the edition a manifest describes; stories gone since are skipped with a warning."""
    day = date.fromisoformat(str(manifest["edition"]))
    base = settings.base_url.rstrip("/")
    home = lang_base(settings)
    placed: list[PageStory] = []
    for entry in manifest.get("stories", []):
        story = stories.get(str(entry.get("id")))
        if story is None:
            warn.append(f"edition {day}: story {entry.get('file') or entry.get('id')} no longer exists; left out")
            continue
        anchor = str(entry.get("anchor") or story.slug)
        if not story.url:
            page: str | None = f"{home}/{day.strftime('%Y/%m/%d')}/{anchor}"
        elif own_page(settings, story.url):
            page = story.url
        else:
            page = None
            if story.url.startswith(base + "/") and urlsplit(story.url).path.strip("/").split("/")[0] in RESERVED:
                warn.append(f"{story.path}: field 'url': {story.url} is a path the archive uses; no page written")
        placed.append(PageStory(story, anchor, str(entry.get("placement", "section")), page, page or story.url))
    if not placed:
        warn.append(f"edition {day}: none of its stories exist any more; no web page")
        return None
    return WebEdition(
        date=day,
        subject=str(manifest.get("subject", "")),
        preheader=str(manifest.get("preheader", "")),
        url=f"{home}/editions/{day.isoformat()}/",
        stories=tuple(placed),
        private=day.isoformat() in private_dates(settings),
        built_at=str(manifest.get("built_at", "")),
    )


def story_pages(edition: WebEdition) -> Sequence[PageStory]:
    """The stories of `edition` that get a page of ours (the first one wins if two share a URL)."""
    seen: set[str] = set()
    pages = []
    for item in edition.stories:
        if item.page_url and item.page_url not in seen:
            seen.add(item.page_url)
            pages.append(item)
    return pages
