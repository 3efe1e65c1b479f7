"""Is a records file whole? Checked before a store trusts it, and by `newsletter db check`.

SQLite opens an empty (0-byte) file as an empty database, and a file cut short often opens too: a
suppression list lost to a disk incident would read as "nobody unsubscribed" and the next send would
mail every reader who left. So a file that exists is read before it is used: the 100-byte header (magic
string, page size, page count), the length (whole pages, as many as the header says), then
`PRAGMA quick_check`, which walks every page. That walk costs about 0.7 s for a million-address
suppression list but 7 s for a million-recipient ledger (270 MB), so a ledger is walked on open only up
to `LEDGER_WALK` bytes (about 120,000 recipients, under a second); a bigger one gets the header and length
checks, which catch an empty, cut-short or overwritten file, and `newsletter db check` walks it in full
(as does a ledger opened only to be read: `status` and monitoring never send).
Only a missing file makes a new, empty store.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ..errors import DamagedStoreError

MAGIC = b"SQLite format 3\x00"
LEDGER_WALK = 32 * 2**20
ADVICE = "restore it from a backup (`newsletter db check` checks every store)"


def header_problem(path: Path) -> str | None:
    """What is wrong with the file's size and header, or None when they are sound."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with path.open("rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(MAGIC):
        return (
            f"not a SQLite database ({size} bytes)"
            if head[:16] != MAGIC[: len(head[:16])]
            else (f"truncated to {size} bytes")
        )
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return "not a SQLite database (bad page size in its header)"
    if size % page:
        return f"truncated mid-page ({size} bytes is not a whole number of {page}-byte pages)"
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the header's page count is trusted only then (file format doc §1.3.7)
    if valid and pages and size < pages * page:
        return f"truncated ({size // page} of {pages} pages)"
    return None


def quick_check(path: Path, *, thorough: bool = False) -> str | None:
    """The first problem SQLite's own check finds (`quick_check`, or `integrity_check` when thorough)."""
    pragma = "integrity_check" if thorough else "quick_check"
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
            rows = db.execute(f"PRAGMA {pragma}").fetchall()
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    found = [str(r[0]) for r in rows]
    if found == ["ok"]:
        return None
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{found[0]}{more}"


def problem(path: Path, *, thorough: bool = False, walk_up_to: int | None = None) -> str | None:
    """What is wrong with the records file at `path` (which exists), or None. The pages are walked only
    when the file is at most `walk_up_to` bytes (None: always)."""
    try:
        found = header_problem(path)
        if found is None and (walk_up_to is None or path.stat().st_size <= walk_up_to):
            found = quick_check(path, thorough=thorough)
        return found
    except OSError as exc:
        return exc.strerror or str(exc)


def check_file(path: Path, store: str, *, walk_up_to: int | None = None) -> None:
    """`DamagedStoreError` naming the file, the store and what to do, unless the file is sound."""
    found = problem(path, walk_up_to=walk_up_to)
    if found is not None:
        raise DamagedStoreError(f"{path}: {store} is damaged ({found}); {ADVICE}")
