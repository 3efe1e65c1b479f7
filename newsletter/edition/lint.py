"""Lint templates and a rendered edition for what mail clients and readers trip over, and `check_newsletter`,
which runs every check over a newsletter folder."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import jinja2

from ..config import Settings
from ..errors import EditionError, TemplateError
from .build import choose_date, stories_for
from .mjmlcheck import mjml_structure_problems, style_sheet_problems
from .photos import attach_images, oversized_images
from .plain import WIDTH, breaks_anywhere, display_width
from .render import render_edition
from .select import select_edition
from .stories import Story, load_stories
from .templates import make_environment, template_path

PREHEADER_MIN, PREHEADER_MAX = 40, 140


@dataclass(frozen=True)
class Problem:
    level: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.html_attrs: dict[str, str | None] = {}
        self.tables_without_role = 0
        self.images_without_alt: list[str] = []
        self.relative_links: list[str] = []
        self.styled_classes = 0
        self.unstyled_classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag == "table" and a.get("role") != "presentation":
            self.tables_without_role += 1
        elif tag == "img" and a.get("alt") is None:
            self.images_without_alt.append(a.get("src") or "?")
        for name in ("href", "src"):
            value = (a.get(name) or "").strip()
            if value and not value.startswith(("http://", "https://", "mailto:", "tel:", "cid:", "#")):
                self.relative_links.append(value)
        cls = a.get("class") or ""
        if any(c.startswith("nl-") for c in cls.split()):
            if "style" in a:
                self.styled_classes += 1
            else:
                self.unstyled_classes.append(cls)


def lint_html(html: str, preheader: str, budget: int, where: str = "newsletter.html") -> list[Problem]:
    scan = _Scan()
    scan.feed(html)
    problems: list[Problem] = []
    size = len(html.encode("utf-8"))

    def add(level: str, message: str) -> None:
        problems.append(Problem(level, where, message))

    if size > budget:
        add("error", f"HTML is {size / 1000:.1f} KB, over the {budget / 1000:.0f} KB budget (Gmail clips at 102 KB)")
    elif size > 0.9 * budget:
        add("warning", f"HTML is {size / 1000:.1f} KB, {size / budget:.0%} of the {budget / 1000:.0f} KB budget")
    if not PREHEADER_MIN <= len(preheader) <= PREHEADER_MAX:
        add("warning", f"preheader is {len(preheader)} characters; inboxes show {PREHEADER_MIN}-{PREHEADER_MAX}")
    lang = scan.html_attrs.get("lang")
    if not lang or lang == "und":
        add("error", "<html> has no lang attribute")
    if scan.html_attrs.get("dir") not in ("ltr", "rtl"):
        add("error", "<html> has no dir attribute (ltr or rtl)")
    if scan.tables_without_role:
        add("error", f'{scan.tables_without_role} layout table(s) without role="presentation"')
    for src in scan.images_without_alt:
        add("error", f"image without alt text: {src}")
    for link in sorted(set(scan.relative_links)):
        add("error", f"link is not absolute: {link}")
    if scan.unstyled_classes or not scan.styled_classes:
        add("error", "CSS is not inlined: styled elements carry no style attribute")
    return problems


LONG_WORD = 30  # characters; longer unbroken words are split mid-word on a 320 px phone


def lint_stories(stories: Iterable[Story]) -> list[Problem]:
    """Words too long for a phone's line. The layout breaks them anyway (overflow-wrap), but mid-word:
    the editor may prefer a hyphen or a shorter link text."""
    problems = []
    for story in stories:
        fields = {"title": story.title, "summary": story.summary}
        for name, value in fields.items():
            for word in value.split():
                # Chinese or Japanese text breaks between any two characters: not an unbroken word.
                if len(word) > LONG_WORD and "://" not in word and not any(map(breaks_anywhere, word)):
                    problems.append(
                        Problem(
                            "warning",
                            f"{story.path}: field '{name}'",
                            f"unbroken word of {len(word)} characters will be split on phones: {word[:24]}…",
                        )
                    )
                    break
    return problems


def lint_text(text: str, where: str = "newsletter.txt") -> list[Problem]:
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        if display_width(line) > WIDTH and "://" not in line:
            problems.append(Problem("warning", f"{where}:{n}", f"line is {display_width(line)} columns (> {WIDTH})"))
    return problems


def check_templates(env: jinja2.Environment, root: Path) -> list[TemplateError]:
    """Every template parses and its MJML is well formed; each problem names the template file and line."""
    problems: list[TemplateError] = []
    for name in env.list_templates(filter_func=lambda n: n.endswith((".j2", ".css"))):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(
                TemplateError(template_path(env, exc.name or name, root), exc.lineno, exc.message or "syntax error")
            )
    return problems + mjml_structure_problems(env, root) + style_sheet_problems(env, root)


@dataclass
class CheckReport:
    """What `newsletter check` found: every problem, one line each."""

    stories: int
    errors: list[str]
    warnings: list[str]


def check_newsletter(
    settings: Settings, day: date | None = None, on_file: Callable[[], None] | None = None
) -> CheckReport:
    """Validate every story and template, then lint the rendered edition of `day` (default: the newest).

    `on_file` is called after each story file is read (the CLI's progress bar over a big archive)."""
    loaded = load_stories(settings.stories_dir, settings.root, settings.base_url, on_file=on_file)
    errors: list[str] = [str(e) for e in loaded.errors]
    warnings: list[str] = [str(w) for w in loaded.warnings]
    env = make_environment(settings)
    errors.extend(str(e) for e in check_templates(env, settings.root))
    if not errors and loaded.stories:
        try:
            day_ = choose_date(loaded.stories, settings, day)
        except EditionError as exc:
            errors.append(str(exc))
        else:
            for lang in settings.languages:  # every language edition, each with its own catalogue
                _check_edition(settings.for_language(lang), loaded.stories, day_, errors, warnings)
    elif not loaded.stories and not errors:
        errors.append(f"{settings.stories_dir}: no stories found")
    return CheckReport(len(loaded.stories), errors, warnings)


def _check_edition(settings: Settings, stories: list[Story], day: date, errors: list[str], warnings: list[str]) -> None:
    which = f" ({settings.language})" if settings.multilingual else ""
    own = stories_for(stories, settings)
    try:
        # The photos as `build` publishes them (cached: the build that follows reuses them), and their size.
        shown, notes = attach_images(select_edition(own, day, settings).stories, settings)
        warnings.extend([str(n) for n in notes] + oversized_images(shown, settings))
        rendered = render_edition(select_edition(shown, day, settings), settings, make_environment(settings))
    except (EditionError, TemplateError) as exc:
        if settings.multilingual and isinstance(exc, EditionError) and "no stories" in str(exc):
            warnings.append(f"{exc}{which}: that language edition is not built")
            return
        errors.append(str(exc))
        return
    for p in lint_html(rendered.html, rendered.preheader, settings.html_budget) + lint_text(rendered.text):
        (errors if p.level == "error" else warnings).append(str(p))
    warnings.extend(str(p) for p in lint_stories(rendered.edition.stories))
    if rendered.demoted:
        warnings.append(
            f"edition {day}{which}: {len(rendered.demoted)} story(ies) go to 'More stories' to fit the size budget"
        )
