"""The approval hash of each language edition of a date, as `build` makes it (editorial.edition_hash).

Built, not read from the story files, so what is hashed is what goes out: the stories the window and
the plan keep, in their order, with the subject and preheader the templates give them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..config import Settings
from ..editorial import edition_hash
from .build import Build
from .languages import build_editions


@dataclass(frozen=True)
class Digest:
    language: str
    edition: date
    content_hash: str
    subject: str
    stories: int


def digest_of(built: Build, plan: Mapping[str, Any] | None = None) -> Digest:
    """The approval hash of one built edition."""
    rendered = built.rendered
    stories = [(s.id, s.content_hash) for s in rendered.edition.stories]
    content = edition_hash(stories, subject=rendered.subject, preheader=rendered.preheader, plan=plan)
    language = built.settings.language
    return Digest(language, built.edition.date, content, rendered.subject, len(stories))


def edition_digests(settings: Settings, day: date | None = None) -> dict[str, Digest]:
    """language → Digest for every language edition of `day` (default: the newest edition)."""
    editions = build_editions(settings, day, skip_invalid=True)
    return {b.settings.language: digest_of(b) for b in editions.builds}
