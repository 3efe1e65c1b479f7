"""The web archive: static pages for every edition and story the emails link to, an index, a feed.

model.py    an edition's web side (from its manifest and stories); URL ↔ file under `site/`
pages.py    Jinja pages (templates/), the Atom feed (feedgen), sitemap, robots.txt
writer.py   writing `site/` incrementally after a build, or all of it from the outbox
"""

from __future__ import annotations

from .model import WebEdition, file_for, site_dir, web_edition
from .pages import edition_page, masthead, page_environment, render, site_context, stylesheet
from .writer import SiteReport, publish_edition, rebuild_site

__all__ = [
    "SiteReport",
    "WebEdition",
    "edition_page",
    "file_for",
    "masthead",
    "page_environment",
    "publish_edition",
    "rebuild_site",
    "render",
    "site_context",
    "site_dir",
    "stylesheet",
    "web_edition",
]
