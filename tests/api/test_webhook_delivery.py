"""Webhook delivery per Standard Webhooks 1.0, on SQLite and PostgreSQL: real receivers on
127.0.0.1, every delivered message checked with the reference `standardwebhooks` library (not
our signing code), the retry schedule walked with time-machine (never slept through)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from tests.api.conftest import Api
from tests.conftest import Cli, Sink, pg_database
from tests.factories import Factory
from tests.webhook_receiver import Receiver, add_endpoint, new_secret
from workspaces import clock
from workspaces.app import create_app
from workspaces.db import create_app_engine, parse_url
from workspaces.events import changes
from workspaces.events.tell import SYSTEM, WorkspaceRef, tell
from workspaces.mail import delivery as mail
from workspaces.metrics.process import WEBHOOK_ATTEMPTS
from workspaces.models import (
    audit_events,
    events,
    outbox,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from workspaces.security import secret_key
from workspaces.settings import Settings
from workspaces.webhooks import delivery, service
from workspaces.webhooks.delivery import Deliverer

T = TypeVar("T")
SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)  # the default, Svix's
START = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def hooks(settings: Settings) -> Settings:
    """Receivers on 127.0.0.1 are allowed (and may use plain http)."""
    return settings.model_copy(update={"webhook_allowed_networks": "127.0.0.0/8",
                                       "workspace_webhook_allowed_networks": "127.0.0.0/8",
                                       "webhook_poll_seconds": 0.1})


def run(settings: Settings, scenario: Callable[[Deliverer], Awaitable[T]]) -> T:
    """`scenario` with a Deliverer of its own engine (no server running beside it)."""
    async def main() -> T:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=2)
        deliverer = Deliverer(engine, settings, secret_key(settings))
        try:
            return await scenario(deliverer)
        finally:
            await deliverer.close()
            await engine.dispose()
    return asyncio.run(main())


async def instance_events(engine: AsyncEngine, count: int = 1) -> list[dict[str, Any]]:
    """`count` events of no workspace (user.deleted), told as the services tell them; their
    payloads as the feed serves them."""
    async with engine.begin() as conn:
        for n in range(count):
            gone = changes.user(uuid.uuid4(), f"gone{n}@example.com", f"Gone {n}")
            await tell(conn, changes.user_deleted(gone, SYSTEM))
    return await payloads(engine)


async def workspace_events(engine: AsyncEngine, ws: WorkspaceRef, count: int = 1
                           ) -> list[dict[str, Any]]:
    async with engine.begin() as conn:
        for n in range(count):
            someone = changes.member(uuid.uuid4(), f"m{n}@example.com", f"M {n}", "member")
            await tell(conn, changes.member_added(ws, someone, "created", SYSTEM))
    return await payloads(engine)


async def payloads(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [row.payload for row in await conn.execute(
            select(events.c.payload).order_by(events.c.position))]


async def rows(engine: AsyncEngine, table: Any, *order: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(table).order_by(*order)))


def counted() -> Counter[str]:
    """workspaces_webhook_delivery_attempts_total by outcome, as this process counts them."""
    return Counter({sample.labels["outcome"]: int(sample.value)
                    for metric in WEBHOOK_ATTEMPTS.collect() for sample in metric.samples
                    if sample.name.endswith("_total")})


def verified(secret: str, message: Any) -> Any:
    """The message as the reference library reads it (it raises if the signature is wrong)."""
    return Webhook(secret).verify(message.body, message.headers)


def test_a_delivery_is_the_feed_event_signed_as_the_reference_library_verifies(
        hooks: Settings, receiver: Receiver) -> None:
    secret = new_secret()
    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=secret)

    async def scenario(deliverer: Deliverer) -> None:
        with time_machine.travel(START, tick=False) as traveller:
            [event] = await instance_events(deliverer.engine)
            assert await deliverer.deliver_due() == 1
            [message] = receiver.received()
            # The reference library accepts it and reads the feed's event, byte for byte.
            assert verified(secret, message) == event
            assert message.body == json.dumps(event, separators=(",", ":"),
                                              ensure_ascii=False).encode()
            headers = message.headers
            assert headers["webhook-id"] == event["id"]
            assert headers["webhook-timestamp"] == str(int(START.timestamp()))
            assert headers["webhook-signature"].startswith("v1,")
            assert " " not in headers["webhook-signature"]  # one secret, one signature
            assert headers["content-type"] == "application/json"
            assert headers["user-agent"].startswith("Workspaces-Webhooks/")
            assert headers["host"] == f"127.0.0.1:{receiver.server.port}"
            # It rejects a tampered body, another secret, and (5 minutes on) a stale timestamp.
            tampered = message.body.replace(b"Gone 0", b"Gone 1")
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(tampered, headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(new_secret()).verify(message.body, headers)
            traveller.shift(timedelta(minutes=6))
            with pytest.raises(WebhookVerificationError, match="too old"):
                Webhook(secret).verify(message.body, headers)
            # Nothing is due any more.
            assert await deliverer.deliver_due() == 0
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.endpoint_id, row.status, row.attempts, row.message_id) == (
            endpoint, "delivered", 1, event["id"])
        assert clock.aware(row.delivered_at) == START
        assert (row.locked_until, row.last_status_code, row.last_error) == (None, 200, None)
        [attempt] = await rows(deliverer.engine, webhook_attempts)
        assert (attempt.status_code, attempt.response_excerpt, attempt.error) == (
            200, "thanks", None)
        assert attempt.duration_ms >= 0

    run(hooks, scenario)


def test_the_retry_schedule_is_svix_s_with_jitter_then_the_delivery_fails(
        hooks: Settings, receiver: Receiver) -> None:
    """500 eight times: attempts now, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    (each within 10%), and the delivery is marked failed. Time is moved, never slept."""
    assert hooks.webhook_retry_delays == SCHEDULE
    receiver.answer = lambda request: Response("database on fire", 500)
    secret = new_secret()
    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=secret)

    before = counted()

    async def scenario(deliverer: Deliverer) -> None:
        with time_machine.travel(START, tick=False) as traveller:
            [event] = await instance_events(deliverer.engine)
            for attempt, wait in enumerate([*SCHEDULE, None], start=1):
                assert await deliverer.deliver_due() == 1
                [row] = await rows(deliverer.engine, webhook_deliveries)
                assert row.attempts == attempt
                assert (row.last_status_code, row.last_error) == (500, "HTTP 500 INTERNAL "
                                                                       "SERVER ERROR")
                message = receiver.received()[-1]
                assert verified(secret, message) == event  # each one signed afresh
                if wait is None:
                    assert row.status == "failed"
                    break
                assert row.status == "pending"
                due = clock.aware(row.next_attempt_at)
                assert 0.9 * wait <= (due - clock.now()).total_seconds() <= 1.1 * wait
                traveller.move_to(due - timedelta(seconds=0.5))
                assert await deliverer.deliver_due() == 0  # not before its time
                traveller.move_to(due)
            assert await deliverer.deliver_due() == 0
        tries = await rows(deliverer.engine, webhook_attempts, webhook_attempts.c.attempted_at)
        assert [(t.status_code, t.response_excerpt) for t in tries] == [
            (500, "database on fire")] * 8
        assert len({m.webhook_id for m in receiver.received()}) == 1  # one message, 8 tries
        [hook] = await rows(deliverer.engine, webhook_endpoints)
        # Failing since the first attempt, 27.5 hours: still enabled (5 days disable it).
        assert (hook.id, hook.enabled, clock.aware(hook.failing_since)) == (endpoint, True,
                                                                             START)

    run(hooks, scenario)
    assert counted() - before == Counter({"retry": 7, "failed": 1})


@pytest.mark.parametrize("answer", ["seconds", "date", "too long"])
def test_429_and_503_are_retried_when_retry_after_says(
        hooks: Settings, receiver: Receiver, answer: str) -> None:
    wait = {"seconds": 120.0, "date": 3600.0, "too long": 36000.0}[answer]
    header = {"seconds": "120", "date": format_datetime(START + timedelta(hours=1), usegmt=True),
              "too long": "99999999"}[answer]
    status = 503 if answer == "date" else 429
    receiver.answer = lambda request: Response("slow down", status,
                                               headers={"Retry-After": header})
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        with time_machine.travel(START, tick=False):
            await instance_events(deliverer.engine)
            assert await deliverer.deliver_due() == 1
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.last_status_code) == ("pending", status)
        assert clock.aware(row.next_attempt_at) == START + timedelta(seconds=wait)

    run(hooks, scenario)


def test_a_redirect_is_not_followed_and_counts_as_a_failure(
        hooks: Settings, receiver: Receiver) -> None:
    elsewhere = receiver.url("/elsewhere")
    receiver.answer = lambda request: Response("", 307, headers={"Location": elsewhere})
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 307)
        assert row.last_error == f"HTTP 307: redirects are not followed (to {elsewhere})"

    run(hooks, scenario)
    assert [r.path for r in receiver.received()] == ["/hook"]  # never /elsewhere


def test_a_slow_receiver_times_out_without_holding_up_another(
        hooks: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow receiver answers only when released (after the attempt gave up); the quick one
    answers only once the slow one holds its request: had they been sent one after the other,
    the quick one would have timed out too."""
    # The quick one's whole exchange fits in the time limit on a loaded machine too (0.5 s
    # failed a similar test once); the slow one holds its request for 60 s, far past it.
    monkeypatch.setattr(delivery, "TIMEOUT", 5.0)
    slow, quick = Receiver.start(), Receiver.start()
    holding, release = threading.Event(), threading.Event()

    def stall(request: Request) -> Response:
        holding.set()
        release.wait(60)
        return Response("late", 200)

    def after_the_slow_one(request: Request) -> Response:
        assert holding.wait(60)
        return Response("quick", 200)

    slow.answer, quick.answer = stall, after_the_slow_one
    key = secret_key(hooks)
    late = add_endpoint(hooks.database_url, slow.url(), key=key, secret=new_secret())
    fast = add_endpoint(hooks.database_url, quick.url(), key=key, secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        try:
            assert await deliverer.deliver_due() == 2
        finally:
            release.set()
        found = {r.endpoint_id: r for r in await rows(deliverer.engine, webhook_deliveries)}
        assert (found[fast].status, found[fast].last_status_code) == ("delivered", 200)
        assert (found[late].status, found[late].last_status_code) == ("pending", None)
        assert found[late].last_error == "no complete answer within 5 s (timed out)"

    try:
        run(hooks, scenario)
    finally:
        slow.stop()
        quick.stop()


def test_a_long_answer_is_read_only_up_to_the_cap(hooks: Settings, receiver: Receiver) -> None:
    receiver.answer = lambda request: Response("é" * 1_000_000, 200)
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        [attempt] = await rows(deliverer.engine, webhook_attempts)
        assert attempt.status_code == 200
        assert attempt.response_excerpt == "é" * (delivery.EXCERPT // 2)

    run(hooks, scenario)


def test_during_a_rotation_both_secrets_sign_and_after_the_grace_only_the_new_one(
        hooks: Settings, receiver: Receiver) -> None:
    old, new = new_secret(), new_secret()
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new,
                 previous_secret=old, previous_until=START + timedelta(hours=24))

    async def scenario(deliverer: Deliverer) -> None:
        with time_machine.travel(START, tick=False) as traveller:
            [first] = await instance_events(deliverer.engine)
            assert await deliverer.deliver_due() == 1
            [message] = receiver.received()
            assert len(message.headers["webhook-signature"].split(" ")) == 2
            assert verified(old, message) == verified(new, message) == first
            traveller.shift(timedelta(hours=24, seconds=1))
            second = (await instance_events(deliverer.engine))[-1]
            assert await deliverer.deliver_due() == 1
            message = receiver.received()[-1]
            assert len(message.headers["webhook-signature"].split(" ")) == 1
            assert verified(new, message) == second
            with pytest.raises(WebhookVerificationError):
                verified(old, message)

    run(hooks, scenario)


def test_a_secret_that_cannot_be_unsealed_fails_the_attempt_and_sends_nothing(
        hooks: Settings, receiver: Receiver) -> None:
    add_endpoint(hooks.database_url, receiver.url(), key="another-key-" + "x" * 32,
                 secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
        assert "cannot be decrypted" in row.last_error
        [attempt] = await rows(deliverer.engine, webhook_attempts)
        assert attempt.error == row.last_error

    run(hooks, scenario)
    assert receiver.received() == []


def test_an_address_refused_at_delivery_time_gets_no_request(
        hooks: Settings, receiver: Receiver) -> None:
    """Saved while 127.0.0.0/8 was allowed; the operator has since narrowed the setting."""
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret())
    narrowed = hooks.model_copy(update={"webhook_allowed_networks": "10.0.0.0/8"})

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.last_status_code) == ("pending", None)
        assert row.last_error.startswith("not sent: This webhook URL cannot be used: ")
        assert "127.0.0.1" in row.last_error
        assert "not a public address" in row.last_error

    run(narrowed, scenario)
    assert receiver.received() == []


class Names:
    """Host names of our own for the tests (no DNS server involved): what each resolves to
    now; any other name resolves as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.table: dict[str, str] = {}
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name in self.table:
                return real(self.table[name], port, *args, **kwargs)
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_dns_rebinding_a_name_that_now_resolves_to_a_refused_address_gets_no_request(
        hooks: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    names = Names(monkeypatch)
    names.table["rebind.test"] = "127.0.0.1"
    add_endpoint(hooks.database_url, receiver.url(host="rebind.test"), key=secret_key(hooks),
                 secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        assert len(receiver.received()) == 1  # allowed while it resolved to 127.0.0.1
        names.table["rebind.test"] = "169.254.169.254"  # the cloud metadata address
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        last = (await rows(deliverer.engine, webhook_attempts,
                           webhook_attempts.c.attempted_at))[-1]
        assert last.status_code is None
        assert "rebind.test resolves to a non-public address" in last.error
        assert "169.254" not in last.error  # what an internal name resolves to is not told

    run(hooks, scenario)
    assert len(receiver.received()) == 1
    assert receiver.received()[0].headers["host"] == f"rebind.test:{receiver.server.port}"


def _tls_for(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate authority of the test's own and a server certificate it signed for `name`:
    (the server's context, a client context trusting only that authority)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        now = datetime.now(UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    authority = cert("Test CA", ca_key, "Test CA", ca_key, True)
    leaf = cert(name, server_key, "Test CA", ca_key, False)
    chain, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain, key_file)
    client = ssl.create_default_context(
        cadata=authority.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


def test_https_goes_to_the_checked_address_verified_for_the_endpoint_s_host_name(
        hooks: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hooks.test and other.test both resolve (for this test) to 127.0.0.1, where a server
    holds a certificate for hooks.test only: the delivery to hooks.test connects to the
    address it checked, sends its name (SNI, Host) and verifies it; other.test's is refused
    by the certificate check, even after a connection to the same address was made."""
    server_tls, client_tls = _tls_for(tmp_path, "hooks.test")
    monkeypatch.setattr(delivery, "TLS", client_tls)
    names = Names(monkeypatch)
    names.table.update({"hooks.test": "127.0.0.1", "other.test": "127.0.0.1"})
    tls = Receiver.start(ssl_context=server_tls)
    key = secret_key(hooks)
    good = add_endpoint(hooks.database_url, tls.url(host="hooks.test"), key=key,
                        secret=new_secret())
    bad = add_endpoint(hooks.database_url, tls.url("/other", host="other.test"), key=key,
                       secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        await deliverer.deliver_due()
        await instance_events(deliverer.engine)  # again, with a connection to reuse
        await deliverer.deliver_due()
        found = await rows(deliverer.engine, webhook_deliveries, webhook_deliveries.c.created_at)
        assert [r.status for r in found if r.endpoint_id == good] == ["delivered"] * 2
        refused = [r for r in found if r.endpoint_id == bad]
        assert [r.status for r in refused] == ["pending"] * 2
        assert all("certificate" in r.last_error.lower() for r in refused), refused

    try:
        run(hooks, scenario)
    finally:
        tls.stop()
    assert [r.path for r in tls.received()] == ["/hook"] * 2
    assert {r.headers["host"] for r in tls.received()} == {f"hooks.test:{tls.server.port}"}


def test_410_disables_the_endpoint_and_its_deliveries_wait_until_it_is_enabled(
        hooks: Settings, receiver: Receiver, smtp: Sink) -> None:
    make = Factory(hooks.database_url)
    ann = make.user("ann@example.com")
    acme = make.workspace(ann, "Acme")
    make.member(acme, "bob@example.com", "admin")  # an admin: not emailed
    ws = WorkspaceRef(acme.id, acme.slug)
    make.close()
    receiver.answer = lambda request: Response("gone", 410)
    secret = new_secret()
    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=secret, workspace_id=acme.id)

    before = counted()

    async def scenario(deliverer: Deliverer) -> None:
        sent = await workspace_events(deliverer.engine, ws, 2)
        await deliverer.deliver_due()
        [hook] = await rows(deliverer.engine, webhook_endpoints)
        assert (hook.enabled, hook.disabled_reason) == (False, "the receiver answered 410 Gone")
        assert hook.disabled_at is not None
        waiting = await rows(deliverer.engine, webhook_deliveries)
        assert {r.status for r in waiting} == {"pending"}
        # Disabled: nothing is claimed, and new events queue nothing for it.
        await workspace_events(deliverer.engine, ws)
        assert await deliverer.deliver_due() == 0
        assert len(await rows(deliverer.engine, webhook_deliveries)) == 2
        # The owner hears of it by email, the workspace's audit trail keeps it.
        [mail_row] = await rows(deliverer.engine, outbox)
        assert mail_row.to_address == "ann@example.com"
        assert mail_row.subject == "A webhook of “Acme” was disabled"
        assert f"http://127.0.0.1:{receiver.server.port} " in mail_row.body_text
        assert "/hook" not in mail_row.body_text  # the path may hold the receiver's secret
        assert "the receiver answered 410 Gone" in mail_row.body_text
        [line] = [r for r in await rows(deliverer.engine, audit_events)
                  if r.action == "webhook_updated"]
        assert (line.actor_user_id, line.target_id) == (None, str(endpoint))
        assert line.detail["enabled"] is False
        # Enabled again (as the owner's page does): the waiting deliveries go out.
        receiver.answer = lambda request: Response("back", 200)
        async with deliverer.engine.begin() as conn:
            await service.set_enabled(conn, owner=service.OPERATOR, endpoint_id=endpoint,
                                      enabled=True)
        assert await deliverer.deliver_due() == 2
        assert {r.status for r in await rows(deliverer.engine, webhook_deliveries)} == {
            "delivered"}
        assert {verified(secret, m)["id"] for m in receiver.received()[-2:]} == {
            e["id"] for e in sent}
        await mail.deliver_due(deliverer.engine, hooks, mail.Mailer(hooks),
                               secret_key(hooks))

    run(hooks, scenario)
    assert counted() - before == Counter({"disabled": 2, "delivered": 2})
    [email] = smtp.wait_for(1)
    assert email["To"] == "ann@example.com"
    body = email.get_body(("plain",))
    assert body is not None
    assert f"http://testserver/w/{acme.slug}/webhooks/{endpoint}" in body.get_content()


def test_an_endpoint_failing_for_five_days_is_disabled_and_its_owners_told(
        hooks: Settings, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    make = Factory(hooks.database_url)
    ann, cat = make.user("ann@example.com"), make.user("cat@example.com")
    acme = make.workspace(ann, "Acme")
    make.member(acme, cat, "owner")
    ws = WorkspaceRef(acme.id, acme.slug)
    make.close()
    receiver.answer = lambda request: Response("down", 500)
    key = secret_key(hooks)
    with time_machine.travel(START, tick=False):
        four_days = add_endpoint(hooks.database_url, receiver.url("/four"), key=key,
                                 secret=new_secret(), workspace_id=acme.id,
                                 failing_since=START - timedelta(days=4, hours=23))
        five_days = add_endpoint(hooks.database_url, receiver.url("/five"), key=key,
                                 secret=new_secret(), workspace_id=acme.id,
                                 failing_since=START - timedelta(days=5))
        instance = add_endpoint(hooks.database_url, receiver.url("/instance"), key=key,
                                secret=new_secret(),
                                failing_since=START - timedelta(days=6))

    async def scenario(deliverer: Deliverer) -> None:
        with time_machine.travel(START, tick=False):
            await workspace_events(deliverer.engine, ws)
            assert await deliverer.deliver_due() == 3
        found = {h.id: h for h in await rows(deliverer.engine, webhook_endpoints)}
        assert found[four_days].enabled
        assert clock.aware(found[four_days].failing_since) == START - timedelta(days=4, hours=23)
        for gone in (five_days, instance):
            assert not found[gone].enabled
            assert found[gone].disabled_reason == "every delivery failed for 5 days"
        assert sorted(r.to_address for r in await rows(deliverer.engine, outbox)) == [
            "ann@example.com", "cat@example.com"]  # the instance's has no owners: a log line

    with caplog.at_level(logging.WARNING, logger="workspaces.webhooks"):
        run(hooks, scenario)
    assert f"webhook endpoint {instance} of the instance" in caplog.text


def test_a_success_clears_the_endpoint_s_failing_since(hooks: Settings,
                                                       receiver: Receiver) -> None:
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret(),
                 failing_since=clock.now() - timedelta(days=2))

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        [hook] = await rows(deliverer.engine, webhook_endpoints)
        assert (hook.enabled, hook.failing_since) == (True, None)

    run(hooks, scenario)


def test_retry_after_is_read_as_seconds_or_a_date_and_capped() -> None:
    longest = 36000.0
    read = delivery.parse_retry_after
    assert read("30", START, longest) == 30.0
    assert read(" 0 ", START, longest) == 0.0
    assert read(format_datetime(START + timedelta(minutes=2), usegmt=True), START,
                longest) == 120.0
    assert read(format_datetime(START - timedelta(minutes=2), usegmt=True), START,
                longest) == 0.0  # in the past: now
    assert read("86400", START, longest) == longest
    for unreadable in (None, "", "soon", "-5", "1.5e3", "Mon, 99 Foo 2031"):
        assert read(unreadable, START, longest) is None


@pytest.mark.parametrize("schedule", ["", "5,,300", "5,-1", "nan", "inf", "five"])
def test_a_retry_schedule_that_is_not_positive_seconds_is_refused(schedule: str) -> None:
    with pytest.raises(ValueError, match="WEBHOOK_RETRY_SCHEDULE"):
        Settings(webhook_retry_schedule=schedule, _env_file=None)  # type: ignore[call-arg]


def test_a_commit_that_queues_a_delivery_wakes_the_loop(hooks: Settings,
                                                        receiver: Receiver) -> None:
    """The loop polls once an hour here: only the wake after each commit can deliver."""
    secret = new_secret()
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=secret,
                 event_types=["user.created"])
    patient = hooks.model_copy(update={"webhook_poll_seconds": 3600.0})
    with TestClient(create_app(patient)) as client:
        api = Api(client, Cli(hooks.database_url, {}))
        for n, email in enumerate(("ann@example.com", "bob@example.com"), start=1):
            api.signup(email)
            message = receiver.wait_for(n)[-1]
            event = verified(secret, message)
            assert (event["type"], event["data"]["user"]["email"]) == ("user.created", email)


def test_a_writer_that_lost_its_lease_neither_overwrites_nor_counts_twice(
        hooks: Settings, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """A's lease runs out mid-send and B delivers the message: A's late answer is kept as an
    attempt, but the delivery stays as B left it (delivered once more is at least once)."""
    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret())

    async def scenario(a: Deliverer) -> None:
        await instance_events(a.engine)
        [message], _ = await a.claim(5)
        async with a.engine.begin() as conn:
            await conn.execute(update(webhook_deliveries).values(
                locked_until=clock.now() - timedelta(seconds=1)))
        b = Deliverer(a.engine, hooks, secret_key(hooks))
        try:
            assert await b.deliver_due() == 1
        finally:
            await b.close()
        await a.deliver(message)
        await a.flush()
        [row] = await rows(a.engine, webhook_deliveries)
        assert (row.status, row.attempts, row.locked_until) == ("delivered", 2, None)
        assert len(await rows(a.engine, webhook_attempts)) == 2

    with caplog.at_level(logging.WARNING, logger="workspaces.webhooks"):
        run(hooks, scenario)
    assert "lease expired" in caplog.text
    assert len({m.webhook_id for m in receiver.received()}) == 1


def test_the_gauges_count_what_waits_for_enabled_endpoints(hooks: Settings) -> None:
    """Backlog, the oldest pending delivery's age, how late the loop is with due ones, and the
    endpoints disabled, as /metrics reads them."""
    from workspaces.db import create_sync_engine
    from workspaces.metrics import database

    make = Factory(hooks.database_url)
    key = secret_key(hooks)
    with time_machine.travel(START, tick=False):
        live = add_endpoint(hooks.database_url, "https://a.example/hook", key=key,
                            secret=new_secret())
        off = add_endpoint(hooks.database_url, "https://b.example/hook", key=key,
                           secret=new_secret(), enabled=False)
        for endpoint, status in ((live, "pending"), (live, "pending"), (live, "delivered"),
                                 (off, "pending")):
            make.delivery(endpoint, make.event(None), status)
    make.close()
    engine = create_sync_engine(parse_url(hooks.database_url))
    with engine.begin() as conn:
        # Queued 200 s before the reading, due 100 s before it; the other not yet due.
        conn.execute(update(webhook_deliveries).values(
            created_at=START - timedelta(seconds=200),
            next_attempt_at=START - timedelta(seconds=100)))
        first = conn.execute(select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.endpoint_id == live,
            webhook_deliveries.c.status == "pending").limit(1)).scalar_one()
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == first)
                     .values(next_attempt_at=START + timedelta(seconds=60)))
    with time_machine.travel(START, tick=False), engine.connect() as conn:
        facts = {fact.name: fact.value for fact in database.webhook_facts(conn)}
    engine.dispose()
    assert facts == {"workspaces_webhook_backlog": 2,
                     "workspaces_webhook_oldest_pending_age_seconds": 200.0,
                     "workspaces_webhook_due_lag_seconds": 100.0,
                     "workspaces_webhook_endpoints_disabled": 1}


@pytest.fixture
def pg_hooks(pg_server: Any, pg_template: str) -> Iterator[Settings]:
    """Settings for a migrated PostgreSQL database of the test's own."""
    with pg_database(pg_server, template=pg_template) as url:
        yield Settings(database_url=url, secret_key="test-secret-key-of-enough-length",
                       webhook_allowed_networks="127.0.0.0/8",
                       workspace_webhook_allowed_networks="127.0.0.0/8", webhook_poll_seconds=0.05,
                       _env_file=None)  # type: ignore[call-arg]


def test_two_delivery_loops_on_postgresql_deliver_each_message_once(
        pg_hooks: Settings) -> None:
    receiver = Receiver.start()
    key = secret_key(pg_hooks)
    secret = new_secret()
    paths = ("/a", "/b", "/c")
    for path in paths:
        add_endpoint(pg_hooks.database_url, receiver.url(path), key=key, secret=secret)

    async def main() -> None:
        engines = [create_app_engine(parse_url(pg_hooks.database_url), pool_size=2)
                   for _ in range(2)]
        wakes = [asyncio.Event() for _ in engines]
        stop = asyncio.Event()
        loops = [asyncio.create_task(delivery.run(engine, pg_hooks, key, wake, stop))
                 for engine, wake in zip(engines, wakes, strict=True)]
        try:
            for _ in range(10):
                await instance_events(engines[0], 10)
                for wake in wakes:
                    wake.set()
            async with engines[0].connect() as conn:
                while (await conn.execute(select(func.count()).select_from(
                        webhook_deliveries).where(webhook_deliveries.c.status != "delivered"))
                       ).scalar_one():
                    await asyncio.sleep(0.05)
                    await conn.rollback()
        finally:
            stop.set()
            await asyncio.gather(*loops)
            for engine in engines:
                await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(main(), timeout=120))
    finally:
        receiver.stop()
    got = receiver.received()
    each = Counter((m.path, m.webhook_id) for m in got)
    assert (len(each), set(each.values())) == (300, {1})  # 100 events x 3 endpoints, once
    assert all(verified(secret, m) for m in got)


def test_the_loop_outlives_its_database_connections(pg_hooks: Settings,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Every connection to the database is terminated under the running loop (as a restart
    does): it logs the failure, connects afresh and delivers what comes next."""
    receiver = Receiver.start()
    key = secret_key(pg_hooks)
    add_endpoint(pg_hooks.database_url, receiver.url(), key=key, secret=new_secret())
    database = parse_url(pg_hooks.database_url).database

    async def main() -> None:
        engine = create_app_engine(parse_url(pg_hooks.database_url), pool_size=2)
        other = create_app_engine(parse_url(pg_hooks.database_url), pool_size=1)
        wake, stop = asyncio.Event(), asyncio.Event()
        loop = asyncio.create_task(delivery.run(engine, pg_hooks, key, wake, stop))
        try:
            await instance_events(other)
            wake.set()
            await asyncio.to_thread(receiver.wait_for, 1)
            async with other.connect() as conn:  # every connection but this one
                await conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database})
                await conn.commit()
            await instance_events(other)
            wake.set()
            await asyncio.to_thread(receiver.wait_for, 2)
        finally:
            stop.set()
            await loop
            await engine.dispose()
            await other.dispose()

    try:
        with caplog.at_level(logging.ERROR, logger="workspaces.webhooks"):
            asyncio.run(asyncio.wait_for(main(), timeout=120))
    finally:
        receiver.stop()
    assert len({m.webhook_id for m in receiver.received()}) == 2
    # It did notice: on its next claim, or on writing back the first message's outcome.
    assert re.search(r"webhook delivery: (claiming|writing outcomes back) failed; retrying",
                     caplog.text), caplog.text


def test_a_test_message_is_sent_from_its_own_payload(hooks: Settings,
                                                     receiver: Receiver) -> None:
    """A delivery with no event (an endpoint's "send test") carries its body itself."""
    secret = new_secret()
    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=secret)
    body = {"id": "msg_" + uuid.uuid4().hex, "type": "webhook.test", "version": 1,
            "occurred_at": "2031-03-04T05:06:07Z", "workspace": None,
            "actor": {"type": "operator", "id": None, "email": None},
            "data": {"endpoint_id": str(endpoint), "message": "A test message: ünïcode"}}

    async def scenario(deliverer: Deliverer) -> None:
        now = clock.now()
        async with deliverer.engine.begin() as conn:
            await conn.execute(webhook_deliveries.insert().values(
                id=uuid.uuid4(), endpoint_id=endpoint, event_position=None,
                message_id=body["id"], payload=body, status="pending", attempts=0,
                next_attempt_at=now, created_at=now))
        assert await deliverer.deliver_due() == 1

    run(hooks, scenario)
    [message] = receiver.received()
    assert message.webhook_id == body["id"]
    assert verified(secret, message) == body


def test_an_endpoint_deleted_during_an_attempt_does_not_poison_the_write_back(
        hooks: Settings, receiver: Receiver) -> None:
    """An owner deletes an endpoint (its deliveries go with it: ON DELETE CASCADE) while one of
    its deliveries is in flight: the other outcomes of the batch are written, that one is
    dropped, and nothing waits to be written again."""
    key = secret_key(hooks)
    doomed = add_endpoint(hooks.database_url, receiver.url("/doomed"), key=key,
                          secret=new_secret())
    other = add_endpoint(hooks.database_url, receiver.url("/other"), key=key,
                         secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine, 1)
        claimed, _ = await deliverer.claim(16)
        assert len(claimed) == 2
        for message in claimed:
            await deliverer.deliver(message)
        async with deliverer.engine.begin() as conn:  # the owner's DELETE, meanwhile
            await conn.execute(webhook_endpoints.delete()
                               .where(webhook_endpoints.c.id == doomed))
        assert await deliverer.flush() == 1
        assert deliverer.done == []
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.endpoint_id, row.status) == (other, "delivered")
        assert [a.endpoint_id for a in await rows(deliverer.engine, webhook_attempts)] == [
            other]

    run(hooks, scenario)


def test_a_batch_the_database_refuses_is_dropped_not_kept_for_ever(
        hooks: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A write-back refused for its data (not for a lost connection) is logged and dropped:
    its leases expire and the messages are sent again; later outcomes are written."""
    from sqlalchemy.exc import IntegrityError

    add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks), secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        write = Deliverer._write

        async def refused(self: Deliverer, conn: Any, results: Any) -> Any:
            raise IntegrityError("INSERT", {}, Exception("refused"))

        monkeypatch.setattr(Deliverer, "_write", refused)
        assert await deliverer.deliver_due() == 1
        assert deliverer.done == []
        monkeypatch.setattr(Deliverer, "_write", write)
        async with deliverer.engine.begin() as conn:  # the lease runs out
            await conn.execute(update(webhook_deliveries).values(
                locked_until=clock.now() - timedelta(seconds=1)))
        assert await deliverer.deliver_due() == 1
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.attempts) == ("delivered", 2)

    with caplog.at_level(logging.ERROR, logger="workspaces.webhooks"):
        run(hooks, scenario)
    assert "the database refused the outcomes of 1 attempts" in caplog.text
    assert len({m.webhook_id for m in receiver.received()}) == 1


def test_one_workspace_with_two_slow_endpoints_does_not_hold_up_every_other_delivery(
        hooks: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workspace admin points two endpoints at a tarpit and makes events in their own
    workspace, then the product's endpoint gets one: it is claimed in the same round
    (deliveries are taken in turns across endpoints). The tarpit answers only once the
    product's request has arrived: had the round left it out, the tarpit would hold every
    slot until the time limit, and the product would get nothing."""
    # A hang guard, not a target: no attempt of a passing run comes near it, on a loaded
    # machine either (a bound of 0.5 s for the product's request failed once).
    monkeypatch.setattr(delivery, "TIMEOUT", 30.0)
    arrived = threading.Event()

    def slow(request: Request) -> Response:
        arrived.wait(60)
        return Response("late", 200)

    def product(request: Request) -> Response:
        arrived.set()
        return Response("thanks", 200)

    tarpit, good = Receiver.start(), Receiver.start()
    tarpit.answer, good.answer = slow, product
    try:
        make = Factory(hooks.database_url)
        ws = make.workspace(make.user("mallory@example.com"), "Evil")
        make.close()
        key = secret_key(hooks)
        for path in ("/a", "/b"):
            add_endpoint(hooks.database_url, tarpit.url(path), key=key, secret=new_secret(),
                         workspace_id=ws.id)
        add_endpoint(hooks.database_url, good.url(), key=key, secret=new_secret(),
                     event_types=["user.deleted"])

        async def scenario(deliverer: Deliverer) -> int:
            with time_machine.travel(START, tick=False) as traveller:
                await workspace_events(deliverer.engine, WorkspaceRef(ws.id, ws.slug), 40)
                traveller.shift(timedelta(seconds=1))
                await instance_events(deliverer.engine, 1)  # the product's event, 1 s later
                traveller.shift(timedelta(seconds=1))
                try:
                    return await deliverer.deliver_due()
                finally:
                    arrived.set()

        assert run(hooks, scenario) == delivery.CONCURRENCY
        assert len(good.received()) == 1, "one workspace's slow endpoints took every slot"
    finally:
        arrived.set()
        tarpit.stop()
        good.stop()


def test_a_failing_endpoint_has_one_message_in_flight_and_a_success_restores_its_share(
        hooks: Settings, receiver: Receiver) -> None:
    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=new_secret(), failing_since=clock.now() - timedelta(hours=1))

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine, 12)
        claimed, _ = await deliverer.claim(16)
        assert len(claimed) == 1
        assert await deliverer.claim(16) == ([], False)  # its one slot is taken
        await deliverer.deliver(claimed[0])
        await deliverer.flush()  # delivered: no longer failing
        [hook] = await rows(deliverer.engine, webhook_endpoints)
        assert hook.failing_since is None
        more, _ = await deliverer.claim(16)
        assert len(more) == delivery.PER_ENDPOINT
        assert {m.endpoint_id for m in more} == {endpoint}
        await asyncio.gather(*(deliverer.deliver(m) for m in more))
        await deliverer.flush()

    run(hooks, scenario)
    assert len(receiver.received()) == 1 + delivery.PER_ENDPOINT


def test_a_disabled_endpoint_s_backlog_is_parked_out_of_the_claim_s_way_until_enabled(
        hooks: Settings, receiver: Receiver) -> None:
    """Disabling parks its pending deliveries beyond any due time (the claim's index range
    holds none of them); enabling makes them due at once, and they are delivered."""
    from workspaces.webhooks import parking, service

    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=new_secret())

    async def due(deliverer: Deliverer) -> int:
        d = webhook_deliveries
        async with deliverer.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).where(
                d.c.status == "pending", d.c.next_attempt_at <= clock.now()))).scalar_one())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine, 5)
        assert await due(deliverer) == 5
        async with deliverer.engine.begin() as conn:
            await service.set_enabled(conn, owner=service.OPERATOR, endpoint_id=endpoint,
                                      enabled=False)
        assert await due(deliverer) == 0
        assert {clock.aware(r.next_attempt_at) for r in
                await rows(deliverer.engine, webhook_deliveries)} == {parking.PARKED}
        assert await deliverer.deliver_due() == 0
        async with deliverer.engine.begin() as conn:
            await service.set_enabled(conn, owner=service.OPERATOR, endpoint_id=endpoint,
                                      enabled=True)
        assert await due(deliverer) == 5
        assert await deliverer.deliver_due() == 5

    run(hooks, scenario)
    assert len(receiver.received()) == 5


def test_an_endpoint_disabled_during_an_attempt_keeps_its_retry_parked(
        hooks: Settings, receiver: Receiver) -> None:
    from workspaces.webhooks import parking, service

    receiver.answer = lambda request: Response("down", 500)
    endpoint = add_endpoint(hooks.database_url, receiver.url(), key=secret_key(hooks),
                            secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        [message], _ = await deliverer.claim(16)
        await deliverer.deliver(message)
        async with deliverer.engine.begin() as conn:  # the owner disables it, meanwhile
            await service.set_enabled(conn, owner=service.OPERATOR, endpoint_id=endpoint,
                                      enabled=False)
        await deliverer.flush()
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.attempts) == ("pending", 1)
        assert clock.aware(row.next_attempt_at) == parking.PARKED

    run(hooks, scenario)


def test_the_host_name_lookup_counts_within_the_attempt_s_time_limit(
        hooks: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name whose nameserver does not answer fails the attempt at TIMEOUT, not later."""
    monkeypatch.setattr(delivery, "TIMEOUT", 0.3)
    release = threading.Event()
    real = socket.getaddrinfo

    def stalling(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "stall.test":
            release.wait(60)
        return real("127.0.0.1" if host == "stall.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalling)
    add_endpoint(hooks.database_url, receiver.url(host="stall.test"), key=secret_key(hooks),
                 secret=new_secret())

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        try:
            assert await deliverer.deliver_due() == 1
        finally:
            release.set()
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert (row.status, row.last_error) == (
            "pending", "no complete answer within 0.3 s (timed out)")

    run(hooks, scenario)
    assert receiver.received() == []


def test_when_the_first_checked_address_refuses_the_connection_the_next_is_tried(
        hooks: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dual-stack name whose receiver listens on one of its addresses only (here 127.0.0.2
    has no listener: the receiver is bound to 127.0.0.1)."""
    real = socket.getaddrinfo

    def both(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "dual.test":
            return [*real("127.0.0.2", port, *args, **kwargs),
                    *real("127.0.0.1", port, *args, **kwargs)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    secret = new_secret()
    add_endpoint(hooks.database_url, receiver.url(host="dual.test"), key=secret_key(hooks),
                 secret=secret)

    async def scenario(deliverer: Deliverer) -> None:
        await instance_events(deliverer.engine)
        assert await deliverer.deliver_due() == 1
        [row] = await rows(deliverer.engine, webhook_deliveries)
        assert row.status == "delivered"

    run(hooks, scenario)
    [message] = receiver.received()
    assert message.headers["host"] == f"dual.test:{receiver.server.port}"
    verified(secret, message)
