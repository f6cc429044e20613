"""The token endpoint's limits, counted in the database: per authenticated client and per client
address a minute (429 `slow_down` with Retry-After), and failed authentications of a client
from one address an hour (then refused from there even with the right secret until the hour
ends). Strangers naming a client: tests/oauth/test_attacks.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import time_machine

from tests.oauth.conftest import Provider, Registered
from workspaces.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"token_limit_per_client_per_minute": 5,
                                       "token_limit_per_address_per_minute": 8,
                                       "client_auth_failures_per_client_per_hour": 3})


def _service(op: Provider, client: Registered) -> httpx.Response:
    return op.token(client, grant_type="client_credentials")


def _counts(op: Provider, prefix: str) -> list[int]:
    return sorted(int(str(count)) for (count,) in op.api.db.sql(
        f"SELECT count FROM rate_limit_counters WHERE key LIKE '{prefix}%'"))


def test_requests_per_client(op: Provider) -> None:
    backend, other = op.client(), op.client()
    for _ in range(5):
        assert _service(op, backend).status_code == 200
    refused = _service(op, backend)
    assert "token requests for this client" in op.refused(refused, 429, "slow_down")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert _counts(op, "oauth:token:client:") == [6]  # refusals count too
    assert _service(op, other).status_code == 200  # a client of its own
    # A refused grant counts like a granted one: codes cannot be guessed for free.
    op.refused(op.token(other, grant_type="authorization_code", code="guess",
                        redirect_uri="https://app.example.com/callback"), 400, "invalid_grant")
    assert _counts(op, "oauth:token:client:") == [2, 6]
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=1), tick=False):
        assert _service(op, backend).status_code == 200


def test_requests_per_address(op: Provider) -> None:
    clients = [op.client() for _ in range(3)]
    for index in range(8):
        assert _service(op, clients[index % 3]).status_code == 200
    refused = _service(op, clients[2])
    assert "token requests from your network" in op.refused(refused, 429, "slow_down")
    assert "retry-after" in refused.headers
    assert _counts(op, "oauth:token:addr:") == [9]
    # Unknown clients and bodies with no client are counted against the address too.
    op.refused(op.http.post("/oauth/token", data={"grant_type": "client_credentials"}), 429,
               "slow_down")


def test_failed_authentications_lock_the_client_from_that_address_for_the_hour(
        op: Provider) -> None:
    backend = op.client()
    guess = Registered(backend.id, "wscs_guess")
    for _ in range(3):
        op.refused(_service(op, guess), 401, "invalid_client")
    assert _counts(op, "oauth:client-auth-fail:") == [3]
    locked = _service(op, backend)  # the right secret, past the limit
    assert "failed client authentications" in op.refused(locked, 429, "slow_down")
    assert int(locked.headers["retry-after"]) > 60
    op.refused(op.http.post("/oauth/introspect", data={"token": "x"}, headers=backend.auth),
               429, "slow_down")  # every endpoint that authenticates the client
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=False):
        assert _service(op, backend).status_code == 200


def test_a_right_secret_is_not_a_failure(op: Provider) -> None:
    backend = op.client()
    for _ in range(4):
        assert _service(op, backend).status_code == 200
    assert _counts(op, "oauth:client-auth-fail:") == [0]
