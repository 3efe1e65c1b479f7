"""Check templates without rendering an edition: every template parses, and MJML tags balance."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .errors import TemplateError
from .render import template_path


def check_templates(env: jinja2.Environment, root: Path) -> list[TemplateError]:
    problems: list[TemplateError] = []
    for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(
                TemplateError(template_path(env, exc.name or name, root), exc.lineno, exc.message or "syntax error")
            )
    return problems
