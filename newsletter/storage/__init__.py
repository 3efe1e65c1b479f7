"""Where records live, and the record-keeping the other subsystems share.

In:  a path (a SQLite file, a lock file).
Out: connections set up the same way everywhere (WAL, busy timeout), the one-process-at-a-time lock, and
     the owner identity used to tell a run that crashed from one still going.

Public face: `connect`, `ProcessLock`, `this_owner`, `owner_alive`, `Meta`.
"""

from __future__ import annotations

from .records import Meta, ProcessLock, connect, owner_alive, this_owner

__all__ = ["Meta", "ProcessLock", "connect", "owner_alive", "this_owner"]
