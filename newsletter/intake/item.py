"""`Item`: one imported story before it is a file — what the feed and page readers produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ItemImage:
    src: str  # absolute https
    alt: str
    credit: str = ""


@dataclass
class Item:
    """A story as read from a feed entry or a page; every text is already plain and one line.

    Identity: `guid` (a feed GUID, namespaced by the feed when it is not globally unique) when there is
    one, else `url` (the canonical URL).
    """

    title: str
    published: datetime  # timezone-aware, with the offset the source gave
    guid: str | None = None
    url: str = ""
    summary: str = ""
    byline: str = ""
    section: str = ""  # the heading the source files it under ('' = none stated)
    categories: list[str] = field(default_factory=list)  # become the story's tags
    image: ItemImage | None = None
    body: str = ""  # Markdown
    lang: str = ""
    origin: str = ""  # where it came from, for messages: "feed.xml entry 3"
