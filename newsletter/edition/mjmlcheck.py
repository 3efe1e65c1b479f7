"""Locating MJML problems in the templates: a branch-aware scan of the MJML tags, used by `check` and to
say where a compile error comes from (mrml's own messages name no template or line)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import jinja2

from ..errors import TemplateError
from .templates import HTML_TEMPLATE, template_path

_JINJA_EXPR = re.compile(r"\{\{.*?\}\}|\{#.*?#\}", re.S)
_SCAN = re.compile(
    r"\{%-?\s*(?P<jinja>if|elif|else|endif)\b.*?-?%\}"
    r"|<(?P<close>/?)(?P<tag>mjml|mj-[a-z-]+)\b(?P<attrs>[^>]*?)(?P<self>/?)>",
    re.S,
)
_MJML_ELEMENTS = frozenset(
    {
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-html-attribute",
        "mj-selector",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
        "mj-include",
        "mj-section",
        "mj-column",
        "mj-group",
        "mj-wrapper",
        "mj-text",
        "mj-image",
        "mj-button",
        "mj-divider",
        "mj-spacer",
        "mj-table",
        "mj-social",
        "mj-social-element",
        "mj-navbar",
        "mj-navbar-link",
        "mj-hero",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-carousel",
        "mj-carousel-image",
    }
)


def _template_sources(env: jinja2.Environment, root: Path) -> Iterator[tuple[str, str]]:
    for name in env.list_templates(filter_func=lambda n: n.endswith(".mjml.j2")):
        path = template_path(env, name, root)
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        yield path, source


def mjml_structure_problems(env: jinja2.Environment, root: Path) -> list[TemplateError]:
    """MJML mistakes in the templates, by file and line: unknown elements, tags left open or closed
    twice, a stray '<' inside a tag. The branches of a Jinja `if` are checked one by one, so a tag
    opened in both branches (as in the story card) is not a false alarm."""
    problems: list[TemplateError] = []
    for path, source in _template_sources(env, root):
        text = _JINJA_EXPR.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
        stack: list[tuple[str, int]] = []
        # Per open `if`: its line, the stack where it started, and the stacks its finished branches left.
        branches: list[tuple[int, list[tuple[str, int]], list[list[str]]]] = []

        def report(line: int, message: str, path: str = path) -> None:
            problems.append(TemplateError(path, line, f"MJML error: {message}"))

        for m in _SCAN.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            word = m.group("jinja")
            if word == "if":
                branches.append((line, list(stack), []))
            elif word in ("elif", "else") and branches:
                branches[-1][2].append([t for t, _ in stack])
                stack = list(branches[-1][1])
            elif word == "endif" and branches:
                if_line, _start, ends = branches.pop()
                if any(end != [t for t, _ in stack] for end in ends):
                    report(if_line, "the branches of this {% if %} leave different MJML tags open")
            elif word:
                continue
            if word:
                continue
            tag = m.group("tag")
            if tag not in _MJML_ELEMENTS:
                report(line, f"unknown element <{m.group('close')}{tag}>")
                continue
            if "<" in m.group("attrs"):
                report(line, f"stray '<' inside <{tag}>")
                continue
            if m.group("self"):
                continue
            if not m.group("close"):
                if tag == "mjml" and any(t == "mjml" for t, _ in stack):
                    report(line, f"<mjml> inside the <mjml> opened on line {stack[0][1]}")
                stack.append((tag, line))
            elif stack and stack[-1][0] == tag:
                stack.pop()
            elif stack:
                report(line, f"</{tag}> closes <{stack[-1][0]}> opened on line {stack[-1][1]}")
                stack.pop()
            else:
                report(line, f"</{tag}> has no opening tag")
        for tag, line in stack:
            report(line, f"<{tag}> is never closed")
    return problems


def locate_mjml_problem(env: jinja2.Environment, root: Path) -> tuple[str, int | None, str]:
    """Best effort: the first MJML mistake found in the templates, for an error mrml gave no place for."""
    problems = mjml_structure_problems(env, root)
    if problems:
        first = problems[0]
        return first.template, first.line, f" ({str(first).split('MJML error: ', 1)[1]})"
    return HTML_TEMPLATE, None, ""


def find_in_templates(env: jinja2.Environment, root: Path, needle: str) -> tuple[str, int | None]:
    for path, source in _template_sources(env, root):
        at = source.find(needle)
        if at >= 0:
            return path, source.count("\n", 0, at) + 1
    return HTML_TEMPLATE, None


_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_STYLE_BLOCK = re.compile(r"(<mj-style\b[^>]*>)(.*?)</mj-style>", re.S)
_TAG_LIKE = re.compile(r"<\s*/?\s*[A-Za-z!]")


def style_sheet_problems(env: jinja2.Environment, root: Path) -> list[TemplateError]:
    """Tag-like text (`<style>`, even in a CSS comment) in a style sheet or an `<mj-style>`.

    mjml-python lets it through, but MJML's reference compiler (the desktop app, editor plugins, the
    `mjml` CLI) refuses the whole email over it ("Malformed MJML"), so designers could not open it."""
    problems: list[TemplateError] = []
    for name in env.list_templates(filter_func=lambda n: n.endswith((".css", ".mjml.j2"))):
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        # Jinja comments never reach the output: blank them, keeping the line count.
        text = _JINJA_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
        if name.endswith(".css"):
            spans = [(0, text)]
        else:
            spans = [(m.start(2), m.group(2)) for m in _STYLE_BLOCK.finditer(text)]
        for start, css in spans:
            for m in _TAG_LIKE.finditer(css):
                line = text.count("\n", 0, start + m.start()) + 1
                problems.append(
                    TemplateError(
                        template_path(env, name, root),
                        line,
                        f"tag-like text {css[m.start() : m.start() + 12].split()[0]!r} in a style sheet: MJML's own "
                        "compiler refuses the email (Malformed MJML); write comments as {# … #}",
                    )
                )
    return problems
