"""Retention: the sweep deletes events older than EVENT_RETENTION_DAYS as a prefix of the feed,
with their deliveries and attempts, and a cursor from before it is refused, not read on from."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.api.conftest import Api, settled
from tests.api.test_housekeeping import _sweep
from tests.conftest import Cli, Sink
from tests.factories import Factory
from workspaces import clock
from workspaces.app import create_app
from workspaces.db import create_sync_engine, parse_url
from workspaces.events.tell import new_event_id
from workspaces.logs import shown_url
from workspaces.models import events, webhook_attempts, webhook_deliveries
from workspaces.settings import Settings

DAYS = 2


@pytest.fixture
def kept(settings: Settings, smtp: Sink) -> Iterator[tuple[Api, Settings]]:
    """The API on a server that keeps events DAYS days."""
    short = settings.model_copy(update={"event_retention_days": DAYS})
    with TestClient(create_app(short)) as client:
        yield Api(client, Cli(short.database_url, {})), short


def _read(api: Api, slug: str, headers: dict[str, str], **params: Any) -> Any:
    return api.client.get(f"/api/workspaces/{slug}/events", params=params, headers=headers)


def _test_message(url: str) -> None:
    """A webhook test message to the first endpoint: a delivery of no event."""
    engine = create_sync_engine(parse_url(url), sqlite_immediate=True)
    try:
        with engine.begin() as conn:
            endpoint = conn.execute(webhook_deliveries.select().limit(1)).first()
            assert endpoint is not None
            now = clock.now()
            conn.execute(insert(webhook_deliveries).values(
                id=uuid.uuid4(), endpoint_id=endpoint.endpoint_id, event_position=None,
                message_id=f"msg_{uuid.uuid4().hex}", payload={"type": "test"},
                status="delivered", attempts=1, next_attempt_at=now, created_at=now,
                delivered_at=now))
    finally:
        engine.dispose()


def test_old_events_go_with_their_deliveries_and_an_expired_cursor_is_refused(
        kept: tuple[Api, Settings]) -> None:
    api, settings = kept
    make = Factory(api.db.url)
    try:
        make.endpoint(None)  # an instance endpoint: every event gets a delivery
        ann = api.signup("ann@example.com")
        acme = api.workspace(ann, "Acme")
        globex = api.workspace(ann, "Globex")
        api.invite(ann, acme, "bob@example.com")
        settled(api.db.url)
        lagging = _read(api, acme, ann, limit=1).json()["next_cursor"]  # read one, stopped
        quiet = _read(api, globex, ann).json()["next_cursor"]  # globex has nothing more
        old = api.db.sql("SELECT txid, position FROM events ORDER BY txid, position")
        first_delivery = api.db.sql("SELECT id, endpoint_id FROM webhook_deliveries "
                                    "ORDER BY created_at LIMIT 1")[0]
        with make.engine.begin() as conn:
            conn.execute(insert(webhook_attempts).values(
                id=uuid.uuid4(), delivery_id=uuid.UUID(str(first_delivery[0])),
                endpoint_id=uuid.UUID(str(first_delivery[1])), attempted_at=clock.now(),
                status_code=200, duration_ms=3, response_excerpt="ok"))
        _test_message(api.db.url)
    finally:
        make.close()

    with time_machine.travel(datetime.now(UTC) + timedelta(days=DAYS + 1), tick=True):
        api.invite(ann, acme, "cat@example.com")
        settled(api.db.url)
        # Globex's consumer keeps polling: its cursor moves on though Globex is quiet.
        polled = _read(api, globex, ann, after=quiet).json()
        assert polled["items"] == [] and polled["next_cursor"] != quiet
        _test_message(api.db.url)
        swept = _sweep(settings)

    assert (swept.events, swept.test_messages) == (len(old), 1)
    left = api.db.sql("SELECT type FROM events")
    assert left == [("invite.created",)]
    assert api.db.sql("SELECT txid, position FROM event_horizon") == [old[-1]]
    # The kept event's delivery and the new test message stay; the rest went with their
    # events, and the attempt with its delivery.
    assert sorted(api.db.sql("SELECT event_position IS NULL FROM webhook_deliveries")) == [
        (False,), (True,)]
    # (The app's delivery loop may have tried the kept ones meanwhile.)
    assert api.db.sql("SELECT count(*) FROM webhook_attempts WHERE delivery_id = "
                      f"'{first_delivery[0]}'") == [(0,)]

    expired = _read(api, acme, ann, after=lagging)
    message = api.error(expired, 410, "cursor_expired")
    assert f"kept {DAYS} days" in message and "leave out `after`" in message
    fresh = _read(api, acme, ann).json()
    assert [e["data"]["invite"]["email"] for e in fresh["items"]] == ["cat@example.com"]
    assert _read(api, globex, ann, after=polled["next_cursor"]).json()["items"] == []
    up_to_date = _read(api, acme, ann, after=fresh["next_cursor"])
    assert up_to_date.status_code == 200 and up_to_date.json()["items"] == []

    # The operator is told the command that starts over, and it works as printed.
    cli = Cli(api.db.url, {"EVENT_RETENTION_DAYS": str(DAYS)})
    refused = cli("events", "list", "--after", lagging, "--workspace", acme,
                  "--database-url", api.db.url)
    assert refused.exit_code == 1 and "error[cursor_expired]" in refused.stderr
    step = next(line.split("next: ", 1)[1] for line in refused.stderr.splitlines()
                if "next: " in line)
    assert step == (f"workspaces events list --workspace {acme} "
                    f"--database-url {shlex.quote(shown_url(api.db.url).paste)}")
    again = cli(*shlex.split(step)[1:])
    assert again.exit_code == 0 and "invite.created" in again.stdout


def test_the_sweep_stops_at_the_first_event_still_kept(settings: Settings) -> None:
    """A prefix of the feed's order, never a hole in it: an old event after a young one stays
    until the young one is old too, so a cursor before the horizon is the only way to have
    missed a deleted event."""
    engine = create_sync_engine(parse_url(settings.database_url), sqlite_immediate=True)
    now = clock.now()
    try:
        with engine.begin() as conn:
            for age in (DAYS + 5, DAYS + 4, 0, DAYS + 3):
                at, event_id = now - timedelta(days=age), new_event_id()
                conn.execute(insert(events).values(
                    txid=0, id=event_id, type="user.updated", workspace_id=None,
                    occurred_at=at, payload={"id": event_id}))
    finally:
        engine.dispose()
    short = settings.model_copy(update={"event_retention_days": DAYS})
    assert _sweep(short).events == 2
    assert _sweep(short).events == 0
    with time_machine.travel(now + timedelta(days=DAYS + 1), tick=True):
        assert _sweep(short).events == 2
