"""Render the web archive's pages, feed and sitemap: values in, text out (no files touched here).

Templates live in this package (`templates/`), styles in `static/site.css` (every colour is a custom
property at its top, with a `prefers-color-scheme: dark` set beside it). Pages carry no script, no
tracking and nothing personal; story text is data (Jinja autoescaping), story bodies are the sanitised
HTML the email uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import jinja2
from babel.dates import format_date, format_time
from markupsafe import Markup, escape

from ...config import Settings
from ...edition import BodyPhoto, Story, email_logo, make_environment, text_direction, translations
from ...images import MODERN, Masthead, Published, image_options, srcset
from ...letters import for_newsletter, newsletters
from .model import PageStory, WebEdition, base_path, lang_base

# CSS custom property → role in templates/palette.j2 (the email's colours, light and dark).
_PALETTE_ROLES = {
    "ink": "ink",
    "muted": "muted",
    "paper": "card",
    "canvas": "page",
    "brand": "masthead",
    "brand-ink": "masthead_text",
    "brand-soft": "masthead_sub",
    "accent": "accent",
    "headline": "headline",
    "standfirst": "standfirst",
    "rule": "rule",
}
_CSS = Path(__file__).with_name("static") / "site.css"


def stylesheet(settings: Settings) -> str:
    """`site.css`: the colours of `palette.j2` (the newsletter's own, or the built-in one) as custom
    properties, light and `prefers-color-scheme: dark`, then the rules of `static/site.css`."""
    palette = make_environment(settings).get_template("palette.j2").module

    def block(scheme: Mapping[str, str]) -> str:
        return "".join(f"  --{name}: {scheme[role]};\n" for name, role in _PALETTE_ROLES.items())

    light, dark = palette.light, palette.dark  # type: ignore[attr-defined]
    return (
        "/* Colours from templates/palette.j2. */\n:root {\n" + block(light) + "}\n"
        "@media (prefers-color-scheme: dark) {\n  :root {\n"
        + block(dark).replace("  --", "    --")
        + "  }\n}\n"
        + _CSS.read_text(encoding="utf-8")
    )


def page_environment(loader: jinja2.BaseLoader, locale: str) -> jinja2.Environment:
    """A Jinja environment for pages in `locale`: its gettext catalogue installed (new-style `_()`,
    which escapes the values it formats in), English where the catalogue has no translation."""
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        auto_reload=False,  # templates ship in the package
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    return env


@lru_cache(maxsize=16)
def environment(locale: str = "en") -> jinja2.Environment:
    """The archive's templates, speaking `locale` (one environment per language, kept)."""
    return page_environment(jinja2.PackageLoader("newsletter.web.site", "templates"), locale)


def site_context(settings: Settings, assets: str | None = None) -> dict[str, Any]:
    """What every page (of the archive and of the web app) needs to know about the newsletter.

    `assets` is the URL folder of `site.css`: the archive's own `/assets/` unless a server (the
    preview) serves it elsewhere.
    """
    lang = settings.locale.replace("_", "-")
    base = settings.base_url.rstrip("/")
    return {
        "title": settings.title,
        # The default tagline is in the catalogues; a list's own tagline shows as written.
        "tagline": translations(settings.locale).gettext(settings.tagline) if settings.tagline else "",
        "base_url": base,
        "home": lang_base(settings) + "/",
        "css": (assets if assets is not None else base_path(settings) + "/assets/") + "site.css",
        "feed": lang_base(settings) + "/feed.xml",
        # A language edition's sign-up link asks for its language (the default one needs no parameter).
        "subscribe": base
        + "/subscribe"
        + ("" if settings.language == settings.languages[0] else f"?lang={settings.language}"),
        "lang": lang,
        "language": settings.language,
        "dir": text_direction(lang),
        "mailto": settings.list.unsubscribe_mailto,
    }


def render(template: str, settings: Settings, assets: str | None = None, **context: Any) -> str:
    env = environment(settings.locale)
    site = {**site_context(settings, assets), "logo": masthead(settings)}
    return env.get_template(template).render(site=site, **context)


def masthead(settings: Settings) -> Masthead | None:
    """The `[images.logo]` masthead as the archive's pages show it: the email's (published the same
    way, light and dark), worked out once per logo file and kept while the files do not change."""
    logo = image_options(settings).logo
    if logo is None:
        return None
    key = (
        logo,
        settings.base_url,
        str(settings.root),
        _stamp(settings.root, logo.src),
        _stamp(settings.root, logo.dark),
    )
    if key not in _MASTHEADS:
        _MASTHEADS[key] = email_logo(settings)[0]  # a logo left out was the build's warning already
    return _MASTHEADS[key]


def _stamp(root: Path, src: str) -> int:
    if not src or "://" in src:
        return 0
    try:
        return (root / src).stat().st_mtime_ns
    except OSError:
        return -1


_MASTHEADS: dict[tuple[Any, ...], Masthead | None] = {}


def _story_view(settings: Settings, item: PageStory) -> dict[str, Any]:
    story = item.story
    blocks = story.blocks
    meta = [story.byline] if story.byline else []
    meta.append(format_time(story.published.astimezone(settings.timezone), format="short", locale=settings.locale))
    return {
        "item": item,
        "story": story,
        "anchor": item.anchor,
        "link": item.link,
        "external": item.page_url is None and bool(story.url),
        "meta": " · ".join(meta),
        "published_iso": story.published.isoformat(),
        "body": body_pictures("".join(b.html for b in blocks), story.body_photos),
        "plain_body": Markup("".join(b.html for b in blocks)),  # the feed's: readers drop <source>
        # The edition page is for skimming: the standfirst, else the first paragraphs.
        "excerpt": body_pictures("".join(b.html for b in blocks[:2]), story.body_photos)
        if not story.summary
        else Markup(""),
        "lang": story.lang,
        "dir": story.dir,
        "picture": picture(story),
    }


def picture(story: Story) -> dict[str, Any] | None:
    """The archive's `<picture>` of a story's photo: WebP and JPEG/PNG `srcset`s for the browser to
    choose from by screen, a fallback `src`, and the size that reserves its space (no layout shift).
    An https photo not published with the archive is shown as it is."""
    image = story.image
    if image is None:
        return None
    view: dict[str, Any] = {"src": image.src, "alt": image.alt, "credit": image.credit, "srcset": "", "sources": []}
    view.update(width=None, height=None, sizes=_SIZES)
    if image.published is not None:
        view.update(_renditions(image.published))
    return view


def _renditions(published: Published) -> dict[str, Any]:
    """A published photo's `<picture>` parts: a `<source>` per modern format (AVIF first: a browser
    takes the first it can show), the JPEG/PNG `srcset`, the fallback `src`, the intrinsic size."""
    fallback = published.fallback()
    return {
        "src": next((r for r in fallback if r.width >= 800), fallback[-1]).url,
        "srcset": srcset(fallback),
        "sources": [
            {"type": f"image/{fmt}", "srcset": srcset(found)} for fmt in MODERN if (found := published.modern(fmt))
        ],
        "width": published.width,
        "height": published.height,
    }


_SIZES = "(max-width: 40rem) 100vw, 37rem"  # main's 40rem less its padding (static/site.css)
_BODY_IMG = re.compile(r'<img src="([^"]+)"[^>]*>')
_ATTR = re.compile(r'\b(alt|title)="([^"]*)"')


def body_pictures(html: str, photos: Sequence[BodyPhoto]) -> Markup:
    """A story body (the email's sanitised HTML) with each published photo's `<img>` — the one JPEG
    the email shows — made a `<picture>` offering every rendition, like the story's own photo."""
    by_url = {str(escape(photo.url)): photo for photo in photos}

    def one(match: re.Match[str]) -> str:
        photo = by_url.get(match.group(1))
        if photo is None:
            return match.group(0)
        parts = _renditions(photo.published)
        # alt and title as the email's tag carries them: already escaped there.
        kept = "".join(f' {name}="{value}"' for name, value in _ATTR.findall(match.group(0)))
        sources = "".join(
            f'<source type="{escape(s["type"])}" srcset="{escape(s["srcset"])}" sizes="{_SIZES}">'
            for s in parts["sources"]
        )
        return (
            f'<picture>{sources}<img src="{escape(parts["src"])}" srcset="{escape(parts["srcset"])}" '
            f'sizes="{_SIZES}"{kept} width="{parts["width"]}" height="{parts["height"]}" loading="lazy"></picture>'
        )

    return Markup(_BODY_IMG.sub(one, html) if by_url else html)


def _image(edition: WebEdition) -> str:
    for item in edition.stories:
        found = picture(item.story)
        if found is not None:
            return str(found["src"])
    return ""


def edition_page(settings: Settings, edition: WebEdition, assets: str | None = None) -> str:
    """`editions/<date>/index.html`: the stories in the email's order, lead first, by section."""
    lead = edition.stories[0]
    sections: list[tuple[str, list[dict[str, Any]]]] = []
    more = []
    for item in edition.stories[1:]:
        if item.placement == "more":
            more.append(_story_view(settings, item))
            continue
        if not sections or sections[-1][0] != item.story.section:
            sections.append((item.story.section, []))
        sections[-1][1].append(_story_view(settings, item))
    return render(
        "edition.html",
        settings,
        assets,
        edition=edition,
        date_long=format_date(edition.date, format="full", locale=settings.locale),
        lead=_story_view(settings, lead),
        sections=sections,
        more=more,
        canonical=edition.url,
        description=edition.preheader,
        image=_image(edition),
        noindex=edition.private,
    )


def story_page(settings: Settings, edition: WebEdition, item: PageStory, assets: str | None = None) -> str:
    """A story in full, at the URL the email links to."""
    found = picture(item.story)
    image = str(found["src"]) if found is not None else ""
    return render(
        "story.html",
        settings,
        assets,
        edition=edition,
        date_long=format_date(edition.date, format="full", locale=settings.locale),
        s=_story_view(settings, item),
        canonical=item.page_url,
        description=item.story.summary or edition.preheader,
        image=image,
        noindex=edition.private or item.private,
    )


def index_page(settings: Settings, entries: Sequence[dict[str, Any]], page: int, pages: int) -> str:
    """One page of the archive's index (entries are catalog dicts, newest first)."""
    base = lang_base(settings)

    def page_url(n: int) -> str:
        return f"{base}/" if n == 1 else f"{base}/page/{n}/"

    return render(
        "index.html",
        settings,
        entries=entries,
        page=page,
        pages=pages,
        newer=page_url(page - 1) if page > 1 else None,
        older=page_url(page + 1) if page < pages else None,
        canonical=page_url(page),
        description=settings.tagline,
        image="",
        noindex=False,
        newsletters=_newsletter_links(settings),
    )


def _newsletter_links(settings: Settings) -> list[dict[str, Any]]:
    """The public newsletters' sections of the archive, for the indexes in the first language (none when
    there is only one): newsletters' names and descriptions are configured in that language."""
    if settings.language != (settings.whole or settings).languages[0]:
        return []
    found = []
    for one in archived_newsletters(settings):
        if settings.language in one.languages:
            one = one.for_language(settings.language)
        found.append(
            {
                "name": one.title,
                "description": one.tagline,  # its description, else the shared tagline
                "url": f"{lang_base(one)}/",
                "current": one.newsletter == settings.newsletter,
            }
        )
    return found if len(found) > 1 else []


def feed_xml(settings: Settings, entries: Sequence[tuple[dict[str, Any], str]]) -> bytes:
    """The Atom feed: the newest public editions, each with its full content (feedgen)."""
    from feedgen.feed import FeedGenerator

    base = lang_base(settings)
    fg = FeedGenerator()
    fg.id(base + "/")
    fg.title(settings.title)
    fg.subtitle(settings.tagline or settings.title)
    fg.link(href=base + "/", rel="alternate")
    fg.link(href=base + "/feed.xml", rel="self")
    fg.language(settings.locale.replace("_", "-"))
    fg.author({"name": settings.sender.name})
    newest = max((e["built_at"] for e, _ in entries), default="") or datetime.now(UTC).isoformat()
    fg.updated(newest)
    # feedgen lists entries newest-added first: add the oldest first.
    for entry, content in reversed(list(entries)):
        fe = fg.add_entry()
        fe.id(entry["url"])
        fe.title(entry["subject"])
        fe.link(href=entry["url"], rel="alternate")
        fe.updated(entry["built_at"] or newest)
        fe.published(entry["built_at"] or newest)
        if entry["preheader"]:
            fe.summary(entry["preheader"])
        fe.content(content, type="html")
    return bytes(fg.atom_str(pretty=True))


def sitemap_xml(urls: Sequence[tuple[str, str]]) -> str:
    """(url, lastmod) pairs → sitemap.xml (the format allows 50,000 URLs per file)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for url, lastmod in urls:
        mod = f"<lastmod>{xml_escape(lastmod[:10])}</lastmod>" if lastmod else ""
        lines.append(f"  <url><loc>{xml_escape(url)}</loc>{mod}</url>")
    lines.append("</urlset>")
    return "\n".join(lines) + "\n"


def archived_newsletters(settings: Settings) -> list[Settings]:
    """The settings of every newsletter with a part in the web archive: public, and not on demand."""
    return [
        for_newsletter(settings, letter) for letter in newsletters(settings) if letter.public and not letter.on_demand
    ]


def robots_txt(settings: Settings) -> str:
    """robots.txt, naming the sitemap of every language edition of every newsletter in the archive."""
    path = base_path(settings)
    sitemaps = "".join(
        f"Sitemap: {lang_base(one.for_language(lang))}/sitemap.xml\n"
        for one in archived_newsletters(settings)
        for lang in one.languages
    )
    return f"User-agent: *\nDisallow: {path}/u/\nDisallow: {path}/confirm/\nAllow: {path}/\n" + sitemaps


def feed_content(settings: Settings, edition: WebEdition) -> str:
    """The HTML of an edition's feed entry: its public stories in full."""
    items = [_story_view(settings, s) for s in edition.public_stories]
    return environment(settings.locale).get_template("feed_entry.html").render(items=items, edition=edition)
