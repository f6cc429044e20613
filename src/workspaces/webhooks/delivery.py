"""Delivering events to webhook endpoints per Standard Webhooks 1.0, from any number of instances.

A delivery row is written with its event (`events.tell`). This loop claims due ones with a
lease (`locked_until`, FOR UPDATE SKIP LOCKED on PostgreSQL) in a short transaction, sends
them outside any transaction, several at once, taken in turns across endpoints (so that one
slow receiver cannot hold up the others), and writes the outcomes back in batches, each
only while it still holds the lease. A crash mid-send leaves the lease to expire and the
message is sent again, with the same `webhook-id`: delivery is at least once, and receivers
deduplicate by that id. The loop's database work takes one connection at a time.

Each attempt resolves the endpoint's host again, within the attempt's time limit, and connects
to an address it checked (with the original Host header, and TLS verified for the original
host name), so a name that now resolves somewhere refused (DNS rebinding) gets no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from sqlalchemy import ColumnElement, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from standardwebhooks import Webhook

from workspaces import __version__, clock
from workspaces.errors import AppError
from workspaces.events.changes import webhook_changed
from workspaces.events.tell import SYSTEM, WorkspaceRef, tell
from workspaces.mail.outbox import enqueue_account_email, quoted
from workspaces.metrics.process import WEBHOOK_ATTEMPTS
from workspaces.models import (
    events,
    members,
    users,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    workspaces,
)
from workspaces.security import unseal
from workspaces.settings import Settings
from workspaces.webhooks.addresses import origin, parse, resolve
from workspaces.webhooks.parking import park

log = logging.getLogger("workspaces.webhooks")

CONCURRENCY = 16  # messages in flight per process
PER_ENDPOINT = 8  # of them to one endpoint
CLAIM_AFTER = 4  # attempts finished before the loop claims more (fewer, larger claims)
TIMEOUT = 15.0  # seconds for one attempt, connecting to the last byte read (tests lower it)
LEASE = timedelta(minutes=2)  # longer than any attempt and its write-back
READ_CAP = 4096  # bytes of an answer read; the rest is never downloaded
EXCERPT = 500  # bytes of an answer kept with the attempt
JITTER = 0.1  # each retry delay is moved up to this fraction either way
DISABLE_AFTER = timedelta(days=5)  # an endpoint failing this long is disabled
CLIENTS = 256  # HTTP clients kept (one per receiving host) before idle ones are closed
USER_AGENT = f"Workspaces-Webhooks/{__version__}"
# What https deliveries trust: True is httpx's default, the certifi bundle of certificate
# authorities (not the system's store); tests pass a context with their own.
TLS: ssl.SSLContext | bool = True

Outcome = Literal["delivered", "retry", "failed", "disabled"]


class Undeliverable(Exception):
    """The attempt could not be made (its address refused, its secret unreadable): a failure
    recorded like a receiver's, with this sentence as its error."""


@dataclass(frozen=True)
class Message:
    """A claimed delivery: what to send, where, signed with which secrets."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    operator_networks: bool  # an operator set its URL: WEBHOOK_ALLOWED_NETWORKS admits it
    message_id: str
    attempts: int  # this attempt included
    lease: datetime
    url: str
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_secret_until: datetime | None
    body: bytes | None  # None: its event is gone and it carries no payload of its own


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status code and the answer's first bytes, or an error."""

    status: int | None
    excerpt: str | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None  # seconds, from a 429 or 503 answer

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Result:
    """An attempt made, waiting to be written back."""

    message: Message
    answer: Answer
    at: datetime
    outcome: Outcome
    delay: float | None  # seconds until the next attempt (retry, disabled)


def body_of(event: dict[str, Any]) -> bytes:
    """The event as the feed serves it, serialized once: the signed bytes are the sent ones."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` for each secret,
    space-separated (the current one first, then the previous one during its grace)."""
    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


def retry_delay(schedule: tuple[float, ...], attempts: int) -> float | None:
    """Seconds to wait after failed attempt number `attempts`, jittered; None: give up."""
    if attempts > len(schedule):
        return None
    spread = random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 (spreading retries, no secret)
    return schedule[attempts - 1] * spread


def parse_retry_after(value: str | None, now: datetime, longest: float) -> float | None:
    """A Retry-After header's wait in seconds (a number of seconds or an HTTP date), capped at
    `longest`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = (clock.aware(when) - now).total_seconds()
    return min(max(seconds, 0.0), longest)


def describe(exc: BaseException) -> str:
    """What an owner reads as an attempt's error."""
    if isinstance(exc, Undeliverable):
        return str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no complete answer within {TIMEOUT:g} s (timed out)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | OSError):
        return f"could not connect: {text}"
    return f"{type(exc).__name__}: {text}"


def _usable(secret: str) -> bool:
    try:
        Webhook(secret)
    except Exception:  # binascii.Error, an empty secret: no whsec_ secret
        return False
    return True


def _excerpt(data: bytes) -> str:
    # PostgreSQL's text cannot hold NUL: a binary answer is kept readable, not refused.
    return data[:EXCERPT].decode("utf-8", "replace").replace("\x00", "\ufffd")


def _status_error(response: httpx.Response) -> str | None:
    status = response.status_code
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        where = response.headers.get("location", "")[:300]
        return f"HTTP {status}: redirects are not followed (to {where or 'nowhere'})"
    reason = response.reason_phrase
    return f"HTTP {status}" + (f" {reason}" if reason else "")


def _transient(exc: BaseException) -> bool:
    """A database error worth trying the same writes again for: the connection lost, the
    server going away, a deadlock or a serialization failure (not a refused row)."""
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or ""
        return (exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
                or state.startswith(("08", "40", "57P")))
    return isinstance(exc, OSError | TimeoutError)


class Deliverer:
    """Claims due deliveries and attempts them; one per process. Its database work takes one
    connection at a time: `slot`, which the email loop shares (the lifespan keeps one
    connection for both)."""

    def __init__(self, engine: AsyncEngine, settings: Settings, key: str,
                 slot: asyncio.Lock | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.key = key
        self.schedule = settings.webhook_retry_delays
        self.in_flight: Counter[uuid.UUID] = Counter()  # by endpoint
        self.done: list[Result] = []  # attempted, not yet written back
        self._database = slot or asyncio.Lock()
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._using: Counter[str] = Counter()  # attempts using each client

    async def claim(self, room: int) -> tuple[list[Message], bool]:
        """Up to `room` due deliveries of enabled endpoints, leased to this process, taken
        fairly (`_due`); and whether another process locked some of those chosen meanwhile
        (others may still be due)."""
        now = clock.now()
        lease = now + LEASE
        d, e = webhook_deliveries, webhook_endpoints
        async with self._database, self.engine.begin() as conn:
            chosen = list((await conn.execute(self._due(now, room))).scalars())
            if not chosen:
                return [], False
            free = or_(d.c.locked_until.is_(None), d.c.locked_until < now)
            taken: list[uuid.UUID] = chosen
            if self.engine.dialect.name == "postgresql":
                # Lock only the chosen rows, skipping those another process holds; the
                # conditions are read again on the rows as locked.
                taken = list((await conn.execute(
                    select(d.c.id).where(d.c.id.in_(chosen), d.c.status == "pending",
                                         d.c.next_attempt_at <= now, free)
                    .with_for_update(skip_locked=True))).scalars())
                if not taken:
                    return [], True
            await conn.execute(update(d).where(d.c.id.in_(taken))
                               .values(locked_until=lease, attempts=d.c.attempts + 1))
            rows = await conn.execute(
                select(d.c.id, d.c.endpoint_id, d.c.message_id, d.c.attempts,
                       d.c.payload.label("own_payload"), events.c.payload.label("event"),
                       e.c.operator_networks, e.c.url, e.c.sealed_secret,
                       e.c.sealed_previous_secret, e.c.previous_secret_until)
                .select_from(d.join(e, e.c.id == d.c.endpoint_id)
                             .outerjoin(events, events.c.position == d.c.event_position))
                .where(d.c.id.in_(taken)))
            messages = []
            for row in rows:
                event = row.event if row.event is not None else row.own_payload
                until = row.previous_secret_until
                messages.append(Message(
                    row.id, row.endpoint_id, row.operator_networks, row.message_id,
                    row.attempts, lease, row.url, row.sealed_secret, row.sealed_previous_secret,
                    clock.aware(until) if until is not None else None,
                    body_of(event) if event is not None else None))
        for message in messages:
            self.in_flight[message.endpoint_id] += 1
        return messages, len(taken) < len(chosen)

    def _due(self, now: datetime, room: int) -> Any:
        """The ids of up to `room` due deliveries, taken in turns: each endpoint's oldest
        due one, then each one's second, and so on; an endpoint gets no more than its share
        (PER_ENDPOINT in flight in this process, 1 while it is failing) less what this
        process already has in flight for it."""
        d, e = webhook_deliveries, webhook_endpoints
        turn = func.row_number().over(
            partition_by=d.c.endpoint_id,
            order_by=(d.c.next_attempt_at, d.c.created_at, d.c.id)).label("turn")
        share: ColumnElement[Any] = case((e.c.failing_since.is_(None), PER_ENDPOINT), else_=1)
        if self.in_flight:
            share = share - case(*[(d.c.endpoint_id == endpoint, n)
                                    for endpoint, n in self.in_flight.items()], else_=0)
        ranked = (
            select(d.c.id, d.c.next_attempt_at, turn, share.label("share"))
            .join(e, e.c.id == d.c.endpoint_id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now,
                   or_(d.c.locked_until.is_(None), d.c.locked_until < now),
                   e.c.enabled.is_(True))  # a guard: a disabled endpoint's are parked
            .subquery())
        return (select(ranked.c.id).where(ranked.c.turn <= ranked.c.share)
                .order_by(ranked.c.turn, ranked.c.next_attempt_at).limit(room))

    async def deliver(self, message: Message) -> None:
        """Attempt one message; its outcome waits in `done` for the next write-back (`flush`).
        Never raises: whatever goes wrong is the attempt's error."""
        try:
            answer = await self.attempt(message)
            outcome, delay = self.outcome(message, answer)
            WEBHOOK_ATTEMPTS.labels(outcome).inc()
            self.done.append(Result(message, answer, clock.now(), outcome, delay))
        finally:
            self.in_flight[message.endpoint_id] -= 1
            if self.in_flight[message.endpoint_id] <= 0:
                del self.in_flight[message.endpoint_id]

    def _secrets(self, message: Message) -> list[str]:
        """The secrets to sign with: the current one, and the previous one during its grace
        (skipped if it cannot be read: the current one still signs)."""
        current = unseal(self.key, message.sealed_secret)
        if current is None:
            raise Undeliverable("the signing secret cannot be decrypted (SECRET_KEY changed?); "
                                "rotate the endpoint's secret")
        if not _usable(current):
            raise Undeliverable("the signing secret is not a valid whsec_ secret; rotate the "
                                "endpoint's secret")
        found = [current]
        until = message.previous_secret_until
        if message.sealed_previous_secret and until is not None and until > clock.now():
            previous = unseal(self.key, message.sealed_previous_secret)
            if previous is not None and _usable(previous):
                found.append(previous)
        return found

    async def attempt(self, message: Message) -> Answer:
        """Send `message` once: resolve and check the address, sign, POST, read the answer's
        first bytes. Every way it can go wrong is an Answer with an error."""
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            if message.body is None:
                raise Undeliverable("the event is no longer kept (past the retention period)")
            secrets = self._secrets(message)
            target = parse(message.url)
            url = httpx.URL(message.url)
            host = url.raw_host.decode("ascii")
            name = f"{url.scheme}://{host}"
            self._using[name] += 1
            try:
                async with asyncio.timeout(TIMEOUT):  # the whole attempt, the lookup included
                    try:
                        addresses = await resolve(
                            target, self.settings, operator_networks=message.operator_networks)
                    except AppError as refused:
                        raise Undeliverable(f"not sent: {refused.message}") from None
                    timestamp = int(clock.now().timestamp())
                    headers = {
                        "host": url.netloc.decode("ascii"),
                        "content-type": "application/json",
                        "user-agent": USER_AGENT,
                        "accept-encoding": "identity",
                        "webhook-id": message.message_id,
                        "webhook-timestamp": str(timestamp),
                        "webhook-signature": signature(secrets, message.message_id, timestamp,
                                                       message.body),
                    }
                    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
                    client = await self._client(url.scheme, host)
                    response = await self._connect(client, url, addresses, headers,
                                                   message.body, extensions)
                    try:
                        got = bytearray()
                        async for chunk in response.aiter_raw():
                            got += chunk
                            if len(got) >= READ_CAP:
                                break
                    finally:
                        await response.aclose()
            finally:
                self._using[name] -= 1
                if not self._using[name] and name not in self._clients:
                    del self._using[name]
        except Undeliverable as exc:
            return Answer(None, None, describe(exc)[:500], elapsed())
        except (TimeoutError, httpx.HTTPError, OSError, ssl.SSLError) as exc:
            return Answer(None, None, describe(exc)[:500], elapsed())
        except Exception as exc:  # a bug must not stop the loop: recorded, and logged whole
            log.exception("webhook delivery %s: the attempt failed unexpectedly", message.id)
            return Answer(None, None, describe(exc)[:500], elapsed())
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"), clock.now(),
                                            max(self.schedule))
        return Answer(response.status_code, _excerpt(bytes(got)), _status_error(response),
                      elapsed(), retry_after)

    @staticmethod
    async def _connect(client: httpx.AsyncClient, url: httpx.URL, addresses: list[Any],
                       headers: dict[str, str], body: bytes,
                       extensions: dict[str, Any]) -> httpx.Response:
        """The request sent to the first of the checked addresses that accepts a connection
        (a dual-stack receiver may listen on one family only); its answer, unread."""
        for n, address in enumerate(addresses):
            request = client.build_request("POST", url.copy_with(host=str(address)),
                                           content=body, headers=headers,
                                           extensions=extensions)
            try:
                return await client.send(request, stream=True)
            except httpx.ConnectError:
                if n == len(addresses) - 1:
                    raise
        raise Undeliverable("the host resolves to no address")  # resolve never returns none

    async def _client(self, scheme: str, host: str) -> httpx.AsyncClient:
        """A client per host name: its pooled connections were verified for that name (one
        shared client would reuse a connection to an address for another name on it)."""
        name = f"{scheme}://{host}"
        client = self._clients.get(name)
        if client is None:
            if len(self._clients) >= CLIENTS:  # many hosts: drop the idle clients
                for stale in [n for n in self._clients if not self._using[n]]:
                    self._using.pop(stale, None)
                    await self._clients.pop(stale).aclose()
            client = self._clients[name] = httpx.AsyncClient(
                timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=TLS,
                limits=httpx.Limits(max_connections=PER_ENDPOINT * 2,
                                    max_keepalive_connections=PER_ENDPOINT, keepalive_expiry=30))
        return client

    def outcome(self, message: Message, answer: Answer) -> tuple[Outcome, float | None]:
        """What becomes of the delivery, and the seconds until its next attempt."""
        if answer.ok:
            return "delivered", None
        if answer.status == 410:
            return "disabled", 0.0
        if answer.retry_after is not None and message.attempts <= len(self.schedule):
            return "retry", answer.retry_after
        delay = retry_delay(self.schedule, message.attempts)
        return ("failed", None) if delay is None else ("retry", delay)

    async def flush(self) -> int:
        """Write back every outcome waiting in `done`, in one transaction: each attempt's row,
        each delivery's new state (only where the lease is still ours), each endpoint's
        (failing since when, or disabled). Returns how many were written. If the database
        cannot be reached they wait for the next flush (a lease that expired meanwhile makes
        the delivery's update a no-op: its new owner decides); if it refuses the batch, the
        batch is logged and dropped: its leases expire and those messages are sent again."""
        results, self.done = self.done, []
        if not results:
            return 0
        try:
            async with self._database, self.engine.begin() as conn:
                written = await self._write(conn, results)
        except Exception as exc:
            if not _transient(exc):
                log.exception("webhook delivery: the database refused the outcomes of %d "
                              "attempts; they are dropped and will be attempted again when "
                              "their leases expire", len(results))
                return 0
            self.done[:0] = results
            raise
        except BaseException:
            self.done[:0] = results
            raise
        for result in written:
            if result.outcome != "delivered":
                then = {"failed": "given up", "disabled": "endpoint disabled"}.get(
                    result.outcome, f"retried in {result.delay or 0:.0f} s")
                log.info("webhook delivery %s (attempt %d) to endpoint %s: %s; %s",
                         result.message.id, result.message.attempts,
                         result.message.endpoint_id, result.answer.error, then)
        return len(written)

    async def _write(self, conn: AsyncConnection, results: list[Result]) -> list[Result]:
        """The write-back of `flush`; returns the results written (those whose delivery still
        exists: one deleted during its attempt, with its endpoint or its event, is skipped)."""
        d, e = webhook_deliveries, webhook_endpoints
        postgresql = conn.dialect.name == "postgresql"
        ids = sorted({r.message.id for r in results})
        endpoint_ids = sorted({r.message.endpoint_id for r in results})
        if postgresql:
            # Held until the commit, endpoints first as a DELETE takes them (endpoint, then
            # its deliveries by cascade): the rows read here cannot vanish before the inserts
            # that refer to them, and the two cannot deadlock.
            await conn.execute(select(e.c.id).where(e.c.id.in_(endpoint_ids))
                               .order_by(e.c.id).with_for_update(key_share=True))
        found = select(d.c.id, d.c.locked_until).where(d.c.id.in_(ids)).order_by(d.c.id)
        if postgresql:
            found = found.with_for_update(of=d)
        leases = {delivery_id: lease for delivery_id, lease in await conn.execute(found)}
        kept = [r for r in results if r.message.id in leases]
        for r in results:
            if r.message.id not in leases:
                log.info("webhook delivery %s: deleted during its attempt (with its endpoint "
                         "or its event); its outcome is not recorded", r.message.id)
        if not kept:
            return []
        await conn.execute(insert(webhook_attempts), [{
            "id": uuid.uuid4(), "delivery_id": r.message.id, "endpoint_id": r.message.endpoint_id,
            "attempted_at": r.at, "status_code": r.answer.status,
            "duration_ms": r.answer.duration_ms, "response_excerpt": r.answer.excerpt,
            "error": r.answer.error} for r in kept])
        held = []
        for r in kept:
            lease = leases[r.message.id]
            if lease is not None and clock.aware(lease) == r.message.lease:
                held.append(r)
            else:
                log.warning("webhook delivery %s: its lease expired during the attempt; the "
                            "process that claimed it since owns it (it may arrive twice, with "
                            "the same webhook-id)", r.message.id)
        if held:
            status = {"delivered": "delivered", "failed": "failed"}
            await conn.execute(
                update(d).where(d.c.id == bindparam("b_id"),
                                d.c.locked_until == bindparam("b_lease"))
                .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"),
                        delivered_at=bindparam("b_delivered"), locked_until=None,
                        last_status_code=bindparam("b_code"), last_error=bindparam("b_error")),
                [{"b_id": r.message.id, "b_lease": r.message.lease,
                  "b_status": status.get(r.outcome, "pending"),
                  "b_next": r.at + timedelta(seconds=r.delay or 0.0),
                  "b_delivered": r.at if r.outcome == "delivered" else None,
                  "b_code": r.answer.status, "b_error": r.answer.error} for r in held])
        # Each endpoint as its latest answer in the batch left it; a 410 disables it anyway.
        latest = {r.message.endpoint_id: r.outcome for r in kept}
        gone = {r.message.endpoint_id for r in kept if r.outcome == "disabled"}
        fine = [endpoint for endpoint, outcome in latest.items()
                if outcome == "delivered" and endpoint not in gone]
        failing = [endpoint for endpoint, outcome in latest.items()
                   if outcome in ("retry", "failed") and endpoint not in gone]
        now = kept[-1].at
        if fine:
            await conn.execute(update(e).where(e.c.id.in_(fine), e.c.failing_since.is_not(None))
                               .values(failing_since=None))
        if failing:
            await conn.execute(update(e).where(e.c.id.in_(failing), e.c.failing_since.is_(None))
                               .values(failing_since=now))
            await self._disable(
                conn, failing, f"every delivery failed for {DISABLE_AFTER.days} days",
                and_(e.c.enabled.is_(True), e.c.failing_since <= now - DISABLE_AFTER))
        if gone:
            await self._disable(conn, sorted(gone), "the receiver answered 410 Gone",
                                e.c.enabled.is_(True))
        # An endpoint disabled by its owner during the attempt: a retry written back above
        # must not leave its delivery due.
        off = (await conn.execute(select(e.c.id).where(
            e.c.id.in_(endpoint_ids), e.c.enabled.is_(False)))).scalars().all()
        await park(conn, off)
        return kept

    async def _disable(self, conn: AsyncConnection, endpoint_ids: list[uuid.UUID],
                       reason: str, condition: Any) -> None:
        """Disable those of the endpoints for which `condition` holds; then tell each one's
        workspace owners (by email, and in the audit trail), or for an instance endpoint the
        operator (the log). Their pending deliveries are parked: enabling resumes them."""
        e = webhook_endpoints
        now = clock.now()
        disabled = (await conn.execute(
            update(e).where(e.c.id.in_(endpoint_ids), condition)
            .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
            .returning(e.c.id, e.c.workspace_id, e.c.url))).all()
        await park(conn, [endpoint_id for endpoint_id, _, _ in disabled])
        for endpoint_id, workspace_id, url in disabled:
            if workspace_id is None:
                log.warning("webhook endpoint %s of the instance (%s) was disabled: %s. Its "
                            "deliveries wait; fix the receiver, then enable it again.",
                            endpoint_id, origin(url), reason)
            else:
                await self._tell_owners(conn, endpoint_id, workspace_id, url, reason)

    async def _tell_owners(self, conn: AsyncConnection, endpoint_id: uuid.UUID,
                           workspace_id: uuid.UUID, url: str, reason: str) -> None:
        place = (await conn.execute(select(workspaces.c.slug, workspaces.c.name)
                                    .where(workspaces.c.id == workspace_id))).first()
        if place is None:
            return
        ws = WorkspaceRef(workspace_id, place.slug)
        await tell(conn, webhook_changed(ws, "updated", endpoint_id, origin(url), SYSTEM,
                                         {"enabled": False, "reason": reason}))
        owners = await conn.execute(
            select(users.c.email).join(members, members.c.user_id == users.c.id)
            .where(members.c.workspace_id == workspace_id, members.c.role == "owner"))
        page = f"{self.settings.base_url.rstrip('/')}/w/{place.slug}/webhooks/{endpoint_id}"
        for (email,) in owners:
            await enqueue_account_email(
                conn, to=email, subject=f"A webhook of {quoted(place.name)} was disabled",
                template="webhook_disabled",
                values={"workspace": quoted(place.name), "url": origin(url),
                        "reason": reason, "page": page}, key=self.key)
        log.warning("webhook endpoint %s of workspace %s was disabled: %s", endpoint_id,
                    place.slug, reason)

    async def deliver_due(self) -> int:
        """Claim what is due (up to CONCURRENCY) and deliver it all; how many were claimed."""
        claimed: list[Message] = []
        while len(claimed) < CONCURRENCY:
            more, left = await self.claim(CONCURRENCY - len(claimed))
            claimed += more
            if not more or not left:
                break
        await asyncio.gather(*(self.deliver(message) for message in claimed))
        await self.flush()
        return len(claimed)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


async def run(engine: AsyncEngine, settings: Settings, key: str, wake: asyncio.Event,
              stop: asyncio.Event, *, slot: asyncio.Lock | None = None) -> None:
    """Deliver until `stop`: claim after each commit that queued deliveries (wake), every
    WEBHOOK_POLL_SECONDS, and once CLAIM_AFTER attempts in flight have finished (or all of
    them); write outcomes back before each claim. At `stop`, finish what is in flight.

    Shutdown is a flag, not task cancellation (see mail/delivery.py): the loop survives a
    database that goes away and comes back.
    """
    deliverer = Deliverer(engine, settings, key, slot)
    flying: set[asyncio.Task[None]] = set()
    claim_now, finished = True, 0
    try:
        while not stop.is_set():
            room = CONCURRENCY - len(flying)
            if claim_now or len(deliverer.done) >= CONCURRENCY:
                try:
                    await deliverer.flush()
                except Exception:  # the database may be restarting: keep the loop alive
                    log.exception("webhook delivery: writing outcomes back failed; retrying")
            if claim_now and room:
                wake.clear()  # before claiming: a commit after this wakes the wait below
                try:
                    claimed, left = await deliverer.claim(room)
                except Exception:
                    log.exception("webhook delivery: claiming failed; retrying")
                    claimed, left = [], False
                for message in claimed:
                    task = asyncio.create_task(deliverer.deliver(message))
                    flying.add(task)
                    task.add_done_callback(flying.discard)
                finished = 0
                if left and len(flying) < CONCURRENCY:
                    continue  # due deliveries of other endpoints may fill the room
            waits: set[asyncio.Future[Any]] = set(flying)
            woken = asyncio.ensure_future(wake.wait()) if len(flying) < CONCURRENCY else None
            stopped = asyncio.ensure_future(stop.wait())
            waits |= {stopped} | ({woken} if woken else set())
            try:
                done, _ = await asyncio.wait(waits, timeout=settings.webhook_poll_seconds,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (woken, stopped):
                    if waiter is not None:
                        waiter.cancel()
            finished += len(done - {woken, stopped})
            claim_now = (not done or (woken is not None and woken in done)
                         or finished >= CLAIM_AFTER or not flying)
    finally:
        if flying:  # let attempts in flight finish and be recorded
            await asyncio.wait(flying)
        try:
            await deliverer.flush()
        except Exception:
            log.exception("webhook delivery: the last outcomes could not be written back; "
                          "their leases will expire and they will be attempted again")
        with contextlib.suppress(Exception):
            await deliverer.close()
