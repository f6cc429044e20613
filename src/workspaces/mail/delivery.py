"""Delivering the outbox over SMTP, with retries and backoff, from any number of instances.

Each batch is claimed with a lease (`locked_until`) in a short transaction (FOR UPDATE SKIP
LOCKED on PostgreSQL), sent outside any transaction, then marked sent, retried later, or failed
with the server's reply. A crash mid-send leaves the lease to expire and the email is sent again:
delivery is at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from workspaces import clock
from workspaces.mail.outbox import LINK_MARKER, accept_url
from workspaces.models import outbox
from workspaces.security import unseal
from workspaces.settings import Settings

log = logging.getLogger("workspaces.mail")
LEASE = timedelta(minutes=2)
BATCH = 20


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


class Mailer:
    """SMTP when SMTP_URL is set; otherwise the message is printed to the server log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        if not self.settings.smtp_url:
            log.warning("SMTP_URL is not set; this email is printed instead of sent:\n%s",
                        message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
            return
        url = urlsplit(self.settings.smtp_url)
        options: dict[str, Any] = {
            "hostname": url.hostname or "localhost",
            "port": url.port or (465 if url.scheme == "smtps" else 25),
            "use_tls": url.scheme == "smtps",
            "timeout": 30,
        }
        if url.username:
            options |= {"username": unquote(url.username), "password": unquote(url.password or "")}
        try:
            await aiosmtplib.send(message, **options)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
            code = getattr(exc, "code", None)
            if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
                code = min((r.code for r in exc.recipients), default=None)
            if code is not None and 500 <= code < 600:
                raise PermanentFailure(str(exc)) from exc
            raise


def _message(settings: Settings, item: Outgoing, link: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = item.to
    message["Subject"] = item.subject
    message["Message-ID"] = make_msgid(domain="workspaces")
    message.set_content(item.text.replace(LINK_MARKER, link))
    message.add_alternative(item.html.replace(LINK_MARKER, link), subtype="html")
    return message


async def claim(engine: AsyncEngine) -> list[Outgoing]:

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
    async with engine.begin() as conn:
        ids = list((await conn.execute(due)).scalars())
        if not ids:
            return []
        rows = await conn.execute(
            update(outbox).where(outbox.c.id.in_(ids))
            .values(locked_until=now + LEASE, attempts=outbox.c.attempts + 1)
            .returning(outbox.c.id, outbox.c.to_address, outbox.c.subject, outbox.c.body_text,
                       outbox.c.body_html, outbox.c.sealed_secret, outbox.c.attempts)
        )
        return [Outgoing(*row) for row in rows]


async def deliver_due(engine: AsyncEngine, settings: Settings, mailer: Mailer,
                      key: str) -> int:
    """Send what is due; returns how many were sent."""

    sent = 0
    for item in await claim(engine):
        token = unseal(key, item.sealed_secret) if item.sealed_secret else None
        values: dict[str, Any]
        try:
            if token is None:
                raise PermanentFailure("the invite link cannot be decrypted (SECRET_KEY "
                                       "changed?); resend the invite")
            await mailer.send(_message(settings, item, accept_url(settings.base_url, token)))
            values = {"status": "sent", "sent_at": clock.now(), "sealed_secret": None,
                      "last_error": None, "locked_until": None}
            sent += 1
        except (PermanentFailure, aiosmtplib.SMTPException, OSError) as exc:
            final = (isinstance(exc, PermanentFailure)
                     or item.attempts >= settings.email_max_attempts)
            delay = settings.email_retry_seconds * 2 ** (item.attempts - 1)
            values = {"last_error": f"{type(exc).__name__}: {exc}"[:2000], "locked_until": None,
                      "next_attempt_at": clock.now() + timedelta(seconds=delay)}
            if final:
                values |= {"status": "failed", "sealed_secret": None}
            log.warning("email %s to %s %s: %s", item.id, item.to,
                        "failed for good" if final else f"will be retried in {delay:g}s",
                        values["last_error"])
        async with engine.begin() as conn:
            await conn.execute(update(outbox).where(outbox.c.id == item.id).values(**values))
    return sent


async def run(engine: AsyncEngine, settings: Settings, key: str, wake: asyncio.Event,
              stop: asyncio.Event) -> None:
    """Deliver until `stop`: after each commit that queued mail (wake) and every poll interval.

    Shutdown is a flag, not task cancellation: a driver may turn a cancellation arriving
    mid-query into an ordinary error, which this loop must survive when the database restarts.
    """
    mailer = Mailer(settings)
    while not stop.is_set():
        try:
            while not stop.is_set() and await deliver_due(engine, settings, mailer, key):
                pass
        except Exception:  # the database may be restarting: keep the loop alive
            log.exception("email delivery pass failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.email_poll_seconds)
        wake.clear()
