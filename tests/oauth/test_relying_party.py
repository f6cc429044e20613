"""Authlib's OAuth 2.0 client, which nobody here wrote, as the relying party: a code redeemed
with PKCE and its ID token checked by Authlib's OpenID Connect claim rules, refreshes (asked for
and automatic) with rotation and reuse detection, client credentials, revocation and
introspection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt

from tests.factories import Factory
from tests.oauth.conftest import REDIRECT_URI, VERIFIER, Provider, Registered, running
from workspaces.settings import Settings

BASE = "http://testserver"
TOKEN_URL = f"{BASE}/oauth/token"


def _relying_party(client: Registered, transport: Any, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client.id, client_secret=client.secret,
        token_endpoint_auth_method="client_secret_basic" if client.secret else "none",
        redirect_uri=REDIRECT_URI, transport=transport, base_url=BASE,
        token_endpoint=TOKEN_URL, **kwargs)


def _id_token(op: Provider, token: str, *, client_id: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims, its signature checked against the JWKS and its claims by
    Authlib's rules for the code flow (iss, aud, azp, nonce, expiry)."""
    decoded = jwt.decode(token, op.jwks(), algorithms=["RS256"])
    claims = CodeIDToken(decoded.claims, decoded.header,
                         options={"iss": {"essential": True, "value": BASE},
                                  "aud": {"essential": True, "value": client_id}},
                         params={"nonce": nonce, "client_id": client_id})
    claims.validate(now=int(time.time()))
    return dict(claims)


def test_code_refresh_reuse_and_revocation(op: Provider, make: Factory,
                                           settings: Settings) -> None:
    ann = make.user("ann@example.com", name="Ann")
    app = op.client()
    code = op.code(app, ann, scopes=("openid", "email", "profile", "offline_access"),
                   nonce="nonce-from-the-session")
    refreshed_to: list[dict[str, Any]] = []

    async def kept(token: dict[str, Any], refresh_token: str | None = None,
                   access_token: str | None = None) -> None:
        refreshed_to.append(dict(token))

    async def scenario() -> None:
        async with running(settings) as transport, _relying_party(
                app, transport, update_token=kept) as rp:
            token = await rp.fetch_token(TOKEN_URL, grant_type="authorization_code",
                                         code=code, code_verifier=VERIFIER)
            claims = _id_token(op, token["id_token"], client_id=app.id,
                               nonce="nonce-from-the-session")
            assert claims["sub"] == str(ann.id) and claims["email"] == "ann@example.com"
            first_refresh = token["refresh_token"]

            me = await rp.get("/oauth/userinfo")
            assert me.json()["name"] == "Ann"

            # Asked for: a new refresh token each time.
            renewed = await rp.refresh_token(TOKEN_URL, refresh_token=first_refresh)
            assert renewed["refresh_token"] != first_refresh
            # Automatic: the access token is about to expire, so the client refreshes
            # before the request, under its lock.
            rp.token["expires_at"] = int(time.time()) + 5
            assert (await rp.get("/oauth/userinfo")).status_code == 200
            assert refreshed_to and refreshed_to[-1]["refresh_token"] not in (
                first_refresh, renewed["refresh_token"])
            live = refreshed_to[-1]

            # The first refresh token again: reuse, and the whole family ends.
            with pytest.raises(OAuthError) as reused:
                await rp.refresh_token(TOKEN_URL, refresh_token=first_refresh)
            assert reused.value.error == "invalid_grant"
            with pytest.raises(OAuthError):
                await rp.refresh_token(TOKEN_URL, refresh_token=live["refresh_token"])

            # A new sign-in, then revocation through the client.
            again = await rp.fetch_token(TOKEN_URL, grant_type="authorization_code",
                                         code=fresh, code_verifier=VERIFIER)
            about = await rp.introspect_token(f"{BASE}/oauth/introspect",
                                              token=again["refresh_token"])
            assert about.json()["active"] is True
            revoked = await rp.revoke_token(f"{BASE}/oauth/revoke",
                                            token=again["refresh_token"],
                                            token_type_hint="refresh_token")
            assert revoked.status_code == 200
            about = await rp.introspect_token(f"{BASE}/oauth/introspect",
                                              token=again["access_token"])
            assert about.json() == {"active": False}

    fresh = op.code(app, ann)
    asyncio.run(scenario())


def test_a_public_client_with_pkce(op: Provider, make: Factory, settings: Settings) -> None:
    ann = make.user()
    app = op.client(public=True)
    code = op.code(app, ann)

    async def scenario() -> None:
        async with running(settings) as transport, _relying_party(app, transport) as rp:
            token = await rp.fetch_token(TOKEN_URL, grant_type="authorization_code",
                                         code=code, code_verifier=VERIFIER)
            renewed = await rp.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
            assert renewed["access_token"] != token["access_token"]
            with pytest.raises(OAuthError) as refused:
                await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert refused.value.error == "unauthorized_client"

    asyncio.run(scenario())


def test_client_credentials(op: Provider, settings: Settings) -> None:
    backend = op.client(scopes=("members:read", "invites:write"))

    async def scenario() -> None:
        async with running(settings) as transport, _relying_party(
                backend, transport, scope="members:read", grant_type="client_credentials") as rp:
            token = await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert token["scope"] == "members:read" and "refresh_token" not in token
            assert op.claims(token["access_token"])["sub"] == backend.id
            # Expired: the client fetches a new one by itself before its next request.
            first = token["access_token"]
            rp.token["expires_at"] = int(time.time()) - 1
            await rp.get("/healthz")
            assert rp.token["access_token"] != first
            about = await rp.introspect_token(f"{BASE}/oauth/introspect",
                                              token=rp.token["access_token"])
            assert about.json()["active"] is True and about.json()["sub"] == backend.id
            with pytest.raises(OAuthError) as widened:
                await rp.fetch_token(TOKEN_URL, grant_type="client_credentials",
                                     scope="events:read")
            assert widened.value.error == "invalid_scope"

        async with running(settings) as transport, _relying_party(
                Registered(backend.id, "wscs_wrong"), transport) as rp:
            with pytest.raises(OAuthError) as refused:
                await rp.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert refused.value.error == "invalid_client"

    asyncio.run(scenario())
