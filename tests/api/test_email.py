"""Email delivery through the outbox: outages, permanent failures, the console backend."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tests.conftest import NOT_CONFIRMATION, Cli, Sink, free_port, link_in
from workspaces.app import create_app
from workspaces.settings import Settings


def _outbox(api: Api) -> list[tuple[object, ...]]:
    return api.db.sql("SELECT to_address, status, attempts, last_error, sealed_secret "
                      f"FROM email_outbox WHERE {NOT_CONFIRMATION} ORDER BY created_at")


def _wait(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def down_api(settings: Settings) -> Iterator[tuple[Api, Sink]]:
    """An app whose SMTP server is not running yet (start it with `controller.start()`)."""
    port = free_port()
    sink = Sink(port)
    outage = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}",
                                         "email_max_attempts": 50})
    with TestClient(create_app(outage)) as client:
        yield Api(client, Cli(settings.database_url, {})), sink


def test_an_smtp_outage_delays_email_and_loses_none(down_api: tuple[Api, Sink]) -> None:
    api, sink = down_api
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    for n in range(3):
        api.invite(owner, slug, f"p{n}@example.com")
    _wait(lambda: all(row[3] is not None for row in _outbox(api)))  # an attempt failed
    rows = _outbox(api)
    assert [row[1] for row in rows] == ["pending"] * 3
    assert all("onnect" in str(row[3]) for row in rows), rows  # "Connection refused"
    assert all(row[4] for row in rows)  # the link is still sealed, waiting
    tab = _members_tab(api.client, "ann@example.com", slug)
    assert _delivery(tab, "p0@example.com") == "Not sent yet Trying again."  # the admin's words

    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        messages = sink.wait_for(3, timeout=20)
        _wait(lambda: [row[1] for row in _outbox(api)] == ["sent"] * 3)
    finally:
        controller.stop()
    assert sorted(m["To"] for m in messages) == [f"p{n}@example.com" for n in range(3)]
    assert all(row[4] is None for row in _outbox(api))  # sealed links erased once sent
    assert _delivery(api.client.get(f"/w/{slug}").text, "p2@example.com") == "Sent"


def test_a_resend_during_an_outage_withdraws_the_unsent_email(down_api: tuple[Api, Sink]) -> None:
    api, sink = down_api
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    invite = api.invite(owner, slug, "bob@example.com")
    resent = api.client.post(f"/api/workspaces/{slug}/invites/{invite['id']}/resend",
                             headers=owner).json()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        (message,) = sink.wait_for(1, timeout=20)
        time.sleep(0.5)  # nothing else arrives
        assert len(sink.messages) == 1
    finally:
        controller.stop()
    assert resent["accept_url"].endswith(link_in(message))
    statuses = sorted(str(row[1]) for row in _outbox(api))
    assert statuses == ["failed", "sent"]


def test_a_refused_address_is_marked_failed_with_the_smtp_reply(api: Api, smtp: Sink) -> None:
    smtp.refuse.add("ghost@example.com")
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    api.invite(owner, slug, "ghost@example.com")
    api.invite(owner, slug, "real@example.com")
    smtp.wait_for(1)
    _wait(lambda: {row[0]: row[1] for row in _outbox(api)}.get("ghost@example.com") == "failed")
    ghost = next(row for row in _outbox(api) if row[0] == "ghost@example.com")
    assert "550" in str(ghost[3]) and "No such mailbox" in str(ghost[3])
    assert ghost[4] is None
    listed = {i["email"]: i for i in api.client.get(f"/api/workspaces/{slug}/invites",
                                                    headers=owner).json()["items"]}
    assert listed["ghost@example.com"]["email_status"] == "failed"  # visible to admins
    assert "No such mailbox" in listed["ghost@example.com"]["email_error"]
    tab = _members_tab(api.client, "ann@example.com", slug)  # no outbox words, no SMTP reply
    assert _delivery(tab, "ghost@example.com") == (
        "Could not be delivered Check the address, then resend the invite.")
    _wait(lambda: api.client.get(f"/api/workspaces/{slug}/invites", headers=owner)
          .json()["items"][0]["email_status"] == "sent")


def _delivery(tab: str, email: str) -> str:
    """The words of the Delivery cell of an invite's row on the Members tab."""
    row = tab[tab.index(f'<tr data-invite="{email}">'):]
    cell = row[row.index('data-label="Delivery">') + len('data-label="Delivery">'):]
    return " ".join(re.sub(r"<[^>]+>", " ", cell[:cell.index("</td>")]).split())


def _members_tab(client: TestClient, email: str, slug: str) -> str:
    """The workspace's Members tab as its owner sees it (signed in through the form)."""
    page = client.get("/signin")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    signed_in = client.post("/signin", data={"csrf_token": match.group(1), "email": email,
                                              "password": "correct horse battery"})
    assert signed_in.status_code == 200, signed_in.text
    tab = client.get(f"/w/{slug}")
    assert tab.status_code == 200, tab.text
    return str(tab.text)


@pytest.mark.parametrize("console", [
    {"smtp_url": None},  # nothing configured: console, the development default
    {"email_backend": "console"},  # chosen on purpose, even with a mail server configured
])
def test_the_console_backend_logs_the_email_as_not_delivered(
        settings: Settings, smtp: Sink, caplog: pytest.LogCaptureFixture,
        console: dict[str, str | None]) -> None:
    caplog.set_level(logging.WARNING, logger="workspaces.mail")
    with TestClient(create_app(settings.model_copy(update=console))) as client:
        api = Api(client, Cli(settings.database_url, {}))
        owner = api.signup("ann@example.com")
        slug = api.workspace(owner)
        token = api.invite_token(owner, slug, "bob@example.com")
        _wait(lambda: [row[1] for row in _outbox(api)] == ["logged"])
        listed = api.client.get(f"/api/workspaces/{slug}/invites", headers=owner).json()
        tab = _members_tab(client, "ann@example.com", slug)
    assert [i["email_status"] for i in listed["items"]] == ["logged"]
    assert _delivery(tab, "bob@example.com") == (
        "Not sent This server is not set up to send email.")
    (record,) = [r for r in caplog.records if r.name == "workspaces.mail"
                 and "Subject: Confirm" not in r.getMessage()]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert text.startswith("DEVELOPMENT EMAIL (EMAIL_BACKEND=console): not delivered to anyone\n")
    assert "To: bob@example.com" in text
    assert "Subject: ann@example.com invited you to “Acme”" in text
    assert f"/invites/{token}" in text  # the developer follows the link from the log
    assert smtp.messages == []  # a configured server is not used
    assert _outbox(api)[0][4] is None  # the sealed link is erased as after a delivery
