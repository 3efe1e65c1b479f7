"""Local faults say what they are, at once: read-only or full folders for data/ (the ledger, the story
index), OS and database errors as one line with a non-zero exit (never a traceback), and temp files left
by a killed run removed by the next."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from newsletter.delivery.unsubscribe import SECRET_ENV
from tests.test_send_loop import SECRET, paper, tmpfs


def newsletter(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, SECRET_ENV: SECRET}
    return subprocess.run([sys.executable, "-m", "newsletter", *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def test_read_only_data_folder(demo_root: Path) -> None:
    paper(demo_root, 5, "retry_base = 1")
    with tmpfs(demo_root / "data", "ro,size=1m"):
        built = newsletter("build", "--root", str(demo_root), "--date", "2016-12-30")
        assert built.returncode == 0, built.stderr  # the story index is only a cache: built without it
        sent = newsletter("send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers", "list.csv",
                          "--no-progress")  # fmt: skip
        assert sent.returncode == 1
        assert "Traceback" not in sent.stderr and len(sent.stderr.strip().splitlines()) == 1
        assert sent.stderr.startswith(f"Error: {demo_root / 'data'}") and "Read-only file system" in sent.stderr
        status = newsletter("status", "--root", str(demo_root), "--date", "2016-12-30")
        assert status.returncode == 5 and "Traceback" not in status.stderr  # not started, said plainly


def test_a_disk_that_fills_under_the_ledger(demo_root: Path) -> None:
    paper(demo_root, 3000, "retry_base = 1")
    with tmpfs(demo_root / "data", "size=64k"):
        sent = newsletter("send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers", "list.csv",
                          "--no-progress")  # fmt: skip
    assert sent.returncode == 1
    assert "Traceback" not in sent.stderr
    last = sent.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and ("full" in last or "No space left" in last), sent.stderr
    assert str(demo_root / "data") in last, last  # the line names the file that could not be written


def test_temp_files_of_a_killed_run_are_removed(demo_root: Path) -> None:
    paper(demo_root, 3, "retry_base = 1")
    mail = demo_root / "outbox" / "2016-12-30" / "mail"
    mail.mkdir(parents=True)
    left = [mail / ".r0@example.com.eml.k2j4h1.tmp", mail / ".r1@example.com.eml.9sd8f7.tmp"]
    for path in left:
        path.write_bytes(b"half a message")
    (mail / "keep.txt").write_text("not ours", encoding="utf-8")
    sent = newsletter("send", "--root", str(demo_root), "--date", "2016-12-30", "--subscribers", "list.csv",
                      "--no-progress")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert sorted(p.name for p in mail.iterdir()) == ["keep.txt", "r0@example.com.eml", "r1@example.com.eml",
                                                       "r2@example.com.eml"]  # fmt: skip
