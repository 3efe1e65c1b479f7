"""Atomic writes: a failure while writing leaves the old files untouched and no temp files behind."""

from __future__ import annotations

import os

import pytest

from newsletter.fsutil import write_all_atomic, write_atomic


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "a" / "f.txt"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["f.txt"]


def test_failure_while_staging_replaces_nothing(tmp_path, monkeypatch):
    files = {tmp_path / n: f"old {n}" for n in ("a.html", "b.txt", "c.eml")}
    write_all_atomic(files)
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:  # the disk fills up on the third file
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_all_atomic({p: f"new {p.name}" for p in files})
    assert {p.name: p.read_text() for p in files} == {p.name: f"old {p.name}" for p in files}
    assert sorted(os.listdir(tmp_path)) == ["a.html", "b.txt", "c.eml"]
