"""The desk's home: the next edition of each newsletter, per language, with links to arrange it."""

from __future__ import annotations

from datetime import date, datetime

from starlette.responses import Response

from ...edition import edition_date_for, language_name
from .auth import N_
from .context import Desk
from .registry import desk_page


def next_edition(desk: Desk) -> date:
    """The edition the next morning's mailing sends: the one whose window holds now (`?date=` to choose)."""
    raw = desk.request.query_params.get("date", "")
    try:
        return date.fromisoformat(raw) if raw else edition_date_for(datetime.now(desk.settings.timezone), desk.settings)
    except ValueError:
        return edition_date_for(datetime.now(desk.settings.timezone), desk.settings)


@desk_page("/", nav=N_("Editions"), order=10)
def home(desk: Desk) -> Response:
    day = next_edition(desk)
    languages = [(lang, language_name(lang)) for lang in desk.settings.languages]
    return desk.page("home.html", day=day, languages=languages, newsletter=desk.ctx.newsletter)
