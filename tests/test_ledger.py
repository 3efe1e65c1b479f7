"""The delivery ledger (real SQLite files) and the edition lock (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from newsletter.delivery.batching import FLUSH_ROWS, FLUSH_SECONDS, Result, ResultBuffer
from newsletter.delivery.ledger import EditionLock, Ledger
from newsletter.errors import LockedError


def enrol_all(ledger: Ledger, run: int, addresses: list[str]) -> list[int | None]:
    with ledger.batch():
        return [ledger.enrol(run, a, f"Name {i}", "en", i + 2) for i, a in enumerate(addresses)]


def test_enrol_detects_duplicates_within_a_run_only(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        run = ledger.start_run("list.csv", "memory")
        firsts = enrol_all(ledger, run, ["a@example.com", "b@example.com", "A@EXAMPLE.COM", "c@example.com"])
        assert firsts == [None, None, 2, None]  # the duplicate names the line of the first entry
        assert ledger.counts().pending == 3
        # The next run sees the same list: nothing is a duplicate, nothing is added twice.
        run2 = ledger.start_run("list.csv", "memory")
        assert enrol_all(ledger, run2, ["a@example.com", "b@example.com", "c@example.com"]) == [None, None, None]
        assert ledger.counts().total == 3


def test_states_and_resume(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as ledger:
        run = ledger.start_run("list.csv", "memory")
        enrol_all(ledger, run, [f"r{i}@example.com" for i in range(6)])
        rows = list(ledger.pending(run))
        assert [r.address for r in rows] == [f"r{i}@example.com" for i in range(6)]
        ledger.mark_sent(rows[0].id, 1, 250, "250 OK")
        ledger.mark_failed(rows[1].id, 1, 550, "550 5.1.1 unknown")
        ledger.mark_deferred(rows[2].id, 3, 451, "451 later")
        ledger.mark_skipped(rows[3].id, "suppressed")
        counts = ledger.counts()
        assert (counts.sent, counts.failed, counts.pending, counts.skipped) == (1, 1, 3, 1)
        ledger.finish_run(run, "stopped", sent=1, failed=1, deferred=1)
    # Another process (here: a new connection) resumes from the file.
    with Ledger(path) as ledger:
        run = ledger.start_run("list.csv", "memory")
        enrol_all(ledger, run, [f"r{i}@example.com" for i in range(6)])
        pending = [r.address for r in ledger.pending(run)]
        # sent and failed rows are final; the skipped one is looked at again; the deferred one kept its attempts
        assert pending == ["r2@example.com", "r3@example.com", "r4@example.com", "r5@example.com"]
        assert next(r for r in ledger.pending(run) if r.address == "r2@example.com").attempts == 3
        assert [r["status"] for r in ledger.runs()] == ["stopped", "running"]


def test_rows_no_longer_listed_are_retired_and_come_back(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        run = ledger.start_run("a.csv", "memory")
        enrol_all(ledger, run, ["a@example.com", "b@example.com"])
        run2 = ledger.start_run("b.csv", "memory")
        enrol_all(ledger, run2, ["a@example.com"])
        assert ledger.retire_unseen(run2) == 1
        assert [r.address for r in ledger.pending(run2)] == ["a@example.com"]
        assert ledger.state_of("b@example.com") == "skipped"
        run3 = ledger.start_run("a.csv", "memory")
        enrol_all(ledger, run3, ["a@example.com", "b@example.com"])
        assert [r.address for r in ledger.pending(run3)] == ["a@example.com", "b@example.com"]


def test_pending_pages_through_changing_rows(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        run = ledger.start_run("list.csv", "memory")
        enrol_all(ledger, run, [f"p{i}@example.com" for i in range(1234)])
        seen = []
        for row in ledger.pending(run, batch=100):
            seen.append(row.address)
            ledger.mark_sent(row.id, 1, 250, "ok")  # rows leave the pending set while we iterate
        assert len(seen) == len(set(seen)) == 1234
        assert ledger.counts().sent == 1234


def test_readers_see_a_running_send(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as writer:
        run = writer.start_run("list.csv", "memory")
        enrol_all(writer, run, ["a@example.com", "b@example.com"])
        writer.mark_sent(next(iter(writer.pending(run))).id, 1, 250, "ok")
        with Ledger(path, readonly=True) as reader:
            # Outcomes are written a flush window at a time: another process sees this one within it.
            deadline = time.monotonic() + FLUSH_SECONDS * 20
            while reader.counts().sent == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert reader.counts().sent == 1
        copy = tmp_path / "copy.sqlite"
        writer.backup_to(copy)
    with Ledger(copy) as ledger:
        assert ledger.counts().total == 2


def test_lock_in_process(tmp_path: Path) -> None:
    lock_path = tmp_path / "2016-12-30.lock"
    with (
        EditionLock(lock_path, "edition 2016-12-30"),
        pytest.raises(LockedError, match=rf"edition 2016-12-30 is being sent by another run \(pid {os.getpid()}\)"),
    ):
        EditionLock(lock_path, "edition 2016-12-30").acquire()
    with EditionLock(lock_path, "edition 2016-12-30"):
        pass


def test_lock_is_released_when_its_process_is_killed(tmp_path: Path) -> None:
    lock_path = tmp_path / "2016-12-30.lock"
    code = (
        "import sys, time; from pathlib import Path; from newsletter.delivery.ledger import EditionLock;"
        f"EditionLock(Path({str(lock_path)!r}), 'x').acquire(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with pytest.raises(LockedError, match=f"pid {proc.pid}"):
        EditionLock(lock_path, "x").acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with EditionLock(lock_path, "x"):
                break
        except LockedError:
            assert time.monotonic() < deadline
            time.sleep(0.01)


# --- the result buffer ------------------------------------------------------------------------------


class SlowStore:
    """A write that takes a while, as a database server's would; records what it got and from where."""

    def __init__(self, seconds: float, fail_at: int | None = None) -> None:
        self.seconds = seconds
        self.fail_at = fail_at
        self.written: list[Result] = []
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def write(self, items: list[Result]) -> None:
        time.sleep(self.seconds)
        with self.lock:
            if self.fail_at is not None and len(self.written) + len(items) > self.fail_at:
                raise OSError("disk full")
            self.written.extend(items)
            self.batches.append(len(items))
            self.threads.add(threading.current_thread().name)


def test_written_behind_never_more_than_the_window_unwritten() -> None:
    store = SlowStore(0.01)
    buffer = ResultBuffer(store.write, behind=True)
    worst = 0
    for i in range(3 * FLUSH_ROWS + 7):
        buffer.add("sent", (i,))
        with store.lock:
            worst = max(worst, i + 1 - len(store.written))
    assert worst <= FLUSH_ROWS  # a crash loses no more records than that
    assert store.threads == {"ledger-flush"}  # the send loop's thread never wrote
    assert len(store.batches) >= 3 and max(store.batches) <= FLUSH_ROWS
    buffer.close()
    assert [p[0] for _, p in store.written] == list(range(3 * FLUSH_ROWS + 7))  # all of them, in order


def test_not_behind_the_callers_thread_writes_a_full_buffer_and_the_writer_the_time_window() -> None:
    store = SlowStore(0.0)
    buffer = ResultBuffer(store.write)
    for i in range(FLUSH_ROWS):
        buffer.add("sent", (i,))
    assert store.batches == [FLUSH_ROWS] and store.threads == {threading.current_thread().name}
    buffer.add("sent", (FLUSH_ROWS,))  # a lone result: written by the writer thread within the window
    deadline = time.monotonic() + FLUSH_SECONDS * 40
    while len(store.written) <= FLUSH_ROWS and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store.batches == [FLUSH_ROWS, 1] and "ledger-flush" in store.threads
    buffer.close()


@pytest.mark.parametrize("behind", [True, False])
def test_a_failed_write_is_raised_in_the_send_loop_not_dropped(behind: bool) -> None:
    store = SlowStore(0.001, fail_at=FLUSH_ROWS // 2)
    buffer = ResultBuffer(store.write, behind=behind)
    with pytest.raises(OSError, match="disk full"):
        for i in range(10 * FLUSH_ROWS):
            buffer.add("sent", (i,))
            time.sleep(0.0001)
    assert len(store.written) < FLUSH_ROWS // 2 + 1
