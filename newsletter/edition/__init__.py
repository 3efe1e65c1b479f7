"""The edition pipeline: story files in, one edition's email out (pure but the last step).

In:  `stories/**/*.md` and the settings.
Out: an `Edition` (the chosen stories), its HTML and text parts, the list copy as a MIME message, and —
     only through `build.write_edition` — `outbox/<date>/` (HTML, text, `.eml`, `manifest.json`); the
     edition's photos in `site/images/`, published by `build` (photos.py) before rendering.

    stories.py    Markdown + YAML front matter → `Story` (fields.py checks each field; body.py renders and
                  sanitises the body; cleaning.py: characters and body limits)
    index.py      data/story-index.sqlite: each file's publication time, so a build reads its window only
    select.py     the window since the last edition, the order, the sections, the lead → `Edition`
    templates.py  the Jinja environment; one template rendered, errors naming file and line
    render.py     Jinja → MJML → HTML (mjml-python), CSS inlined (css-inline); the size budget
    text.py       the plain-text part from the same context (plain.py: wrapping, references)
    message.py    `multipart/alternative`, headers, quoted-printable
    lint.py       what `check` says about stories, templates and the rendered email (mjmlcheck.py)
    trackers.py   tracking pixels: recognised by size, host, path or query; removed from bodies
    photos.py     story photos published into site/images/ (the images subsystem) and sized for the email
    build.py      all of the above for one date, and the outbox written atomically
    languages.py  one edition per `[list] languages` entry (i18n.py: the gettext catalogues, Babel)

Public face: the names in `__all__`; the delivery, schedule and web subsystems import only these.
"""

from __future__ import annotations

from .body import sanitize_html
from .build import Build, StoriesInvalid, build, choose_date, own_skipped, read, read_window, stories_for, write_edition
from .i18n import language_name, text_direction, translations
from .index import StoryIndex
from .index import walk as walk_stories
from .languages import Editions, build_editions, languages_present
from .lint import CheckReport, check_newsletter, check_templates, lint_html, lint_stories, lint_text
from .message import AUTO_SUBMITTED, build_message, feedback_id, list_copy, list_id_header, make_message_id, serialize
from .photos import attach_images, email_image, email_logo
from .plain import personal_line
from .render import (
    Personal,
    Rendered,
    build_context,
    compile_mjml,
    edition_url,
    render_edition,
    render_html,
    render_mjml,
    story_page_url,
)
from .select import Edition, edition_date_for, edition_dates, newest_edition_date, select_edition, window
from .stories import LoadResult, Story, load_stories, parse_story, read_story
from .story_image import BodyPhoto
from .templates import default_templates_dir, make_environment, render_template
from .text import render_text, right_to_left
from .trackers import drop_tracking_images, tracker_host

__all__ = [
    "AUTO_SUBMITTED",
    "BodyPhoto",
    "Build",
    "CheckReport",
    "Edition",
    "Editions",
    "LoadResult",
    "Personal",
    "Rendered",
    "StoriesInvalid",
    "Story",
    "StoryIndex",
    "attach_images",
    "build",
    "build_context",
    "build_editions",
    "build_message",
    "check_newsletter",
    "check_templates",
    "choose_date",
    "compile_mjml",
    "default_templates_dir",
    "drop_tracking_images",
    "edition_date_for",
    "edition_dates",
    "edition_url",
    "email_image",
    "email_logo",
    "feedback_id",
    "language_name",
    "languages_present",
    "lint_html",
    "lint_stories",
    "lint_text",
    "list_copy",
    "list_id_header",
    "load_stories",
    "make_environment",
    "make_message_id",
    "newest_edition_date",
    "own_skipped",
    "parse_story",
    "personal_line",
    "read",
    "read_story",
    "read_window",
    "render_edition",
    "render_html",
    "render_mjml",
    "render_template",
    "render_text",
    "right_to_left",
    "sanitize_html",
    "select_edition",
    "serialize",
    "stories_for",
    "story_page_url",
    "text_direction",
    "tracker_host",
    "translations",
    "walk_stories",
    "window",
    "write_edition",
]
