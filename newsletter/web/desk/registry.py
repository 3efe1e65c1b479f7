"""`desk_pages`: how a module adds a page to the desk without touching the app factory.

    from .registry import desk_page

    @desk_page("/approve", nav=N_("Approve"), role="editor", order=30)
    def approve_page(desk: Desk) -> Response: ...

    @desk_page("/approve/{day}", methods=("POST",), role="editor")
    async def approve(desk: Desk) -> Response: ...

Every registered page is behind the desk's guard (auth.py): no session → the sign-in page (a POST gets
403); a role too low → 403; a POST without this session's CSRF token → 403, before the handler runs.
The handler gets a `Desk` (context.py): the user, their language, the form already read, `page()`,
`audit()`. A page with `nav` shows in the navigation of everyone whose role may open it.

The modules holding pages are named once, in `PAGE_MODULES`; the app imports them at start-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from starlette.responses import Response

if TYPE_CHECKING:
    from .context import Desk

Handler: TypeAlias = "Callable[[Desk], Response | Awaitable[Response]]"

# The modules of this package (or dotted paths of others) whose `desk_page`s make up the desk.
PAGE_MODULES: tuple[str, ...] = (
    "newsletter.web.desk.pages",
    "newsletter.web.desk.users",
    "newsletter.web.desk.editions",
)


@dataclass(frozen=True)
class DeskPage:
    path: str  # under /desk, starting with "/"
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    nav: str = ""  # the English label (marked with N_) of its navigation entry; "" for none
    role: str = "editor"  # "editor" or "admin"
    order: int = 100  # place in the navigation


desk_pages: list[DeskPage] = []


def desk_page(
    path: str, *, methods: tuple[str, ...] = ("GET",), nav: str = "", role: str = "editor", order: int = 100
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as a desk page at `/desk{path}` (see the module docstring)."""
    if not path.startswith("/") or role not in ("editor", "admin"):
        raise ValueError(f"desk page {path!r}: the path starts with / and the role is editor or admin")

    def register(handler: Handler) -> Handler:
        desk_pages.append(DeskPage(path, handler, tuple(methods), nav, role, order))
        return handler

    return register
