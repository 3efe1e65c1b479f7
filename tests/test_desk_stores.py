"""The desk's records on both backends (SQLite `data/desk.sqlite` and PostgreSQL, migration 0005): users,
sessions, the audit log and the edition plans; the plan applied to an edition; `[desk]` settings."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.edition import build, build_editions
from newsletter.editorial import Plan, apply_plan, export_entries, open_audit, open_plans, plan_for
from newsletter.errors import ConfigError
from newsletter.web import Previewer
from newsletter.web.desk import DESK, AccountError, open_users
from newsletter.web.desk.arrange import Layout, leave_out, move, pin_lead, retitle
from newsletter.web.desk.sessions import open_sessions
from tests.helpers import DEMO_DATE, make_demo_root

DAY = date(2016, 12, 30)
PASSWORD = "a long enough password"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Any:
    return load_settings(tmp_path, environ={"NEWSLETTER_DATABASE_URL": database_url} if database_url else {})


def test_users_hash_with_argon2id_and_verify(settings: Any) -> None:
    with open_users(settings) as users:
        assert users.add("Ann", "admin", PASSWORD) is True
        assert users.add("bob", "editor", PASSWORD) is True
        for bad, why in (("", "empty"), ("   ", "empty"), ("short", "too short")):
            with pytest.raises(AccountError, match=why):
                users.add("carl", "editor", bad)
        with pytest.raises(AccountError, match="role"):
            users.add("carl", "owner", PASSWORD)
        with pytest.raises(AccountError, match="user name"):
            users.add("../etc", "editor", PASSWORD)
        ann = users.verify("ANN", PASSWORD)
        assert ann is not None and ann.name == "ann" and ann.can("admin") and ann.can("editor")
        assert users.verify("ann", PASSWORD + "x") is None and users.verify("nobody", PASSWORD) is None
        stored = users.db.scalar("SELECT password FROM desk_users WHERE name = 'ann'")
        assert str(stored).startswith("$argon2id$") and PASSWORD not in str(stored)
        bob = users.get("bob")
        assert bob is not None and bob.can("editor") and not bob.can("admin")
        assert users.admins() == 1
        users.set_active("bob", False)
        assert users.verify("bob", PASSWORD) is None
        users.add_sso("sso", "editor")
        assert users.verify("sso", "") is None and users.get("sso") is not None
        assert [u.name for u in users.users()] == ["ann", "bob", "sso"]


def test_sessions_expire_and_end(settings: Any) -> None:
    with open_sessions(settings, lifetime=3600, idle=600) as sessions:
        cookie, made = sessions.create("ann", now=1000.0)
        assert sessions.get(cookie, now=1100.0) == made
        assert sessions.get(cookie + "x", now=1100.0) is None
        assert sessions.get(cookie, now=1100.0 + 601) is None  # idle too long: gone for good
        assert sessions.get(cookie, now=1200.0) is None
        cookie, _ = sessions.create("ann", now=2000.0)
        for minute in range(1, 60):
            assert sessions.get(cookie, now=2000.0 + minute * 60) is not None, minute
        assert sessions.get(cookie, now=2000.0 + 3600) is None  # the lifetime holds, however busy
        second, _ = sessions.create("bob", now=5000.0)
        third, _ = sessions.create("bob", now=5000.0)
        assert second != third and sessions.end_all("bob") == 2
        assert sessions.get(second, now=5001.0) is None
        stored = [str(r[0]) for r in sessions.db.query("SELECT id_hash FROM desk_sessions")]
        assert second not in stored and third not in stored


def test_the_audit_log_records_filters_and_exports(settings: Any) -> None:
    with open_audit(settings) as log:
        log.record("ann", "login", "ann", {"via": "password"}, newsletter="list")
        log.record("ann", "plan.up", "2016-12-30/en", {"story": "a"}, newsletter="list")
        log.record("bob", "plan.titles", "2016-12-30/en", {"subject": '=HYPERLINK("x")'}, newsletter="list")
        log.record("bob", "user.add", "carl\nforged line", "role editor")
        newest = log.entries(limit=10)
        assert [e.action for e in newest] == ["user.add", "plan.titles", "plan.up", "login"]
        assert [e.action for e in log.entries(action="plan.")] == ["plan.titles", "plan.up"]
        assert [e.action for e in log.entries(actor="ann")] == ["plan.up", "login"]
        assert [e.action for e in log.entries(before=newest[1].id)] == ["plan.up", "login"]
        assert newest[0].target == "carl forged line"  # one entry is one line
        lines = io.StringIO()
        assert export_entries(log.walk(), lines, "jsonl") == 4
        rows = [json.loads(line) for line in lines.getvalue().splitlines()]
        assert [r["action"] for r in rows] == ["login", "plan.up", "plan.titles", "user.add"]
        table = io.StringIO()
        export_entries(log.walk(), table, "csv")
        assert table.getvalue().splitlines()[0] == "id,at,actor,action,target,detail,newsletter"
        assert "'{" not in table.getvalue() and ",\"'=HYPERLINK" not in table.getvalue()


def test_plans_are_kept_per_newsletter_date_and_language(settings: Any) -> None:
    with open_plans(settings) as plans:
        assert plans.get("list", DAY, "en") is None
        stored = plans.put("list", DAY, "en", Plan(order=("b", "a"), subject="Hello"), "ann")
        assert stored.updated_by == "ann" and stored.updated_at
        assert plans.get("list", DAY, "en") == stored
        assert plans.get("list", DAY, "fr") is None and plans.get("other", DAY, "en") is None
        plans.put("list", DAY, "en", Plan(dropped=("c",)), "bob")
        again = plans.get("list", DAY, "en")
        assert again is not None and again.dropped == ("c",) and again.order == () and again.updated_by == "bob"
        assert plans.clear("list", DAY, "en") and plans.get("list", DAY, "en") is None


@dataclass(frozen=True)
class S:
    id: str


def ids(stories: list[S]) -> list[str]:
    return [s.id for s in stories]


def test_apply_plan_orders_pins_drops_and_keeps_newcomers_in_place() -> None:
    ranked = [S("a"), S("b"), S("c"), S("d")]
    assert ids(apply_plan(ranked, None)) == ["a", "b", "c", "d"]
    assert ids(apply_plan(ranked, Plan())) == ["a", "b", "c", "d"]
    assert ids(apply_plan(ranked, Plan(order=("c", "a", "b", "d")))) == ["c", "a", "b", "d"]
    assert ids(apply_plan(ranked, Plan(order=("a", "b", "c", "d"), lead="c"))) == ["c", "a", "b", "d"]
    assert ids(apply_plan(ranked, Plan(order=("a", "b", "c", "d"), dropped=("b",)))) == ["a", "c", "d"]
    assert ids(apply_plan(ranked, Plan(dropped=("a", "b", "c", "d")))) == ["a", "b", "c", "d"]  # never empty
    # "n" arrived after the plan, ranked just below b: it comes right after b, wherever the plan put b.
    newcomer = [S("a"), S("b"), S("n"), S("c"), S("d")]
    plan = Plan(order=("d", "c", "b", "a"), known=("a", "b", "c", "d"))
    assert ids(apply_plan(newcomer, plan)) == ["d", "c", "b", "n", "a"]
    assert ids(apply_plan([S("n"), *newcomer[:2]], Plan(order=("b", "a")))) == ["n", "b", "a"]
    assert plan.new_stories(["a", "b", "n", "c", "d"]) == ["n"]


LAYOUT = Layout(lead="L", sections=(("World", ("a", "b")), ("Culture", ("c",)), ("Sport", ("d", "e"))))


def test_arranging_moves_within_a_section_or_the_section() -> None:
    plan = Plan()
    assert move(plan, LAYOUT, "b", up=True).order == ("L", "b", "a", "c", "d", "e")
    assert move(plan, LAYOUT, "c", up=True).order == ("L", "c", "a", "b", "d", "e")  # its section moves
    assert move(plan, LAYOUT, "c", up=False).order == ("L", "a", "b", "d", "e", "c")
    assert move(plan, LAYOUT, "a", up=True) is plan  # the first story of the first section: nowhere to go
    assert move(plan, LAYOUT, "e", up=False) is plan and move(plan, LAYOUT, "L", up=True) is plan
    pinned = pin_lead(plan, LAYOUT, "d")
    assert pinned.lead == "d" and pin_lead(pinned, LAYOUT, "").lead == ""
    out = leave_out(plan, LAYOUT, "c", out=True)
    assert out.dropped == ("c",) and set(out.known) == {"L", "a", "b", "c", "d", "e"}
    assert leave_out(out, LAYOUT, "c", out=False).dropped == ()
    titled = retitle(plan, LAYOUT, "  A subject\r\nBcc: evil@example.org ", "x" * 500)
    assert titled.subject == "A subject Bcc: evil@example.org" and len(titled.preheader) == 300


def test_build_applies_the_plan_and_never_touches_the_story_files(tmp_path: Path) -> None:
    root = make_demo_root(tmp_path / "paper")
    settings = load_settings(root)
    ranked = build(settings, DEMO_DATE)
    assert not (root / "data" / "desk.sqlite").exists()  # building reads no plan, and makes no desk file
    order = [s.id for s in ranked.edition.stories]
    files = {p: p.read_bytes() for p in (root / "stories").rglob("*.md")}
    with open_plans(settings) as plans:
        plan = Plan(order=tuple(reversed(order)), dropped=(order[1],), subject="Planned", preheader="Read me first")
        plans.put(settings.list.id, DEMO_DATE, "en", plan, "ann")
    assert plan_for(settings, DEMO_DATE) is not None
    planned = build(settings, DEMO_DATE)
    expected = [sid for sid in reversed(order) if sid != order[1]]
    assert [s["id"] for s in planned.manifest["stories"]] == expected
    assert planned.manifest["subject"] == "Planned" and planned.rendered.preheader == "Read me first"
    assert planned.manifest["plan"]["updated_by"] == "ann"
    assert [s.id for s in build(settings, DEMO_DATE, plan=False).edition.stories] == order
    assert files == {p: p.read_bytes() for p in (root / "stories").rglob("*.md")}


def test_the_scheduler_and_the_preview_apply_the_plan_too(tmp_path: Path) -> None:
    root = make_demo_root(tmp_path / "paper")
    settings = load_settings(root)
    previewer = Previewer(root)
    before = previewer.edition(DEMO_DATE)
    assert before.build is not None and before.build.rendered.subject != "Planned for the morning"
    with open_plans(settings) as plans:
        plans.put(settings.list.id, DEMO_DATE, "en", Plan(subject="Planned for the morning"), "ann")
    after = previewer.edition(DEMO_DATE)
    assert after.build is not None and after.build.rendered.subject == "Planned for the morning"
    morning = build_editions(settings, DEMO_DATE, skip_invalid=True)  # what the scheduler's morning builds
    assert [b.rendered.subject for b in morning.builds] == ["Planned for the morning"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("login_attempts = 0", "[desk] login_attempts must be a whole number from 1 to 1000, got 0"),
        ('trusted_header = "X-User: admin"', "[desk] trusted_header must be an HTTP header name"),
        ('trusted_header = "X-User"', "[desk] trusted_proxies must name the proxy addresses"),
        ('trusted_proxies = ["proxy.example"]', "[desk] trusted_proxies must be IP addresses or networks"),
        ('seeds = ["not an address"]', "[desk] seeds must be email addresses"),
        ("min_password = 4", "[desk] min_password must be a whole number from 8 to 1024, got 4"),
        ("sesion_hours = 1", "[desk]: unknown setting 'sesion_hours'"),
    ],
)
def test_bad_desk_settings_are_one_line_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "newsletter.toml").write_text(f"[desk]\n{toml}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path).options(DESK)
    assert str(caught.value).startswith("newsletter.toml: ") and message in str(caught.value)


def test_trusted_proxies_are_addresses_and_networks(tmp_path: Path) -> None:
    toml = '[desk]\ntrusted_header = "X-Forwarded-User"\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n'
    (tmp_path / "newsletter.toml").write_text(toml, encoding="utf-8")
    options = load_settings(tmp_path).options(DESK)
    assert options.proxy_trusted("10.1.2.3") and options.proxy_trusted("::1")
    assert not options.proxy_trusted("11.0.0.1") and not options.proxy_trusted("not-an-ip")


def test_db_migrate_from_sqlite_moves_the_desk(tmp_path: Path, pg_cluster: Any) -> None:
    root = make_demo_root(tmp_path / "paper")
    local = load_settings(root, environ={})
    with open_users(local) as users:
        users.add("ann", "admin", PASSWORD)
    with open_audit(local) as log:
        log.record("ann", "login", "ann")
        log.record("ann", "plan.titles", "2016-12-30/en", {"subject": "Moved"})
    with open_plans(local) as plans:
        plans.put(local.list.id, DAY, "en", Plan(subject="Moved"), "ann")
    url = pg_cluster.new_database()
    env = {"NEWSLETTER_DATABASE_URL": url}
    for _ in range(2):  # twice: the second run copies nothing again
        result = CliRunner().invoke(cli, ["db", "migrate-from-sqlite", "--root", str(root)], env=env)
        assert result.exit_code == 0, result.output
    assert "the database already has an audit log" in result.output
    remote = load_settings(root, environ=env)
    with open_users(remote) as users:
        assert users.verify("ann", PASSWORD) is not None
    with open_audit(remote) as log:
        assert [e.action for e in log.entries()] == ["plan.titles", "login"]
    stored = plan_for(remote, DAY)
    assert stored is not None and stored.subject == "Moved" and stored.updated_by == "ann"
