"""What the desk's handlers share: `DeskContext` (made once: settings, stores, limits, page templates per
language) and `Desk` (one request: who is signed in, in which language, the form, and the helpers that
answer with a page or record an audit entry).
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from ...config import Settings
from ...edition import language_name, text_direction, translations
from ...editorial import AuditLog, PlanStore, open_audit, open_plans
from ..app.language import accept_language
from ..security import SignedCsrf
from .accounts import User, UserStore, open_users
from .limits import LoginLimit
from .options import DESK, DeskOptions
from .sessions import Session, SessionStore, open_sessions

PREFIX = "/desk"
COOKIE = "newsletter_desk"
# The languages of the desk itself: those whose catalogues translate it (newsletter/locale).
LANGUAGES = ("en", "fr", "es", "ar")
# The desk's pages run no script at all; the email is framed from our own URLs only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; frame-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _environment(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("newsletter.web.desk", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass
class DeskContext:
    settings: Settings
    options: DeskOptions
    users: UserStore
    sessions: SessionStore
    audit: AuditLog
    plans: PlanStore
    login_csrf: SignedCsrf
    limits: LoginLimit
    envs: dict[str, jinja2.Environment] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # what pages keep between requests (rendered editions)

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes) -> DeskContext:
        """Everything checked at once: a bad `[desk]` value or an unreadable store stops the server here."""
        options = settings.options(DESK)
        return cls(
            settings=settings,
            options=options,
            users=open_users(settings),
            sessions=open_sessions(settings, options.session_hours * 3600, options.idle_minutes * 60),
            audit=open_audit(settings),
            plans=open_plans(settings),
            login_csrf=SignedCsrf(secret + b"\0desk-login", max_age=3600),
            limits=LoginLimit(options.login_attempts, options.login_window),
            envs={lang: _environment(lang) for lang in LANGUAGES},
        )

    @property
    def newsletter(self) -> str:
        """The newsletter the desk works on by default: the list's id."""
        return self.settings.list.id

    def gettext(self, lang: str) -> Callable[[str], str]:
        """The desk's catalogue for `lang`: English text in, the staff member's language out."""
        texts: gettext.NullTranslations = translations(lang)
        return texts.gettext

    def language_for(self, request: Request, user: User | None = None) -> str:
        if user is not None and user.language in LANGUAGES:
            return user.language
        return accept_language(request.headers.get("accept-language", ""), LANGUAGES) or LANGUAGES[0]

    def render(self, lang: str, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = self.envs[lang].get_template(template)
        html = page.render(
            lang=lang,
            dir=text_direction(lang),
            prefix=PREFIX,
            title=self.settings.title,
            desk_languages=[(code, language_name(code)) for code in LANGUAGES],
            **context,
        )
        headers = {"Cache-Control": "no-store", "Content-Language": lang, "Content-Security-Policy": CSP}
        return HTMLResponse(html, status, headers=headers)

    def close(self) -> None:
        for store in (self.users, self.sessions, self.audit, self.plans):
            store.close()


def context_of(request: Request) -> DeskContext:
    ctx: DeskContext = request.app.state.desk
    return ctx


@dataclass
class Desk:
    """One request to a desk page, by a signed-in user (see registry.py)."""

    ctx: DeskContext
    request: Request
    user: User
    session: Session
    lang: str
    form: FormData | None = None
    nav: list[tuple[str, str]] = field(default_factory=list)  # (href, translated label)

    @property
    def _(self) -> Callable[[str], str]:
        return self.ctx.gettext(self.lang)

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    def field(self, name: str, limit: int = 1000) -> str:
        """A form field as text ("" when missing), cut at `limit` characters."""
        value = self.form.get(name, "") if self.form is not None else ""
        return value[:limit] if isinstance(value, str) else ""

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return self.ctx.render(
            self.lang, template, status, user=self.user, csrf=self.session.csrf, nav=self.nav,
            path=self.request.url.path, **context,
        )  # fmt: skip

    def message(self, status: int, heading: str, *lines: str) -> HTMLResponse:
        return self.page("message.html", status, heading=heading, lines=lines)

    def audit(self, action: str, target: str = "", detail: str | dict[str, Any] = "", newsletter: str = "") -> None:
        self.ctx.audit.record(self.user.name, action, target, detail, newsletter=newsletter or self.ctx.newsletter)

    def redirect(self, path: str) -> RedirectResponse:
        """303 to `path` under the desk (after a POST: the browser GETs it)."""
        return RedirectResponse(PREFIX + path, status_code=303)
