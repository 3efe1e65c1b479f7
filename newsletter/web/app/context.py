"""What every handler of the public app shares, made once at start-up: the settings, the secret, the
stores, the rate limits, the page templates of each language edition — and the small helpers that
answer with a page in the visitor's language.

Handlers reach it as `request.app.state.ctx` (`context_of(request)`); nothing here touches a request's
body or writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ...config import Settings
from ...delivery import Suppression, open_suppression, secret_from_env
from ...edition import translations
from ...storage import SubscriberStore
from ..security import SignedCsrf, host_name
from ..site import masthead, page_environment, site_context
from .confirmations import ConfirmationQueue
from .language import pick_language
from .limits import SlidingWindow
from .options import WebOptions

_PAGE_DEFAULTS = {"canonical": None, "description": "", "image": "", "noindex": True}


@dataclass
class AppContext:
    settings: Settings
    options: WebOptions
    secret: bytes
    csrf: SignedCsrf
    store: SubscriberStore
    suppression: Suppression
    per_ip: SlidingWindow
    per_address: SlidingWindow
    queue: ConfirmationQueue
    envs: dict[str, jinja2.Environment] = field(default_factory=dict)
    texts: dict[str, Any] = field(default_factory=dict)
    site_infos: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        """Everything checked at once: a missing secret or a bad `[web]` value is a `ConfigError` here."""
        options = WebOptions.from_settings(settings)
        secret = secret_from_env()
        editions = {lang: settings.for_language(lang) for lang in settings.languages}
        loader = jinja2.ChoiceLoader(
            [jinja2.PackageLoader("newsletter.web.app", "templates"), jinja2.PackageLoader("newsletter.web.site")]
        )
        readers = open_suppression(settings)  # the reader base: SQLite, or PostgreSQL with database_url
        return cls(
            settings=settings,
            options=options,
            secret=secret,
            csrf=SignedCsrf(secret),
            store=readers.subscribers,  # the same connection: one reader base, one writer
            suppression=readers,
            per_ip=SlidingWindow(options.per_ip, options.window),
            per_address=SlidingWindow(options.per_address, options.window),
            queue=ConfirmationQueue.for_settings(settings),
            envs={lang: page_environment(loader, s.locale) for lang, s in editions.items()},
            texts={lang: translations(s.locale).gettext for lang, s in editions.items()},
            # The archive's masthead, logo included: these pages are the archive's to a reader.
            site_infos={
                lang: {**site_context(s, assets="/assets/"), "logo": masthead(s)} for lang, s in editions.items()
            },
        )

    @property
    def base(self) -> str:
        return self.settings.base_url.rstrip("/")

    @property
    def host_names(self) -> frozenset[str]:
        return frozenset(host_name(h) for h in self.options.hosts)

    def language_of(self, request: Request, form: FormData | None = None) -> str:
        form_lang = form.get("lang") if form is not None else None
        return pick_language(
            self.settings,
            request.query_params.get("lang"),
            str(form_lang or ""),
            request.headers.get("accept-language"),
        )

    def with_lang(self, path: str, lang: str) -> str:
        """`path` for a page in `lang`: the default language needs no parameter."""
        return path if lang == self.settings.languages[0] else f"{path}?lang={lang}"

    def page(self, template: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = self.envs[lang].get_template(template)
        html = page.render(site=self.site_infos[lang], **{**_PAGE_DEFAULTS, **context})
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store", "Content-Language": lang})

    def message(self, lang: str, status: int, heading: str, *lines: str, **context: Any) -> HTMLResponse:
        """The one-box page every answer but the forms uses: a heading, lines, maybe a button."""
        context.setdefault("action", "")
        context.setdefault("fields", [])
        context.setdefault("home", True)
        return self.page("message.html", lang, status, heading=heading, lines=lines, csrf=self.csrf.issue(), **context)

    def origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return origin != "null" and host_name(urlsplit(origin).netloc) in self.host_names

    async def form_of(self, request: Request) -> FormData:
        return await request.form(max_files=0, max_fields=20, max_part_size=self.options.max_body)

    def close(self) -> None:
        self.queue.close()


def context_of(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
