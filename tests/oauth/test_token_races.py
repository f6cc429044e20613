"""Requests racing on one code or one refresh token, served together by an app instance in
this event loop (on PostgreSQL on connections of their own): exactly one wins, and the other
is taken for the replay it is, which ends what the winner got."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import Factory
from tests.oauth.conftest import REDIRECT_URI, VERIFIER, Provider, Registered, served
from workspaces.settings import Settings


async def _twice(settings: Settings, client: Registered,
                 params: dict[str, str]) -> list[httpx.Response]:
    async with served(settings) as http:
        return list(await asyncio.gather(*(
            http.post("/oauth/token", data=params, headers=client.auth) for _ in range(2))))


def _one_wins(op: Provider, answers: list[httpx.Response]) -> httpx.Response:
    [won] = [answer for answer in answers if answer.status_code == 200]
    [lost] = [answer for answer in answers if answer.status_code != 200]
    op.refused(lost, 400, "invalid_grant")
    return won


def test_two_redemptions_of_one_code(op: Provider, make: Factory, settings: Settings) -> None:
    ann = make.user()
    app = op.client()
    code = op.code(app, ann)
    answers = asyncio.run(_twice(settings, app, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER}))
    won = _one_wins(op, answers).json()
    # The loser's attempt is a replay: the winner's grant ends (RFC 6749 4.1.2).
    assert op.userinfo(won["access_token"]).status_code == 401
    op.refused(op.refresh(app, won["refresh_token"]), 400, "invalid_grant")
    assert op.api.db.sql("SELECT count(*), count(revoked_at) FROM oauth_grants") == [(1, 1)]
    assert op.api.db.sql("SELECT count(*) FROM oauth_refresh_tokens") == [(0,)]


def test_two_refreshes_with_one_token(op: Provider, make: Factory,
                                      settings: Settings) -> None:
    ann = make.user()
    app = op.client()
    tokens = op.redeem(app, op.code(app, ann))
    answers = asyncio.run(_twice(settings, app, {
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}))
    won = _one_wins(op, answers).json()
    # No grace period: the second use is reuse, and the family ends, the new token with it.
    op.refused(op.refresh(app, won["refresh_token"]), 400, "invalid_grant")
    assert op.userinfo(won["access_token"]).status_code == 401
    assert op.api.db.sql("SELECT count(*), count(revoked_at) FROM oauth_grants") == [(1, 1)]
