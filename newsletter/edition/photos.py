"""Story photos published with the archive: the build step between reading stories and rendering them.

A story's `image.src` (or an image in its body) that is a path relative to the story file — and, with
`[images] mirror = true`, an https one — is published by the images subsystem into `site/images/`; the
story comes back with the `Published` renditions on its image and the body's `<img>` pointing at them,
`width` and `height` set. A photo that cannot be published is a warning, and the story keeps its place
without it. This is the only step of the edition that writes (into `site/images/`, named by content).

`email_image` then picks, for each place the email shows a photo, the file sharp on a 2× screen and
the `width`/`height` the `<img>` carries (Outlook on Windows shows a photo at its natural width without).
"""

from __future__ import annotations

import html as htmllib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from markupsafe import escape

from ..config import Settings
from ..errors import StoryError
from ..images import (
    BODY_WIDTH,
    EMAIL_WIDTH,
    ImageRefused,
    Masthead,
    Published,
    Publisher,
    Shown,
    Work,
    image_options,
)
from .body import Block
from .stories import Story
from .story_image import LOCAL_IMAGES, BodyPhoto, Image

_IMG = re.compile(r"<img\b[^>]*>")
_ATTR = re.compile(r'\b(src|alt|title)="([^"]*)"')


def attach_images(
    stories: Sequence[Story], settings: Settings, work: Work | None = None
) -> tuple[list[Story], list[StoryError]]:
    """`stories` with their photos published (see the module docstring), and a warning per photo left out.

    Photos are independent: they are processed on a few threads (Pillow decodes and resizes outside the
    GIL), in the stories' order for the results."""
    options = image_options(settings)
    publisher = Publisher(options, settings.base_url)
    if work is not None:
        publisher.work = work
    todo = [s for s in stories if _has_images(s, options.mirror)]
    try:
        if len(todo) > 1:
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                done = list(pool.map(lambda s: _story(s, publisher, settings.stories_dir, options.mirror), todo))
        else:
            done = [_story(s, publisher, settings.stories_dir, options.mirror) for s in todo]
    finally:
        publisher.close()
    by_id = {story.id: story for story, _ in done}
    return [by_id.get(s.id, s) for s in stories], [w for _, notes in done for w in notes]


def _has_images(story: Story, mirror: bool) -> bool:
    if story.image is not None and (mirror or not _remote(story.image.src)):
        return True
    return any("<img" in b.html for b in story.blocks)


def _remote(src: str) -> bool:
    return "://" in src


def _publish(publisher: Publisher, src: str, story: Story, stories_dir: Path, mirror: bool) -> Published | None:
    """`src` published, or None when it stays as it is (an https photo without mirroring)."""
    if src.startswith(LOCAL_IMAGES):
        return publisher.local(stories_dir / unquote(src[len(LOCAL_IMAGES) :]))
    if not _remote(src):
        return publisher.local(stories_dir / Path(story.id).parent / unquote(src))
    return publisher.remote(src) if mirror else None


def _story(story: Story, publisher: Publisher, stories_dir: Path, mirror: bool) -> tuple[Story, list[StoryError]]:
    notes: list[StoryError] = []
    image: Image | None = story.image
    if image is not None:
        try:
            published = _publish(publisher, image.src, story, stories_dir, mirror)
            if published is not None:
                image = replace(image, published=published)
        except ImageRefused as exc:
            notes.append(StoryError(story.path, "image.src", f"{image.src}: {exc}; shown without the photo"))
            image = None
    shown: dict[str, BodyPhoto] = {}
    blocks = tuple(_block(b, story, publisher, stories_dir, mirror, notes, shown) for b in story.blocks)
    return replace(story, image=image, blocks=blocks, body_photos=tuple(shown.values())), notes


def _block(
    block: Block,
    story: Story,
    publisher: Publisher,
    stories_dir: Path,
    mirror: bool,
    notes: list[StoryError],
    shown: dict[str, BodyPhoto],
) -> Block:
    """The block with each photo it shows published and sized for the email; `shown` learns which
    renditions each `<img>` stands for (the archive offers them all)."""
    if "<img" not in block.html:
        return block

    def one(match: re.Match[str]) -> str:
        attrs = {k: htmllib.unescape(v) for k, v in _ATTR.findall(match.group(0))}
        src = attrs.get("src", "")
        shown_src = src.removeprefix(LOCAL_IMAGES)
        try:
            published = _publish(publisher, src, story, stories_dir, mirror)
        except ImageRefused as exc:
            notes.append(StoryError(story.path, None, f"image {shown_src} in the body: {exc}; left out"))
            return ""
        if published is None:
            return match.group(0)
        best, width, height = published.for_width(BODY_WIDTH)
        shown[best.url] = BodyPhoto(shown_src, best.url, published)
        title = f' title="{escape(attrs["title"])}"' if "title" in attrs else ""
        return (
            f'<img src="{escape(best.url)}" alt="{escape(attrs.get("alt", ""))}"{title} '
            f'width="{width}" height="{height}">'
        )

    return replace(block, html=_IMG.sub(one, block.html))


def oversized_images(stories: Sequence[Story], settings: Settings) -> list[str]:
    """A warning for each photo (the story's, or one in its body) whose file in the email is over
    `[images] max_kb` after processing."""
    limit = image_options(settings).max_kb
    found = []
    for story in stories:
        if story.image is not None and story.image.published is not None:
            best, _, _ = story.image.published.for_width(EMAIL_WIDTH)
            if best.bytes > limit * 1000:
                found.append(
                    f"{story.path}: field 'image.src': {story.image.src} is {best.bytes / 1000:.0f} KB in the email "
                    f"after processing, over [images] max_kb = {limit}: a busy photo; a simpler crop loads faster"
                )
        for photo in story.body_photos:
            size = photo.in_email.bytes
            if size > limit * 1000:
                found.append(
                    f"{story.path}: image {photo.src} in the body is {size / 1000:.0f} KB in the email after "
                    f"processing, over [images] max_kb = {limit}: a busy photo; a simpler crop loads faster"
                )
    return found


def email_logo(settings: Settings) -> tuple[Masthead | None, list[StoryError]]:
    """The masthead logo of `[images.logo]`, published like a photo (an https one fetched once), as the
    header shows it, or None; and a warning per variant left out."""
    options = image_options(settings)
    logo = options.logo
    if logo is None:
        return None, []
    publisher = Publisher(options, settings.base_url)
    shown: dict[str, Shown] = {}
    notes: list[StoryError] = []
    try:
        for which, src in (("src", logo.src), ("dark", logo.dark)):
            if not src:
                continue
            try:
                published = publisher.remote(src) if _remote(src) else publisher.local(settings.root / src)
            except ImageRefused as exc:
                notes.append(StoryError(_config_name(settings), f"images.logo.{which}", f"{src}: {exc}; no logo"))
                continue
            best, width, height = published.for_width(logo.width)
            shown[which] = Shown(best.url, width, height)
    finally:
        publisher.close()
    if "src" not in shown:
        return None, notes
    return Masthead(logo.alt, shown["src"], shown.get("dark")), notes


def _config_name(settings: Settings) -> str:
    return settings.config_file.name if settings.config_file is not None else "newsletter.toml"


def email_image(image: Image | None, shown: int) -> dict[str, Any] | None:
    """What the email's `<mj-image>` needs for a photo shown `shown` px wide: src, alt, credit, width
    and height (None for an https photo not mirrored, whose height is not known)."""
    if image is None:
        return None
    view: dict[str, Any] = {"src": image.src, "alt": image.alt, "credit": image.credit, "width": shown, "height": None}
    if image.published is not None:
        best, view["width"], view["height"] = image.published.for_width(shown)
        view["src"] = best.url
    return view
