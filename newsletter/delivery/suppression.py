"""The suppression list as the send loop, the bounce reader and the web app open it: the reader base
(storage/readers.py), whose `add` is a reader's state change, written with the reader's record in one
transaction. The list itself lives in storage/suppression.py.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..storage import ReaderBase, SuppressionList, open_readers, reader_base_path
from .options import MAILING

Suppression = ReaderBase


def suppression_path(settings: Settings) -> Path:
    """The file the suppression list lives in: the reader base (`[subscribers] path`). `[mailing]
    suppression` (checked here) names only an older separate list, merged into it once."""
    settings.options(MAILING)
    return reader_base_path(settings)


def open_suppression(settings: Settings) -> Suppression:
    """The reader base the settings name: PostgreSQL when `database_url` is set, else the SQLite file."""
    settings.options(MAILING)  # a bad `[mailing]` table is one line before anything opens
    return open_readers(settings)


__all__ = ["Suppression", "SuppressionList", "open_suppression", "suppression_path"]
