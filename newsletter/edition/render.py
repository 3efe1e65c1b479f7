"""Render an edition to HTML: Jinja → MJML → HTML (mjml-python) → CSS inlined (css-inline).

Returns strings and touches no files. The same context feeds the plain-text template (`text.py`), so
both parts always say the same thing.

Personal parts (greeting, view-in-browser and unsubscribe URLs) are plain context values, so the
mailing stage can render an edition once and fill them in per subscriber.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from babel.dates import format_date, format_time
from markupsafe import Markup, escape
from mjml import mjml2html

from ..config import Settings
from ..errors import EditionError, TemplateError
from ..images import CARD_WIDTH, EMAIL_WIDTH
from .body import Block
from .i18n import N_, text_direction, translations
from .mjmlcheck import find_in_templates, locate_mjml_problem
from .photos import email_image
from .select import Edition, demotable, demote, select_edition
from .stories import Story
from .templates import HTML_TEMPLATE, make_environment, render_template
from .text import render_text

_INLINE_STYLE = re.compile(r'<mj-style\s+inline="inline"\s*>(.*?)</mj-style>', re.S)
# An attribute value holding something beyond ASCII (alt text, titles).
_WIDE_ATTRIBUTE = re.compile(r'="([^"<>]*[^\x00-\x7f][^"<>]*)"')
_FIXED_IMG_HEIGHT = re.compile(r'(<img\b[^>]*?\bstyle="[^"]*?)height:\d+px;')
# Story kinds as readers see them, translated where shown (extracted by pybabel through N_).
KIND_LABELS = {
    "video": N_("Video"),
    "audio": N_("Audio"),
    "podcast": N_("Podcast"),
    "gallery": N_("Gallery"),
    "analysis": N_("Analysis"),
    "opinion": N_("Opinion"),
    "interview": N_("Interview"),
    "live": N_("Live"),
}


@dataclass(frozen=True)
class Personal:
    """What differs between subscribers. The defaults are the list copy written to the outbox."""

    name: str = ""
    view_url: str = ""
    unsubscribe_url: str = ""
    manage_url: str = ""  # the reader's signed "manage my subscription" page; none in the list copy


@dataclass
class Rendered:
    edition: Edition
    html: str
    text: str
    subject: str
    preheader: str
    context: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def demoted(self) -> tuple[Story, ...]:
        return self.edition.more

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


# --- context ---------------------------------------------------------------------------------------


def edition_url(settings: Settings, edition: Edition) -> str:
    """The web copy of the edition ("view in your browser"): the default language's at `/editions/<date>/`,
    another language's at `/<lang>/editions/<date>/`."""
    return f"{settings.base_url}{_lang_prefix(settings)}/editions/{edition.date.isoformat()}/"


def _lang_prefix(settings: Settings) -> str:
    """`/<lang>` for a language edition other than the list's first one, else '' (the archive's layout;
    under `/<newsletter>` for a newsletter other than the default one)."""
    return settings.archive_prefix


def story_page_url(settings: Settings, edition: Edition, story: Story) -> str:
    """Where a story without a `url` of its own is read in full: `<base_url>/YYYY/MM/DD/<anchor>` (under
    `/<lang>/` for a language edition other than the default), the edition's date and the story's anchor
    (unique within the edition), so the address never collides."""
    prefix = f"/{settings.language}" if settings.language != settings.languages[0] else ""
    return f"{settings.base_url}{prefix}/{edition.date.strftime('%Y/%m/%d')}/{edition.anchor(story)}"


def build_context(edition: Edition, settings: Settings, personal: Personal | None = None) -> dict[str, Any]:
    personal = personal or Personal()
    lang = settings.locale.replace("_", "-")
    direction = text_direction(lang)
    _ = translations(settings.locale).gettext
    date_long = format_date(edition.date, format="full", locale=settings.locale)

    def view(story: Story, words: int, *, lead: bool = False) -> dict[str, Any]:
        return _story_view(edition, settings, story, words, lead=lead)

    card_words = settings.card_excerpt_words
    greeting, greeting_html = _greeting(personal, direction, _)
    return {
        "newsletter": {
            "title": settings.title,
            # The default tagline is in the catalogues; a list's own tagline shows as written.
            "tagline": _(settings.tagline) if settings.tagline else "",
            "base_url": settings.base_url,
            "site": settings.base_url.split("://", 1)[-1],
            "sender": settings.sender.name,
            "sender_address": settings.sender.address,
        },
        "lang": lang,
        "dir": direction,
        # The edition's start side: headings and lists line up with the reader's language.
        "align": "right" if direction == "rtl" else "left",
        "subject": edition.subject or settings.subject.format(title=settings.title, date=date_long),
        "preheader": edition.preheader or _preheader(edition),
        "date": edition.date,
        "date_long": date_long,
        "lead": view(edition.lead, settings.excerpt_words, lead=True),
        "sections": [{"name": s.name, "stories": [view(st, card_words) for st in s.stories]} for s in edition.sections],
        "more": [view(st, 0) for st in edition.more],
        "more_label": _("More stories"),
        "story_count": len(edition.stories),
        "greeting": greeting,
        "greeting_html": greeting_html,
        "view_url": personal.view_url or edition_url(settings, edition),
        "logo": edition.logo,
        # The list copy's generic link: the archive's unsubscribe page in this edition's language.
        "unsubscribe_url": personal.unsubscribe_url or f"{settings.base_url}{_lang_prefix(settings)}/unsubscribe",
        "manage_url": personal.manage_url,
    }


def _greeting(personal: Personal, direction: str, _: Callable[[str], str]) -> tuple[str, Markup]:
    """The greeting as text (the text part) and as HTML, where a Latin name in a right-to-left edition
    is isolated so it cannot reorder the Arabic around it."""
    greeting = _("Good morning, %(name)s") % {"name": personal.name} if personal.name else _("Good morning")
    if personal.name and direction == "rtl":
        return greeting, escape(_("Good morning, %(name)s")) % {"name": Markup("<bdi>%s</bdi>") % personal.name}
    return greeting, escape(greeting)


def _story_view(edition: Edition, settings: Settings, story: Story, words: int, *, lead: bool) -> dict[str, Any]:
    """One story as the templates show it: the lead (`lead`, excerpt of `words`) or a card."""
    _ = translations(settings.locale).gettext
    direction = text_direction(settings.locale.replace("_", "-"))
    # Cards are for skimming: the standfirst when there is one, else the start of the body.
    blocks, truncated = _excerpt(story.blocks, words if lead or not story.summary else 0)
    kind = _(KIND_LABELS[story.kind]) if story.kind in KIND_LABELS else story.kind.capitalize()
    published = format_time(story.published.astimezone(settings.timezone), format="short", locale=settings.locale)
    meta = [p for p in (story.byline, published) if p]
    return {
        "id": story.id,
        "anchor": edition.anchor(story),
        "title": story.title,
        "summary": story.summary,
        "section": story.section,
        # Under a section heading the section name would say it twice: cards name only the kind.
        "kicker": (story.section if story.kind == "article" else f"{kind} · {story.section}")
        if lead
        else ("" if story.kind == "article" else kind),
        "kind": story.kind,
        "byline": story.byline,
        "meta_line": " · ".join(meta),
        # In a right-to-left edition each part is isolated: a Latin byline keeps its own order.
        "meta_html": Markup(" · ").join(Markup("<bdi>%s</bdi>") % p for p in meta)
        if direction == "rtl"
        else escape(" · ".join(meta)),
        "published": story.published,
        "url": story.url,
        "read_more_url": story.url or story_page_url(settings, edition, story),
        "read_more_label": _("Watch")
        if story.kind == "video"
        else (_("Listen") if story.kind in ("audio", "podcast") else _("Read more")),
        # The arrow points the way the edition's language reads.
        "arrow": "←" if direction == "rtl" else "→",
        "show_read_more": truncated or bool(story.url),
        "truncated": truncated,
        "image": email_image(story.image, EMAIL_WIDTH if lead else CARD_WIDTH),
        "tags": story.tags,
        "lang": story.lang,
        "dir": story.dir,
        "align": "right" if story.dir == "rtl" else "left",
        "excerpt_html": Markup("".join(b.html for b in blocks)),
        "excerpt_blocks": blocks,
    }


def _excerpt(blocks: tuple[Block, ...], words: int) -> tuple[tuple[Block, ...], bool]:
    """Whole blocks up to about `words` words; True when something was left out."""
    if words <= 0:
        return (), bool(blocks)
    taken: list[Block] = []
    count = 0
    for block in blocks:
        # A block announcing what follows ("…focusing on:") keeps its list, whatever the count.
        announces = bool(taken) and taken[-1].html.rstrip().removesuffix("</p>").rstrip().endswith(":")
        if count and count + block.words > words and not announces:
            break
        taken.append(block)
        count += block.words
        if count >= words and not block.html.rstrip().removesuffix("</p>").rstrip().endswith(":"):
            break
    return tuple(taken), len(taken) < len(blocks)


def _preheader(edition: Edition) -> str:
    """The inbox preview line: the lead's standfirst, cut to what inboxes show (~90-140 chars)."""
    text = edition.lead.summary or edition.lead.title
    if len(text) > 140:
        text = text[:139].rsplit(" ", 1)[0] + "…"
    return text


# --- rendering ---------------------------------------------------------------------------------------


def compile_mjml(mjml_source: str, env: jinja2.Environment, root: Path) -> str:
    """MJML → HTML with the `inline="inline"` styles applied to the elements (mrml does not inline)."""
    inline_css = "\n".join(_INLINE_STYLE.findall(mjml_source))
    source = _WIDE_ATTRIBUTE.sub(_protect_marks, _INLINE_STYLE.sub("", mjml_source))
    try:
        html = mjml2html(source, disable_comments=True, fonts={})
    except Exception as exc:
        where, line, hint = locate_mjml_problem(env, root)
        raise TemplateError(where, line, f"MJML error: {exc}{hint}") from None
    leftover = re.search(r"<(mj-[a-z-]+)", html)
    if leftover:
        where, line = find_in_templates(env, root, f"<{leftover.group(1)}")
        raise TemplateError(where, line, f"MJML error: unknown element <{leftover.group(1)}>")
    return _inliner(inline_css).inline(html)


def _protect_marks(match: re.Match[str]) -> str:
    """Combining marks in an attribute as character references.

    mrml writes a combining character in an attribute value as a Rust escape (`ليلاً` → `ليلا\\u{64b}`
    in an Arabic alt text; Hindi vowel signs the same), which readers would see; a character reference
    passes through, and the CSS inliner turns it back into the character.
    """
    value = match.group(1)
    if not any(unicodedata.category(c) in _MARKS for c in value):
        return match.group(0)
    return '="' + "".join(f"&#x{ord(c):X};" if unicodedata.category(c) in _MARKS else c for c in value) + '"'


_MARKS = frozenset({"Mn", "Mc", "Me", "Cf"})


@lru_cache(maxsize=8)
def _inliner(css: str) -> css_inline.CSSInliner:
    # keep_style_tags: media queries (mobile layout) and dark-mode rules only work from <style>.
    return css_inline.CSSInliner(
        inline_style_tags=False, keep_style_tags=True, extra_css=css or None, load_remote_stylesheets=False
    )


def render_html(
    env: jinja2.Environment, context: dict[str, Any], root: Path, timings: dict[str, float] | None = None
) -> str:
    t0 = time.perf_counter()
    mjml_source = render_template(env, HTML_TEMPLATE, context, root)
    t1 = time.perf_counter()
    html = compile_mjml(mjml_source, env, root)
    # An <mj-image> with a height writes it into the style too, which would stretch a photo that
    # shrinks with a phone's screen: the attribute stays (Outlook reserves the space), the style scales.
    html = _FIXED_IMG_HEIGHT.sub(r"\1height:auto;", html)
    if context.get("dir") == "rtl":
        # mjml-python sets `direction:ltr` on every section and column whatever the page's `dir`; in a
        # right-to-left edition they must read (and order their columns) right to left. A story in a
        # left-to-right language keeps its own `dir` attribute.
        html = html.replace("direction:ltr", "direction:rtl")
    if timings is not None:
        timings["render_mjml"] = timings.get("render_mjml", 0.0) + t1 - t0
        timings["compile"] = timings.get("compile", 0.0) + time.perf_counter() - t1
    return html


def render_mjml(settings: Settings, context: dict[str, Any], env: jinja2.Environment | None = None) -> str:
    """The MJML of an edition as the templates write it, before compiling: what MJML's own tools open.

    The `inline="inline"` styles are left in their `<mj-style>` (MJML's compiler inlines them itself)."""
    return render_template(env or make_environment(settings), HTML_TEMPLATE, context, settings.root)


def _name_the_story(
    exc: TemplateError, edition: Edition, attempt: Callable[[Edition], Any], settings: Settings
) -> TemplateError:
    """A compile error the templates alone do not cause: find the story that does and name it.

    Each story is rendered alone (only on this error path); one that fails while another renders is the
    culprit. When every one fails, the templates are at fault and the error stays as it was.
    """
    failing: list[Story] = []
    renders = False
    for story in edition.stories:
        try:
            attempt(select_edition([story], edition.date, settings))
            renders = True
        except TemplateError:
            failing.append(story)
        except EditionError:
            continue
    if failing and renders:
        return TemplateError(failing[0].path, None, f"breaks the email template ({exc})")
    return exc


def render_edition(
    edition: Edition,
    settings: Settings,
    env: jinja2.Environment | None = None,
    personal: Personal | None = None,
    on_demote: Callable[[int], None] | None = None,
) -> Rendered:
    """HTML and text for `edition`, within the HTML size budget.

    When the full layout is over budget, the lowest-ranked stories move to the "More stories" list:
    the fewest that make it fit (found by bisection, since each extra story moved only shrinks the
    email). The lead is never moved; if the email is still too big with every other story moved,
    that is an error.
    """
    env = env or make_environment(settings)
    timings: dict[str, float] = {}

    def attempt(ed: Edition) -> tuple[dict[str, Any], str]:
        ctx = build_context(ed, settings, personal)
        return ctx, render_html(env, ctx, settings.root, timings)

    try:
        context, html = attempt(edition)
    except TemplateError as exc:
        raise _name_the_story(exc, edition, attempt, settings) from None
    budget = settings.html_budget
    if len(html.encode()) > budget:
        low, high = 1, demotable(edition)
        ctx_hi, html_hi = attempt(demote(edition, high))
        if len(html_hi.encode()) > budget:
            raise EditionError(
                f"edition {edition.date}: HTML is {len(html_hi.encode()) / 1000:.1f} KB even with every story but "
                f"the lead in 'More stories'; the budget is {budget / 1000:.0f} KB (html_budget_kb)"
            )
        best = (high, ctx_hi, html_hi)
        while low < high:
            mid = (low + high) // 2
            ctx_mid, html_mid = attempt(demote(edition, mid))
            if len(html_mid.encode()) <= budget:
                best, high = (mid, ctx_mid, html_mid), mid
            else:
                low = mid + 1
        count, context, html = best
        edition = demote(edition, count)
        if on_demote:
            on_demote(count)
    t0 = time.perf_counter()
    text = render_text(env, context, settings.root)
    timings["text"] = time.perf_counter() - t0
    return Rendered(
        edition=edition,
        html=html,
        text=text,
        subject=context["subject"],
        preheader=context["preheader"],
        context=context,
        timings=timings,
    )
