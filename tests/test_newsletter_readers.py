"""One reader base, several newsletters: enrolment per subscription, a newsletter's one-click link ends that
subscription only, a bounce suppresses the address for every newsletter. Both backends."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.letters import chosen_settings
from newsletter.storage import Consent, open_readers
from tests.helpers import DEMO_DATE
from tests.test_web_app import PublicServer, clean_env

SECRET = "a-long-random-secret-for-the-newsletter-readers"
WEB = '\n[web]\nhosts = ["newsletter.example.org", "127.0.0.1"]\n'


def _join(settings, address: str) -> None:  # type: ignore[no-untyped-def]
    with open_readers(settings) as base:
        base.sign_up(address, name="R", locale="en")
        base.confirm(address, Consent(at="2016-12-29T10:00:00+00:00", form="test"))


@pytest.fixture
def paper(languages_root: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    (languages_root / "newsletter.toml").write_text(
        (languages_root / "newsletter.toml").read_text(encoding="utf-8") + WEB, encoding="utf-8"
    )
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    if database_url:
        monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    daily, weekly, _breaking = chosen_settings(load_settings(languages_root), None)
    for address in ("both@example.org", "daily@example.org", "bounced@example.org"):
        _join(daily, address)
    for address in ("both@example.org", "weekly@example.org", "bounced@example.org"):
        _join(weekly, address)
    with open_readers(daily) as base:
        base.suppress("bounced@example.org", "bounced", "550 5.1.1 user unknown")  # out of every newsletter
    return languages_root


def _mail(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in (root / "outbox" / "weekly" / "2016-12-30" / "mail").glob("*.eml")}


def _subscriptions(root: Path, address: str) -> dict[str, str]:
    shown = CliRunner().invoke(cli, ["subscribers", "show", address, "--root", str(root), "--json"])
    assert shown.exit_code == 0, shown.output
    return {s["newsletter"]: s["status"] for s in json.loads(shown.output)["subscriptions"]}


def test_each_newsletter_goes_to_its_readers_and_one_click_ends_only_its_subscription(
    paper: Path, database_url: str
) -> None:
    args = ["send", "--root", str(paper), "--date", DEMO_DATE.isoformat(), "--no-progress"]
    sent = CliRunner().invoke(cli, [*args, "--newsletter", "weekly"])
    assert sent.exit_code == 0, sent.output
    mail = _mail(paper)
    assert sorted(mail) == ["both@example.org", "weekly@example.org"]  # not daily's, not the bounced
    header = next(
        line for line in mail["both@example.org"].read_text().splitlines() if line.startswith("List-Unsubscribe:")
    )
    url = header.split("<", 1)[1].split(">", 1)[0]
    assert urlsplit(url).path.startswith("/u/weekly/")
    assert _subscriptions(paper, "both@example.org") == {"daily": "confirmed", "weekly": "confirmed"}
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    if database_url:
        env["NEWSLETTER_DATABASE_URL"] = database_url
    server = PublicServer(paper, env=env)
    try:
        with server.client() as client:
            answer = client.post(
                urlsplit(url).path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 200 and "The Weekly Read" in answer.text
            wrong = client.post(
                urlsplit(url).path.replace("/u/weekly/", "/u/"),
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert wrong.status_code == 403  # the weekly's token is not the daily's
    finally:
        assert server.stop() == 0
    assert _subscriptions(paper, "both@example.org") == {"daily": "confirmed", "weekly": "unsubscribed"}
    daily, _weekly, _breaking = chosen_settings(load_settings(paper), None)
    with open_readers(daily) as base:
        assert base.get("both@example.org").status == "confirmed"  # type: ignore[union-attr]
        assert sorted(r.email for r in base.enrolled("weekly", "2016-12-30")) == ["weekly@example.org"]
        assert sorted(r.email for r in base.enrolled("daily", "2016-12-30")) == [
            "both@example.org",
            "daily@example.org",
        ]
    assert _subscriptions(paper, "bounced@example.org") == {"daily": "unsubscribed", "weekly": "unsubscribed"}


def test_the_three_newsletter_demo_builds_in_a_subprocess(paper: Path) -> None:
    """`newsletter build` of the three-newsletter demo, as README's first command runs it, in a subprocess."""
    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "--root", str(paper)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "of weekly" in done.stdout and (paper / "outbox" / "weekly" / "2016-12-30" / "newsletter.eml").is_file()


def test_the_sign_up_form_offers_the_public_newsletters_and_one_confirmation_covers_those_ticked(
    paper: Path, database_url: str
) -> None:
    from tests.test_web_app import confirm_link, confirmation_mail, csrf_of

    env = clean_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET)
    if database_url:
        env["NEWSLETTER_DATABASE_URL"] = database_url
    server = PublicServer(paper, env=env)
    address = "picker@example.org"
    try:
        with server.client() as client:
            form = client.get("/subscribe").text
            boxes = re.findall(r'<input type="checkbox" name="newsletter" value="([a-z-]+)"( checked)?>', form)
            assert boxes == [("daily", " checked"), ("weekly", ""), ("breaking", "")]
            ticked = ["weekly", "breaking", "made-up"]
            data = {"email": address, "csrf": csrf_of(form), "form": "subscribe", "newsletter": ticked}
            assert client.post("/subscribe", data=data).status_code == 303
            link = confirm_link(confirmation_mail(paper, address, timeout=20, lang="en"))
            assert _subscriptions(paper, address) == {"weekly": "pending", "breaking": "pending"}
            page = client.get(link)
            done = client.post(link, data={"csrf": csrf_of(page.text)})
            assert done.status_code == 200, done.text
    finally:
        assert server.stop() == 0
    assert _subscriptions(paper, address) == {"weekly": "confirmed", "breaking": "confirmed"}
