"""Subscriber lists: CSV and SQLite, streamed, validated, bad rows reported with file and line."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from newsletter.delivery.subscribers import Problem, SubscriberSource, check_address
from newsletter.errors import SubscriberError

FIXTURE = Path(__file__).parent / "fixtures" / "subscribers.csv"


def read(source: SubscriberSource) -> tuple[list[tuple[str, str, int]], list[str]]:
    problems: list[Problem] = []
    rows = [(s.address, s.name, s.line) for s in source.rows(problems.append)]
    return rows, [str(p) for p in problems]


def test_fixture_csv() -> None:
    rows, problems = read(SubscriberSource(FIXTURE))
    assert [r[0] for r in rows] == [
        "ann@example.com",
        "bob@example.org",
        "ANN@example.com",  # a duplicate in case only: the ledger catches those (test_mailing)
        "carol@xn--bcher-kva.de",
        "dave@example.net",
        "erin@example.com",
        "jos@xn--r8jz45g.jp",
        "frank@example.com",
        "grace@example.com",
    ]
    assert rows[0] == ("ann@example.com", "Ann Smith", 2)
    assert rows[5] == ("erin@example.com", "Erin Two Lines", 10)  # a quoted field over two lines: its last line
    assert len(problems) == 3
    assert problems[0].startswith("subscribers.csv:4: invalid email address 'not-an-address'")
    assert problems[1] == "subscribers.csv:6: no email address"
    assert problems[2].startswith("subscribers.csv:13: email address 'josé@example.com' has a non-ASCII mailbox")


def test_header_variants_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes("\ufeff Name,EMAIL ,Locale,extra\r\nAnn,ann@example.com,fr,1\r\n\r\n,,\r\nshort\r\n".encode())
    rows, problems = read(SubscriberSource(path))
    assert rows == [("ann@example.com", "Ann", 2)]
    assert problems == ["list.csv:5: no email address"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"name,locale\nAnn,en\n", "list.csv:1: no 'email' column in the header row (found: name, locale)"),
        (b"email\xff,name\nann@example.com,Ann\n", "not UTF-8"),
    ],
)
def test_unreadable_csv(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(SubscriberError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(SubscriberSource(path))


def test_bad_rows_are_skipped_and_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(
        b"email,name\n"
        b"ann@example.com,Ann\n"  # 2
        b"bad@example.com,\xff\xfeName\n"  # 3: not UTF-8
        b'cut@example.com,"unterminated\n'  # 4: a stray quote
        b"bob@example.com,Bob\n"  # 5
        b"big@example.com," + b"x" * (1 << 20) + b"\n"  # 6: over 1 MiB
        b'"quoted@example.com","Two\nLines"\n'  # 7-8: a field over two lines, fine
        b"carol@example.com,Carol\n"  # 9
    )
    rows, problems = read(SubscriberSource(path))
    assert rows == [("ann@example.com", "Ann", 2), ("bob@example.com", "Bob", 5),
                    ("quoted@example.com", "Two Lines", 8), ("carol@example.com", "Carol", 9)]  # fmt: skip
    assert problems == [
        "list.csv:3: not UTF-8 (byte 0xff at column 17)",
        "list.csv:4: a quote that is never closed; row skipped",
        "list.csv:6: line longer than 1 MiB",
    ]


def test_fuzzed_csv_never_stops_the_list(tmp_path: Path) -> None:
    """Random bytes, quotes, separators and line breaks between good rows: every good row is read, every
    bad one reported by its line, nothing raised."""
    import random

    rng = random.Random(20161230)
    alphabet = [b'"', b",", b"\n", b"\r", b"\xff", b"\x00", b"\xc3", b"a", b"@", b" ", b";", b"\t"]
    lines, good = [b"email,name"], []
    for i in range(300):
        if i % 3:
            lines.append(f"r{i}@example.com,Reader {i}".encode())
            good.append(f"r{i}@example.com")
        else:
            lines.append(b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))).replace(b"\n", b"") + b'"')
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows, problems = read(SubscriberSource(path))
    got = [r[0] for r in rows]
    assert [a for a in got if a in good] == good  # every good row read, in order
    for problem in problems:
        number = int(problem.split(":")[1])
        assert 2 <= number <= len(lines) and number % 3 == 2  # a fuzzed line (lines 2, 5, 8, …), never a good one


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match=r"nope\.csv: subscriber list not found"):
        SubscriberSource(tmp_path / "nope.csv")
    with pytest.raises(SubscriberError, match=r"nope\.csv: subscriber list not found"):
        SubscriberSource("nope.csv", root=tmp_path)


def test_sqlite(tmp_path: Path) -> None:
    db_path = tmp_path / "people.sqlite"
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE subscribers (email TEXT, name TEXT, locale TEXT, since TEXT)")
    db.executemany(
        "INSERT INTO subscribers VALUES (?, ?, ?, ?)",
        [("a@example.com", "A", "en", "2020"), (None, "Nobody", "en", ""), ("b@example.com", None, None, "")],
    )
    db.execute("CREATE TABLE other (email TEXT)")
    db.execute("INSERT INTO other VALUES ('c@example.com')")
    db.commit()
    db.close()
    rows, problems = read(SubscriberSource(db_path))
    assert rows == [("a@example.com", "A", 1), ("b@example.com", "", 3)]
    assert problems == ["people.sqlite:2: no email address"]
    rows, _ = read(SubscriberSource(f"{db_path}#other"))
    assert rows == [("c@example.com", "", 1)]
    with pytest.raises(SubscriberError, match="no table 'missing'"):
        read(SubscriberSource(f"{db_path}#missing"))
    with pytest.raises(SubscriberError, match="is not a table name"):
        SubscriberSource(f"{db_path}#x; DROP TABLE subscribers")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SubscriberError, match="not a SQLite database"):
        read(SubscriberSource(tmp_path / "junk.db"))


def test_sqlite_without_email_column(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db")
    db.execute("CREATE TABLE subscribers (mail TEXT)")
    db.commit()
    db.close()
    with pytest.raises(SubscriberError, match="has no 'email' column"):
        read(SubscriberSource(tmp_path / "x.db"))


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        (" Ann@Example.COM ", "Ann@example.com"),
        ("ann@bücher.de", "ann@xn--bcher-kva.de"),
        ("a+tag@sub.example.org", "a+tag@sub.example.org"),
    ],
)
def test_check_address(raw: str, result: str) -> None:
    assert check_address(raw) == result


@pytest.mark.parametrize(
    "raw",
    ["", "plain", "a@b", "a@@example.com", "a b@example.com", "ann@example.com\r\nBcc: x@y.z", "josé@example.com"],
)
def test_check_address_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        check_address(raw)


def test_csv_is_streamed(tmp_path: Path) -> None:
    """Reading 100,000 rows holds one row at a time: memory does not grow with the list."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("email,name\n")
        for i in range(100_000):
            fh.write(f"reader{i}@example.com,Reader {i}\n")
    source = SubscriberSource(path)
    raw = source._csv_rows(source.problems.append)  # the reading half: validation costs time, not memory
    tracemalloc.start()
    for i, _ in enumerate(raw):
        if i == 1000:
            base = tracemalloc.get_traced_memory()[0]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak - base < 1_000_000  # a list of 100,000 rows would take tens of MB


def test_plain_addresses_get_email_validators_answer_without_it() -> None:
    """The fast path for plain addresses answers exactly what email-validator answers, or leaves it to it."""
    from email_validator import EmailNotValidError, validate_email

    from newsletter.delivery.addresses import _plain

    cases = [
        "a@b.co", "A.B@X-y.ORG", "o'brien@x.ie", "{a}|~+tag@x.com", "a@1.2.3.com", "a@123.com",
        "a..b@x.com", ".a@x.com", "a.@x.com", "a@-x.com", "a@x-.com", "a@x..com", "a@x.c", "a@x.c0m",
        "a@localhost", "a@x.test", "a@sub.local", "a@x.arpa", "a@x.onion", "a@ab--cd.com",
        "a@xn--bcher-kva.ch", "a@x.com.", '"a b"@x.com', "a@[1.2.3.4]", "x" * 65 + "@x.com",
        "x" * 64 + "@x.com", "a@" + "b" * 64 + ".com", "a@" + "b" * 63 + ".com", "jos@用户.jp", "ü@x.com",
    ]  # fmt: skip
    taken = 0
    for case in cases:
        fast = _plain(case)
        try:
            full: str | None = validate_email(case, check_deliverability=False).ascii_email
        except EmailNotValidError:
            full = None
        if fast is not None:
            taken += 1
            assert fast == full, case
    assert taken >= 8  # the common shapes do take the fast path
    assert check_address(" Reader@Example.COM ") == "Reader@example.com"
