"""The editors' desk: `/desk/` of the public app (`newsletter serve --desk`), for signed-in staff.

    app.py        the desk's Starlette app and its routes       registry.py  `desk_pages`: add a page
    context.py    what handlers share (`DeskContext`, `Desk`)   options.py   `[desk]` settings
    auth.py       sessions, single sign-on header, the guard    login.py     sign-in and sign-out
    accounts.py   users and roles, Argon2id passwords           sessions.py  sessions with expiry
    limits.py     the sign-in rate limit
    pages.py      the audit log, the desk's language            users.py     accounts (administrators)
    editions.py   the next edition of each language, arranged (the plan: newsletter.editorial)

Everything is rendered by Jinja with autoescaping, in the staff member's language (the gettext
catalogues; Arabic right to left), with no script: every action is a form posted with a CSRF token.
"""

from __future__ import annotations

from .accounts import ROLES, AccountError, User, UserStore, open_users
from .app import create_desk
from .context import PREFIX, Desk
from .options import DESK, DeskOptions
from .registry import DeskPage, desk_page, desk_pages
from .sessions import end_sessions

__all__ = [
    "DESK",
    "PREFIX",
    "ROLES",
    "AccountError",
    "Desk",
    "DeskOptions",
    "DeskPage",
    "User",
    "UserStore",
    "create_desk",
    "desk_page",
    "desk_pages",
    "end_sessions",
    "open_users",
]
