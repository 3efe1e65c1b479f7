"""Backups of every record store, taken while the services run, and their checked restore.

In:  the SQLite files to copy (each `*.sqlite` under the data folder, and any store configured elsewhere)
     and, with PostgreSQL, the database URL.
Out: a backup folder — `manifest.json` (what, where it goes back, its size and SHA-256), `sqlite/` (one
     consistent copy per file, made with SQLite's online backup API, so a sender writing meanwhile is
     neither stopped nor half-copied) and `postgresql.dump` (`pg_dump`'s custom format, one snapshot).

A backup is written beside its destination and renamed into place at the end: a folder named DEST is
always whole. A restore checks everything first (checksums, `PRAGMA integrity_check`, `pg_restore
--list`) and changes nothing when a check fails; then each file is replaced atomically, its stale
`-wal`/`-shm` files removed (they belong to the database being replaced), and the dump restored in one
transaction. Restore with the services stopped.

This works on files and the URL only, never on a store class, so a new store is backed up as soon as
its file lies under the data folder.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import NewsletterError

MANIFEST = "manifest.json"
DUMP = "postgresql.dump"
FORMAT = 1


class BackupError(NewsletterError):
    """A backup that cannot be made, or a backup that does not pass its checks (nothing was changed)."""


@dataclass
class BackupReport:
    folder: Path
    files: list[dict[str, Any]] = field(default_factory=list)  # target, file, bytes, sha256
    postgresql: bool = False
    left_alone: list[str] = field(default_factory=list)  # restore: stores the backup does not hold

    def summary(self) -> str:
        size = sum(int(f["bytes"]) for f in self.files)
        pg = " and the PostgreSQL database" if self.postgresql else ""
        return f"{len(self.files)} SQLite file(s) ({size} bytes){pg}"


def sqlite_files(data_dir: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Every SQLite store: `*.sqlite` under `data_dir` (recursively) and the configured paths that exist."""
    found = {p.resolve() for p in data_dir.rglob("*.sqlite") if p.is_file()} if data_dir.is_dir() else set()
    found.update(p.resolve() for p in extra if p.is_file())
    return sorted(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sqlite(path: Path) -> str:
    """'ok', or what `PRAGMA integrity_check` (or opening the file) found wrong, on one line."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return str(exc)
    return "; ".join(str(r[0]) for r in rows)[:300]


def _copy_sqlite(source: Path, dest: Path) -> None:
    """A consistent copy while others write: the online backup API, from a connection that only reads."""
    src = sqlite3.connect(source, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()


def _target(path: Path, root: Path) -> str:
    """Where the file goes back: relative to the newsletter folder when inside it (a backup can move)."""
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def pg_tool(name: str) -> str:
    """`pg_dump` / `pg_restore`: on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise BackupError(f"{name} not found: install the PostgreSQL client (apt-get install postgresql-client)")
    return versions[-1]


def _run(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    except OSError as exc:
        raise BackupError(f"{what}: {exc}") from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {' '.join(done.stderr.split())[:500]}")


def backup(root: Path, files: list[Path], dest: Path, *, database_url: str = "") -> BackupReport:
    """Copy `files` (and the database) into the new folder `dest`; see the module docstring."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest}: already exists and is not an empty folder; choose a new one")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        report = BackupReport(dest)
        (work / "sqlite").mkdir()
        for n, path in enumerate(files):
            name = f"sqlite/{n:03d}-{path.name}"
            _copy_sqlite(path, work / name)
            problem = _check_sqlite(work / name)
            if problem != "ok":
                raise BackupError(f"{path}: the copy does not pass integrity_check: {problem}")
            entry = {"target": _target(path, root), "file": name, "bytes": (work / name).stat().st_size}
            report.files.append({**entry, "sha256": _sha256(work / name)})
        if database_url:
            _run(
                [pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={work / DUMP}", database_url], "pg_dump"
            )
            report.postgresql = True
        manifest = {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": report.files,
            "postgresql": {"file": DUMP, "sha256": _sha256(work / DUMP)} if database_url else None,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src}: no {MANIFEST}; not a backup made by `newsletter db backup`") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src / MANIFEST}: unreadable: {exc}") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), list)
    ):
        raise BackupError(f"{src / MANIFEST}: not a backup manifest of format {FORMAT}")
    return manifest


def verify(src: Path, *, database_url: str = "") -> dict[str, Any]:
    """Check a backup without changing anything: every file whole and sound; the manifest, read."""
    manifest = _read_manifest(src)
    for entry in manifest["files"]:
        path = src / str(entry.get("file", ""))
        if not path.is_file() or _sha256(path) != entry.get("sha256"):
            raise BackupError(f"{path}: missing or changed since the backup (checksum differs)")
        problem = _check_sqlite(path)
        if problem != "ok":
            raise BackupError(f"{path}: integrity_check: {problem}")
    pg = manifest.get("postgresql")
    if pg and not database_url:
        raise BackupError(f"{src}: holds a PostgreSQL dump but database_url is not set; set it to restore")
    if database_url and not pg:
        raise BackupError(f"{src}: holds no PostgreSQL dump, but database_url is set")
    if pg:
        dump = src / str(pg.get("file", DUMP))
        if not dump.is_file() or _sha256(dump) != pg.get("sha256"):
            raise BackupError(f"{dump}: missing or changed since the backup (checksum differs)")
        _run([pg_tool("pg_restore"), "--list", str(dump)], f"pg_restore --list {dump}")
    return manifest


def restore(src: Path, root: Path, current: list[Path], *, database_url: str = "") -> BackupReport:
    """Put a checked backup back; `current` are today's SQLite files (those the backup lacks are listed)."""
    manifest = verify(src, database_url=database_url)
    report = BackupReport(src, files=list(manifest["files"]), postgresql=bool(manifest.get("postgresql")))
    targets = set()
    for entry in manifest["files"]:
        target = Path(entry["target"])
        target = target if target.is_absolute() else root / target
        targets.add(target.resolve() if target.exists() else target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(src / entry["file"], tmp)
        for stale in (Path(f"{target}-wal"), Path(f"{target}-shm"), Path(f"{target}-journal")):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        os.replace(tmp, target)
    report.left_alone = [_target(p, root) for p in current if p not in targets]
    if report.postgresql:
        dump = src / str(manifest["postgresql"].get("file", DUMP))
        restore_args = ["--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={database_url}"]
        _run([pg_tool("pg_restore"), *restore_args, str(dump)], "pg_restore")
    return report


__all__ = ["BackupError", "BackupReport", "backup", "pg_tool", "restore", "sqlite_files", "verify"]
