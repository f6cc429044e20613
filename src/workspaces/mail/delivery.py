"""Delivering the outbox over SMTP, with retries and backoff, from any number of instances.

Each batch is claimed with a lease (`locked_until`) in a short transaction (FOR UPDATE SKIP
LOCKED on PostgreSQL), sent outside any transaction, then marked sent, retried later, or failed
with the server's reply. A crash mid-send leaves the lease to expire and the email is sent again:
delivery is at least once, never lost.

With EMAIL_BACKEND=console (development) nothing is delivered: each email is written to the log,
link included (the log's redaction leaves it whole), marked as not delivered, and its row is
marked `logged`, never `sent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from workspaces import clock
from workspaces.logs import UNREDACTED
from workspaces.mail.outbox import LINK_MARKER, link_url
from workspaces.metrics.process import EMAIL_ATTEMPTS, EMAIL_FAILURES
from workspaces.models import outbox
from workspaces.security import unseal
from workspaces.settings import Settings

log = logging.getLogger("workspaces.mail")
BATCH = 20
SEND_TIMEOUT = 30  # seconds for one SMTP conversation
LEASE = timedelta(minutes=5)  # a batch stops sending before its lease runs out


@dataclass(frozen=True)
class Outgoing:
    id: uuid.UUID
    to: str
    subject: str
    text: str
    html: str
    sealed_secret: str | None
    attempts: int


class PermanentFailure(Exception):
    """The server refused the message for good (5xx): retrying cannot help."""


class TransientFailure(Exception):
    """The server refused the message for now (4xx): try again later."""


class Mailer:
    """Sends over SMTP_URL, or with the console backend writes the message to the log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mode = settings.email_mode
        # The outbox status of an email once `send` returns.
        self.done_status = "sent" if self.mode == "smtp" else "logged"

    async def send(self, message: EmailMessage) -> None:
        if self.mode == "console":
            log.warning(console_text(message), extra=UNREDACTED)  # the link is the point
            return
        url = urlsplit(self.settings.smtp_url or "")
        options: dict[str, Any] = {
            "hostname": url.hostname or "localhost",
            "port": url.port or (465 if url.scheme == "smtps" else 25),
            "use_tls": url.scheme == "smtps",
            "timeout": SEND_TIMEOUT,
        }
        if url.username:
            options |= {"username": unquote(url.username), "password": unquote(url.password or "")}
        try:
            await aiosmtplib.send(message, **options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            replies = [(r.code, r.message) for r in exc.recipients]
            raise _failure(replies) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _failure([(exc.code, exc.message)]) from exc


def console_text(message: EmailMessage) -> str:
    """The console backend's log entry: marked as not delivered, the link readable."""
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return ("DEVELOPMENT EMAIL (EMAIL_BACKEND=console): not delivered to anyone\n"
            f"To: {message['To']}\nSubject: {message['Subject']}\n\n{text.rstrip()}\n"
            "(end of development email; set SMTP_URL to deliver emails)")


def _failure(replies: list[tuple[int, str]]) -> Exception:
    """The server's own words ("550 5.1.1 No such mailbox"): permanent for a 5xx reply."""
    text = "; ".join(f"{code} {message}".strip() for code, message in replies)
    if any(500 <= code < 600 for code, _ in replies):
        return PermanentFailure(text)
    return TransientFailure(text)


def describe(exc: BaseException) -> str:
    """What an admin sees as the email's last error."""
    if isinstance(exc, PermanentFailure | TransientFailure):
        return str(exc)
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPConnectTimeoutError
                  | OSError):
        return f"could not reach the mail server: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _message(settings: Settings, item: Outgoing, link: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = item.to
    message["Subject"] = item.subject
    message["Message-ID"] = make_msgid(domain="workspaces")
    message.set_content(item.text.replace(LINK_MARKER, link))
    message.add_alternative(item.html.replace(LINK_MARKER, link), subtype="html")
    return message


@dataclass(frozen=True)
class Batch:
    lease: datetime  # locked_until of every claimed email: whoever wrote it owns them
    items: list[Outgoing]


async def claim(engine: AsyncEngine, slot: asyncio.Lock | None = None) -> Batch | None:
    now = clock.now()
    due = (
        select(outbox.c.id)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now,
               or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now))
        .order_by(outbox.c.next_attempt_at)
        .limit(BATCH)
    )
    if engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    lease = now + LEASE
    async with _turn(slot), engine.begin() as conn:
        ids = list((await conn.execute(due)).scalars())
        if not ids:
            return None
        rows = await conn.execute(
            update(outbox).where(outbox.c.id.in_(ids))
            .values(locked_until=lease, attempts=outbox.c.attempts + 1)
            .returning(outbox.c.id, outbox.c.to_address, outbox.c.subject, outbox.c.body_text,
                       outbox.c.body_html, outbox.c.sealed_secret, outbox.c.attempts)
        )
        return Batch(lease, [Outgoing(*row) for row in rows])


def retry_delay(settings: Settings, attempts: int) -> float:
    """Doubling from EMAIL_RETRY_SECONDS, capped at EMAIL_RETRY_MAX_SECONDS."""
    return float(min(settings.email_retry_seconds * 2 ** min(attempts - 1, 40),
                     settings.email_retry_max_seconds))


async def deliver_due(engine: AsyncEngine, settings: Settings, mailer: Mailer,
                      key: str, slot: asyncio.Lock | None = None) -> int:
    """Send one batch of what is due; returns how many emails were claimed (0: none due).

    Each write-back is conditional on still holding the lease, and a batch stops early rather
    than send past it: another instance may claim an email only after its lease has expired,
    and it then owns it alone.
    """
    batch = await claim(engine, slot)
    if batch is None:
        return 0
    for index, item in enumerate(batch.items):
        if clock.now() + timedelta(seconds=2 * SEND_TIMEOUT) > batch.lease:
            await _release(engine, batch.items[index:], batch.lease, slot)
            break
        secret = unseal(key, item.sealed_secret) if item.sealed_secret else None
        linked = LINK_MARKER in item.text or LINK_MARKER in item.html
        values: dict[str, Any]
        EMAIL_ATTEMPTS.inc()
        try:
            if linked and secret is None:
                raise PermanentFailure("the link cannot be decrypted (SECRET_KEY changed?); "
                                       "send it again (resend the invite, ask again)")
            link = link_url(settings.base_url, secret) if secret else ""
            await mailer.send(_message(settings, item, link))
            values = {"status": mailer.done_status, "sent_at": clock.now(),
                      "sealed_secret": None, "last_error": None, "locked_until": None}
        except (PermanentFailure, TransientFailure, aiosmtplib.SMTPException, OSError) as exc:
            final = (isinstance(exc, PermanentFailure)
                     or item.attempts >= settings.email_max_attempts)
            delay = retry_delay(settings, item.attempts)
            values = {"last_error": describe(exc)[:2000], "locked_until": None,
                      "next_attempt_at": clock.now() + timedelta(seconds=delay)}
            if final:
                values |= {"status": "failed", "sealed_secret": None}
            EMAIL_FAILURES.labels("failed" if final else "retry").inc()
            log.warning("email %s to %s %s: %s", item.id, item.to,
                        "failed for good" if final else f"will be retried in {delay:g}s",
                        values["last_error"])
        async with _turn(slot), engine.begin() as conn:
            written = await conn.execute(
                update(outbox).where(outbox.c.id == item.id, outbox.c.locked_until == batch.lease)
                .values(**values))
        if written.rowcount != 1:  # the lease is gone: the rest of the batch is not ours
            log.warning("email %s: its lease expired while it was being sent; the instance "
                        "that claimed it since owns it (it may be sent twice) and the rest of "
                        "this batch", item.id)
            break
    return len(batch.items)


async def _release(engine: AsyncEngine, items: list[Outgoing], lease: datetime,
                   slot: asyncio.Lock | None) -> None:
    """Give back emails not attempted before the lease ran short (the attempt not counted)."""
    async with _turn(slot), engine.begin() as conn:
        await conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([item.id for item in items]), outbox.c.locked_until == lease)
            .values(locked_until=None, attempts=outbox.c.attempts - 1))


def _turn(slot: asyncio.Lock | None) -> contextlib.AbstractAsyncContextManager[object]:
    return slot if slot is not None else contextlib.nullcontext()


async def run(engine: AsyncEngine, settings: Settings, key: str, wake: asyncio.Event,
              stop: asyncio.Event, *, slot: asyncio.Lock | None = None) -> None:
    """Deliver until `stop`: after each commit that queued mail (wake) and every poll interval;
    with `slot`, one transaction at a time among the loops sharing it (one connection).

    Shutdown is a flag, not task cancellation: a driver may turn a cancellation arriving
    mid-query into an ordinary error, which this loop must survive when the database restarts.
    """
    mailer = Mailer(settings)
    while not stop.is_set():
        try:
            while not stop.is_set() and await deliver_due(engine, settings, mailer, key, slot):
                pass
        except Exception:  # the database may be restarting: keep the loop alive
            log.exception("email delivery pass failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.email_poll_seconds)
        wake.clear()
