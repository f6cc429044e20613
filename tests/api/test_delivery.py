"""The delivery loop's own rules: capped backoff, and a lease that only its holder may use."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import pytest

from tests.conftest import Cli, Sink
from workspaces.db import create_app_engine, parse_url
from workspaces.mail import delivery
from workspaces.security import secret_key
from workspaces.settings import Settings


def test_the_retry_delay_doubles_then_stays_at_the_cap() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # the defaults
    attempts = range(1, settings.email_max_attempts + 1)
    delays = [delivery.retry_delay(settings, attempt) for attempt in attempts]
    assert delays[:6] == [30, 60, 120, 240, 480, 900]
    assert set(delays[5:]) == {900}
    assert sum(delays[:-1]) / 3600 > 4.5  # from the first attempt to the last: 4.75 hours
    assert delivery.retry_delay(settings, 10_000) == 900  # no overflow for a huge count


def _queue_invites(settings: Settings, *emails: str) -> None:
    cli = Cli(settings.database_url, {"SECRET_KEY": str(settings.secret_key)})
    url = ("--database-url", settings.database_url)
    assert cli("users", "create", "--email", "ann@example.com", "--name", "Ann",
               "--password", "correct horse battery", *url).exit_code == 0
    assert cli("workspaces", "create", "--name", "Acme", "--owner", "ann@example.com",
               *url).exit_code == 0
    for email in emails:
        assert cli("invites", "create", "-w", "acme", "--email", email, *url).exit_code == 0


def test_a_sender_that_lost_its_lease_neither_overwrites_nor_goes_on(
        settings: Settings, smtp: Sink, caplog: pytest.LogCaptureFixture) -> None:
    """Worker A's lease expires mid-send and worker B claims and sends the batch: A's late
    write-back must not overwrite B's, and A must stop instead of sending the rest again."""
    _queue_invites(settings, "bob@example.com", "cat@example.com")
    cli = Cli(settings.database_url, {})
    key = secret_key(settings)

    async def scenario() -> tuple[int, int]:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=2)

        class Overtaken(delivery.Mailer):
            """Before A's first send goes out, its lease expires and B delivers everything."""

            stolen = False

            async def send(self, message: EmailMessage) -> None:
                if not self.stolen:
                    self.stolen = True
                    await asyncio.to_thread(cli.sql, "UPDATE email_outbox SET locked_until = "
                                            "'2000-01-01 00:00:00'")
                    taken = await delivery.deliver_due(engine, settings,
                                                       delivery.Mailer(settings), key)
                    assert taken == 2
                await super().send(message)

        try:
            claimed = await delivery.deliver_due(engine, settings, Overtaken(settings), key)
            again = await delivery.deliver_due(engine, settings, delivery.Mailer(settings), key)
            return claimed, again
        finally:
            await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="workspaces.mail"):
        claimed, again = asyncio.run(scenario())
    assert (claimed, again) == (2, 0)
    rows = cli.sql("SELECT to_address, status, attempts, locked_until, sealed_secret "
                   "FROM email_outbox ORDER BY to_address")
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("bob@example.com", "sent", None, None), ("cat@example.com", "sent", None, None)]
    messages = smtp.wait_for(3)
    # B sent both; A sent its first (at least once, as documented) and then stopped.
    assert sorted(str(m["To"]) for m in messages) == [
        "bob@example.com", "bob@example.com", "cat@example.com"]
    assert "lease expired" in caplog.text
