"""The next edition of each language, arranged: the desk's home and each edition's page.

GET  /desk/                                  the next edition (the one whose window holds now), per language
GET  /desk/editions/<date>/<lang>            the edition as it will go out (the email at phone and desktop
                                             widths, light and dark; the text part) and its stories in
                                             order, with the buttons that change its plan
GET  /desk/editions/<date>/<lang>/email      the email itself (`?scheme=light|dark`), framed by that page
POST /desk/editions/<date>/<lang>/plan       one change to the plan (arrange.py), then back to the page

Every page takes `?newsletter=<id>` (default: the list's own). The plan is read and written through
`newsletter.editorial`; the rendering is the edition pipeline's own `build` with that plan applied,
exactly what `newsletter build` and the scheduler make.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from ...config import Settings
from ...edition import (
    Build,
    LoadResult,
    Story,
    build,
    edition_date_for,
    language_name,
    read_window,
    select_edition,
    stories_for,
    text_direction,
)
from ...editorial import Plan
from ...errors import NewsletterError
from ..preview.parts import dark_variant, scheme_variant
from ..preview.security import EMAIL_CSP
from . import arrange
from .auth import N_
from .context import Desk
from .registry import desk_page

_BUILDS = 8  # rendered editions kept per server process (a page and its four frames share one)


@dataclass
class EditionState:
    """One language edition of one date as the desk shows it: its stories, plan and layout."""

    settings: Settings
    day: date
    lang: str
    newsletter: str
    plan: Plan
    stories: dict[str, Story]
    layout: arrange.Layout
    new: set[str] = field(default_factory=set)
    loaded: LoadResult | None = None


def next_edition(desk: Desk) -> date:
    """The edition the next morning's mailing sends: the one whose window holds now (`?date=` to choose)."""
    raw = desk.request.query_params.get("date", "")
    try:
        return date.fromisoformat(raw) if raw else edition_date_for(datetime.now(desk.settings.timezone), desk.settings)
    except ValueError:
        return edition_date_for(datetime.now(desk.settings.timezone), desk.settings)


def settings_for(desk: Desk, newsletter: str) -> Settings | None:
    """The settings of the newsletter `newsletter` (its id; "" for the list's own), or None: unknown."""
    if newsletter in ("", desk.ctx.newsletter):
        return desk.settings
    return None


def _state(desk: Desk, day: date, lang: str, newsletter: str) -> EditionState:
    """The edition's stories (its window, its language), its plan and the layout with the plan applied.
    `NewsletterError` when the edition has no stories."""
    base = settings_for(desk, newsletter)
    if base is None or lang not in base.languages:
        raise NewsletterError(f"no edition {newsletter or desk.ctx.newsletter}/{lang}")
    settings = base.for_language(lang)
    loaded, _ = read_window(settings, day)
    mine = stories_for(loaded.stories, settings)
    stored = desk.ctx.plans.get(newsletter or desk.ctx.newsletter, day, lang)
    plan = stored or Plan()
    ranked = select_edition(mine, day, settings)
    planned = select_edition(mine, day, settings, plan)
    present = set(ranked.order)
    layout = arrange.Layout(
        lead=planned.lead.id,
        sections=tuple((sec.name, tuple(s.id for s in sec.stories)) for sec in planned.sections),
        dropped=tuple(sid for sid in plan.dropped if sid in present and sid not in planned.order),
    )
    stories = {s.id: s for s in ranked.stories}
    new = set(plan.new_stories(ranked.order))
    return EditionState(settings, day, lang, newsletter or desk.ctx.newsletter, plan, stories, layout, new, loaded)


def _rendered(desk: Desk, state: EditionState) -> Build:
    """The edition as it will go out, built once per plan and story content (kept for its frames)."""
    cache: dict[tuple[object, ...], Build] = desk.ctx.cache.setdefault("builds", {})
    hashes = tuple(sorted((sid, s.content_hash) for sid, s in state.stories.items()))
    key = (state.newsletter, state.day, state.lang, state.plan.to_json(), hashes)
    found = cache.get(key)
    if found is None:
        found = build(state.settings, state.day, skip_invalid=True, loaded=state.loaded, plan=state.plan)
        while len(cache) >= _BUILDS:
            cache.pop(next(iter(cache)))
        cache[key] = found
    return found


def _where(desk: Desk) -> tuple[date, str, str] | None:
    params = desk.request.path_params
    try:
        day = date.fromisoformat(str(params["day"]))
    except ValueError:
        return None
    newsletter = (desk.field("newsletter", 100) if desk.form is not None else "") or desk.request.query_params.get(
        "newsletter", ""
    )
    return day, str(params["lang"])[:35], newsletter[:100]


async def _load(desk: Desk) -> EditionState | Response:
    where = _where(desk)
    if where is None:
        return desk.message(404, desk._("No such edition"), desk._("The date is not a date."))
    try:
        return await run_in_threadpool(_state, desk, *where)
    except NewsletterError as exc:
        return desk.message(404, desk._("No such edition"), str(exc))


@desk_page("/", nav=N_("Editions"), order=10)
def home(desk: Desk) -> Response:
    day = next_edition(desk)
    plans = {lang: desk.ctx.plans.get(desk.ctx.newsletter, day, lang) for lang in desk.settings.languages}
    languages = [(lang, language_name(lang), plans[lang]) for lang in desk.settings.languages]
    return desk.page("home.html", day=day, languages=languages, newsletter=desk.ctx.newsletter)


@desk_page("/editions/{day}/{lang}")
async def edition_page(desk: Desk) -> Response:
    state = await _load(desk)
    if isinstance(state, Response):
        return state
    try:
        built = await run_in_threadpool(_rendered, desk, state)
    except NewsletterError as exc:
        return desk.message(422, desk._("This edition cannot be built"), str(exc))
    return desk.page("edition.html", **_view(desk, state, built))


def _view(desk: Desk, state: EditionState, built: Build) -> dict[str, Any]:
    def story(sid: str, place: str) -> dict[str, object]:
        s = state.stories[sid]
        return {"id": sid, "title": s.title, "section": s.section, "place": place, "new": sid in state.new,
                "dir": s.dir, "lang": s.lang or state.lang, "pinned": sid == state.plan.lead}  # fmt: skip

    sections = [(name, [story(sid, "section") for sid in ids]) for name, ids in state.layout.sections]
    version = zlib.crc32(f"{state.plan.to_json()}{built.manifest.get('stories')}".encode())
    base = f"/desk/editions/{state.day.isoformat()}/{state.lang}"
    return {
        "state": state,
        "base": base,
        "language": language_name(state.lang),
        "lead": story(state.layout.lead, "lead"),
        "sections": sections,
        "dropped": [story(sid, "dropped") for sid in state.layout.dropped],
        "subject": built.rendered.subject,
        "preheader": built.rendered.preheader,
        "text": built.rendered.text,
        "text_dir": text_direction(state.lang),
        "email_src": f"{base}/email?newsletter={state.newsletter}&v={version}",
        "plan": state.plan,
        "demoted": [s.title for s in built.edition.more],
    }


@desk_page("/editions/{day}/{lang}/email")
async def email(desk: Desk) -> Response:
    state = await _load(desk)
    if isinstance(state, Response):
        return state
    try:
        built = await run_in_threadpool(_rendered, desk, state)
    except NewsletterError as exc:
        return desk.message(422, desk._("This edition cannot be built"), str(exc))
    scheme = desk.request.query_params.get("scheme", "")
    html = built.rendered.html
    html = dark_variant(html) if scheme == "dark" else scheme_variant(html, "light") if scheme == "light" else html
    headers = {"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"}
    return HTMLResponse(html, headers=headers)


@desk_page("/editions/{day}/{lang}/plan", methods=("POST",))
async def change_plan(desk: Desk) -> Response:
    state = await _load(desk)
    if isinstance(state, Response):
        return state
    if desk.field("at", 40) != state.plan.updated_at:
        return desk.message(409, desk._("Not changed"), desk._("Someone changed this edition meanwhile; look again."))
    action, story = desk.field("action", 20), desk.field("story", 300)
    plan = _changed(state, action, story, desk)
    if plan is None:
        return desk.message(400, desk._("Not changed"), desk._("Unknown change."))
    target = f"{state.day.isoformat()}/{state.lang}"
    if action == "reset":
        desk.ctx.plans.clear(state.newsletter, state.day, state.lang)
    elif plan != state.plan:
        desk.ctx.plans.put(state.newsletter, state.day, state.lang, plan, desk.user.name)
    detail: dict[str, str] = {"story": story} if story else {}
    if action == "titles":
        detail = {"subject": plan.subject, "preheader": plan.preheader}
    desk.audit(f"plan.{action}", target, detail, newsletter=state.newsletter)
    return desk.redirect(f"/editions/{target}?newsletter={state.newsletter}")


def _changed(state: EditionState, action: str, story: str, desk: Desk) -> Plan | None:
    plan, layout = state.plan, state.layout
    changes = {
        "up": lambda: arrange.move(plan, layout, story, up=True),
        "down": lambda: arrange.move(plan, layout, story, up=False),
        "lead": lambda: arrange.pin_lead(plan, layout, story),
        "unpin": lambda: arrange.pin_lead(plan, layout, ""),
        "drop": lambda: arrange.leave_out(plan, layout, story, out=True),
        "restore": lambda: arrange.leave_out(plan, layout, story, out=False),
        "titles": lambda: arrange.retitle(plan, layout, desk.field("subject", 400), desk.field("preheader", 600)),
        "reset": lambda: Plan(),
    }
    change = changes.get(action)
    return None if change is None else change()
