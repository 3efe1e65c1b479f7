"""The local preview server: `newsletter preview`. See app.py for the pages (handlers in pages.py, downloads.py,
forms.py, live.py), state.py for the rendering."""

from __future__ import annotations

from .app import create_app
from .state import EditionView, Previewer

__all__ = ["EditionView", "Previewer", "create_app"]
