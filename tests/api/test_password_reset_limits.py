"""Password reset limits: few emails per mailbox, few requests per client, and the same
answer past the mailbox's limit."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.conftest import NOT_CONFIRMATION
from workspaces.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"password_reset_limit_per_client_per_hour": 6,
                                       "password_reset_limit_per_account_per_hour": 2})


def test_an_account_gets_few_emails_and_a_client_few_requests(api: Api) -> None:
    api.signup("ann@example.com")
    for address in ("ann+x@example.com", "a.nn@example.com", "ann+y@example.com"):
        # Look-alikes of the account's address have no account: they use up nothing of it
        # (found by attacking: they silenced the real user's reset for as long as they went on).
        assert api.client.post("/api/auth/password-reset",
                               json={"email": address}).status_code == 202
    for _ in range(3):  # the same answer past the account's limit: nobody learns it exists
        assert api.client.post("/api/auth/password-reset",
                               json={"email": "ann@example.com"}).status_code == 202
    assert api.db.sql("SELECT count(*) FROM account_tokens "
                      "WHERE purpose = 'password_reset'") == [(2,)]
    assert api.db.sql(f"SELECT count(*) FROM email_outbox WHERE {NOT_CONFIRMATION}") == [(2,)]
    refused = api.client.post("/api/auth/password-reset", json={"email": "bob@example.com"})
    api.error(refused, 429, "rate_limited")  # the client's seventh request in the hour
    assert int(refused.headers["Retry-After"]) > 0
