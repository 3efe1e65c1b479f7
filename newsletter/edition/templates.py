"""The Jinja side: where templates come from, the environment, and rendering one template with errors
that name the template file and line.

Both parts of an email render through here: `render.py` (HTML, through MJML) and `text.py` (plain text).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..config import Settings
from ..errors import TemplateError
from .i18n import translations
from .plain import install_filters

HTML_TEMPLATE = "newsletter.mjml.j2"
TEXT_TEMPLATE = "newsletter.txt.j2"


def default_templates_dir() -> Path:
    """The templates shipped with the package (a wheel), or the checkout's top-level `templates/`."""
    shipped = Path(str(resources.files("newsletter"))) / "templates"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "templates"


def make_environment(settings: Settings) -> jinja2.Environment:
    """The Jinja environment for `settings`' edition language: its gettext catalogue is installed, so
    `{% trans %}` and `_()` in the templates speak the reader's language (English when untranslated)."""
    dirs = [d for d in (*settings.template_dirs, settings.templates_dir, default_templates_dir()) if d.is_dir()]
    env = jinja2.Environment(
        loader=TemplateLoader([str(d) for d in dict.fromkeys(dirs)], dict(settings.template_files)),
        # MJML templates are escaped; the plain-text template and the CSS are not (they are not HTML).
        autoescape=lambda name: bool(name) and not str(name).endswith((".txt.j2", ".css")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(settings.locale), newstyle=True)  # type: ignore[attr-defined]
    install_filters(env)
    env.filters["bidi"] = _isolate
    return env


class TemplateLoader(jinja2.FileSystemLoader):
    """The template folders, with single files standing in for named templates (a newsletter's palette,
    an alert's layout: `Settings.template_files`)."""

    def __init__(self, searchpath: list[str], files: dict[str, Path]) -> None:
        super().__init__(searchpath)
        self.files = files

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        stand_in = self.files.get(template)
        if stand_in is None:
            return super().get_source(environment, template)
        try:
            source = stand_in.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise jinja2.TemplateNotFound(str(stand_in)) from None
        mtime = stand_in.stat().st_mtime
        return source, str(stand_in), lambda: stand_in.is_file() and stand_in.stat().st_mtime == mtime


@jinja2.pass_context
def _isolate(context: jinja2.runtime.Context, value: object) -> Markup:
    """`<bdi>value</bdi>` in a right-to-left edition, so a Latin name or a number inside Arabic text keeps
    its own direction and does not reorder the words around it; the value unchanged (escaped) otherwise."""
    if context.get("dir") == "rtl" and str(value):
        return Markup("<bdi>%s</bdi>") % value
    return escape(value)


def template_path(env: jinja2.Environment, name: str, root: Path) -> str:
    """Where template `name` comes from, as a user would type it."""
    loader = env.loader
    assert isinstance(loader, jinja2.FileSystemLoader)
    stand_in = loader.files.get(name) if isinstance(loader, TemplateLoader) else None
    if stand_in is not None:
        try:
            return stand_in.resolve().relative_to(root).as_posix()
        except ValueError:
            return str(stand_in)
    for base in loader.searchpath:
        candidate = Path(base) / name
        if candidate.is_file():
            try:
                return candidate.resolve().relative_to(root).as_posix()
            except ValueError:
                return str(candidate)
    return name


def render_template(env: jinja2.Environment, name: str, context: dict[str, Any], root: Path) -> str:
    """Render one Jinja template; any error names the template file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            template_path(env, exc.name or name, root), exc.lineno, exc.message or "syntax error"
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(template_path(env, name, root), None, f"template not found: {exc.name}") from None
    except Exception as exc:  # runtime errors: find the template frame Jinja put in the traceback
        where, line = name, None
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith(".j2") or frame.filename.endswith(".css"):
                where, line = frame.filename, frame.lineno
                break
        shown = where
        with contextlib.suppress(ValueError):
            shown = Path(where).resolve().relative_to(root).as_posix()
        raise TemplateError(shown, line, f"{type(exc).__name__}: {exc}") from None
