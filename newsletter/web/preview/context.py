"""What every handler of the preview app shares: the previewer, the page templates, the live-reload hub,
the CSRF guard and the notices shown after a form; and the small steps handlers are made of (read the
date and language of a request, render a page, go back to an edition with a notice).

One `Preview` per app, kept in `app.state.preview`; a handler finds it with `preview_of(request)`.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from ...edition import lint_html, lint_text
from .parts import Hub, Notice, has_dark_styles, mailing_state, page_templates, secret_ready
from .security import PAGE_CSP, CsrfGuard
from .state import EditionView, Previewer

GMAIL_CLIP = 102 * 1024
WIDTHS = ("320", "375", "600", "full")
MAX_FORM = 16 * 1024
_NOTICES = 64


@dataclass
class Preview:
    previewer: Previewer
    hosts: frozenset[str]
    say: Callable[[str], None]
    env: jinja2.Environment = field(default_factory=page_templates)
    hub: Hub = field(default_factory=Hub)
    csrf: CsrfGuard = field(default_factory=CsrfGuard)
    boot: str = field(default_factory=lambda: secrets.token_hex(4))
    notices: OrderedDict[str, Notice] = field(default_factory=OrderedDict)

    def token(self) -> str:
        """Identifies what the pages show; a browser seeing another value refreshes."""
        return f"{self.boot}.{self.previewer.generation}"

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        overview = context.pop("overview", None) or self.previewer.overview()
        html = self.env.get_template(template).render(
            settings=self.previewer.settings,
            overview=overview,
            generation=self.token(),
            csrf=self.csrf.token,
            root=str(self.previewer.root),
            **context,
        )
        return HTMLResponse(html, status, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})

    def lang_of(self, request: Request) -> str:
        """`?lang=fr`: one of the list's language editions ("" for the first, the default)."""
        lang = request.query_params.get("lang", "")
        languages = self.previewer.settings.languages
        if lang and lang not in languages:
            raise HTTPException(404, f"{lang!r} is not one of this newsletter's languages ({', '.join(languages)})")
        return "" if lang == languages[0] else lang

    def view_of(self, request: Request, *, require_build: bool = False) -> EditionView:
        """The edition the request names (date and `?lang=`); 404 when there is none to show."""
        day, lang = day_of(request), self.lang_of(request)
        view = self.previewer.edition(day, language=lang)
        if view.build is None:
            overview = self.previewer.overview()
            if require_build or (day not in overview.dates and not overview.problems):
                reason = view.problems[0] if view.problems else "nothing rendered"
                raise HTTPException(404, f"No edition dated {day.isoformat()}: {reason}")
        return view

    def back(self, day: date, notice: Notice, lang: str = "") -> RedirectResponse:
        """To the edition's page, showing `notice` once (after a form)."""
        key = secrets.token_urlsafe(8)
        self.notices[key] = notice
        while len(self.notices) > _NOTICES:
            self.notices.popitem(last=False)
        which = f"lang={lang}&" if lang else ""
        return RedirectResponse(f"/editions/{day.isoformat()}/?{which}notice={key}", status_code=303)

    async def form_of(self, request: Request) -> dict[str, str]:
        """The form fields, after the CSRF and Origin checks (403 otherwise)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_FORM:
            raise HTTPException(413, "form too large")
        form = await request.form(max_files=0, max_fields=20)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        why = self.csrf.check(fields.get(self.csrf.field), request.headers.get("origin"), self.hosts)
        if why:
            raise HTTPException(403, f"Refused: {why}.")
        return fields

    def edition_context(self, view: EditionView, request: Request, tab: str, *, home: bool = False) -> dict[str, Any]:
        """What the edition pages (email, text, manifest, web) show around the edition."""
        overview = self.previewer.overview()
        settings = self.previewer.settings
        b = view.build
        sizes = b.manifest["sizes"] if b is not None else {}
        day = view.day.isoformat()
        problems = []
        if b is not None and tab == "manifest":
            rendered = b.rendered
            problems = lint_html(rendered.html, rendered.preheader, settings.html_budget) + lint_text(rendered.text)
        dates = list(overview.dates)
        if view.day not in dates:
            dates = sorted({*dates, view.day}, reverse=True)
        at = dates.index(view.day)
        lang_param = f"&lang={view.language}" if view.language else ""
        return {
            "q": f"?lang={view.language}" if view.language else "",  # the language edition, in every link
            "lang": view.language or settings.languages[0],
            "languages": self.previewer.languages(view.day) if settings.multilingual else [],
            "overview": overview,
            "view": view,
            "build": b,
            "day": day,
            "tab": tab,
            "home": home,
            "sizes": sizes,
            "gmail_used": (sizes.get("html_bytes", 0) / GMAIL_CLIP) if sizes else 0.0,
            "widths": WIDTHS,
            "light_src": f"/editions/{day}/email.html?v={view.version}&scheme=light{lang_param}",
            "dark_src": f"/editions/{day}/email.html?v={view.version}&scheme=dark{lang_param}",
            "dark_styles": b is not None and has_dark_styles(b.rendered.html),
            "outbox": self.previewer.outbox_state(view) if b is not None else None,
            "newer": dates[at - 1].isoformat() if at > 0 else None,
            "older": dates[at + 1].isoformat() if at + 1 < len(dates) else None,
            "notice": self.notices.get(request.query_params.get("notice", "")),
            "mailing": mailing_state(settings),
            "lint": problems,
            "unsubscribe_ready": secret_ready(),
        }


def preview_of(request: Request) -> Preview:
    preview: Preview = request.app.state.preview
    return preview


def day_of(request: Request) -> date:
    """The `{day}` of the path: an edition date, else 404."""
    text = request.path_params["day"]
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text)
    raise HTTPException(404, f"{text!r} is not an edition date (YYYY-MM-DD)")
