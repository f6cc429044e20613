"""OAuth fixtures: the API's (settings for a migrated database, an `Api` client); clients
registered and codes issued straight into the database (the rows the client registry and the
authorization endpoint write), and the token endpoint's calls (`Provider`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import insert

from tests.api.conftest import Api, api, held_housekeeping, held_webhook_loop, settings
from tests.factories import Factory, User, Workspace
from workspaces import clock
from workspaces.app import create_app
from workspaces.models import auth_tokens, oauth_clients, oauth_codes
from workspaces.oauth.scopes import SERVICE_SCOPES, USER_SCOPES
from workspaces.security import hash_token, new_token
from workspaces.settings import Settings

REDIRECT_URI = "https://app.example.com/callback"
VERIFIER = "a-verifier-of-enough-length-0123456789-abcdefghij"


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def moment(value: object) -> datetime:
    """A timestamp as a query returned it (SQLite: text without a zone), in UTC."""
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@dataclass(frozen=True)
class Registered:
    id: str
    secret: str | None  # None: a public client

    @property
    def auth(self) -> dict[str, str]:
        """client_secret_basic's header (none for a public client)."""
        return basic(self.id, self.secret) if self.secret else {}

    def form(self) -> dict[str, str]:
        """What a public client sends instead (its client_id alone)."""
        return {} if self.secret else {"client_id": self.id}


@dataclass
class Provider:
    """The token endpoints of the app under test, and rows for them."""

    api: Api
    make: Factory

    @property
    def http(self) -> Any:
        return self.api.client

    def client(self, *, public: bool = False, name: str = "Example App",
               scopes: tuple[str, ...] = (*USER_SCOPES, *SERVICE_SCOPES)) -> Registered:
        client_id, secret, now = f"wsc_{uuid.uuid4().hex[:16]}", new_token("wscs_"), clock.now()
        with self.make.engine.begin() as conn:
            conn.execute(insert(oauth_clients).values(
                id=client_id, name=name, secret_hash=None if public else hash_token(secret),
                trusted=False, redirect_uris=[REDIRECT_URI], post_logout_redirect_uris=[],
                scopes=list(scopes), workspace_restricted=False, created_at=now,
                updated_at=now, secret_rotated_at=None))
        return Registered(client_id, None if public else secret)

    def sql_id(self, value: uuid.UUID | str) -> str:
        """An id as a literal of this database's SQL (SQLite keeps UUIDs as bare hex)."""
        found = uuid.UUID(str(value))
        return f"'{found}'" if self.api.db.is_pg else f"'{found.hex}'"

    def session(self, user: User) -> uuid.UUID:
        """A browser session of `user` (what a code's `sid` names)."""
        session_id, now = uuid.uuid4(), clock.now()
        with self.make.engine.begin() as conn:
            conn.execute(insert(auth_tokens).values(
                id=session_id, user_id=user.id, token_hash=hash_token(new_token()),
                kind="browser", created_at=now, expires_at=now + timedelta(days=1)))
        return session_id

    def code(self, client: Registered, user: User, *,
             scopes: tuple[str, ...] = ("openid", "email", "profile", "offline_access"),
             workspace: Workspace | None = None, verifier: str | None = VERIFIER,
             nonce: str | None = "n-0S6_WzA2Mj", session_id: uuid.UUID | None = None,
             redirect_uri: str = REDIRECT_URI) -> str:
        """An authorization code as the authorization endpoint issues it (60 seconds)."""
        code, now = new_token(), clock.now()
        session_id = session_id or self.session(user)
        with self.make.engine.begin() as conn:
            conn.execute(insert(oauth_codes).values(
                code_hash=hash_token(code), client_id=client.id, user_id=user.id,
                redirect_uri=redirect_uri, scopes=list(scopes), nonce=nonce,
                code_challenge=challenge_of(verifier) if verifier else None,
                workspace_id=workspace.id if workspace else None,
                session_id=session_id, auth_time=now - timedelta(
                    seconds=5), created_at=now, expires_at=now + timedelta(seconds=60),
                used_at=None, grant_id=None))
        return code

    def token(self, client: Registered, **params: str) -> httpx.Response:
        """POST /oauth/token as `client` (client_secret_basic, or a public client's id)."""
        response: httpx.Response = self.http.post(
            "/oauth/token", data={**client.form(), **params}, headers=client.auth)
        return response

    def redeem(self, client: Registered, code: str, verifier: str | None = VERIFIER,
               redirect_uri: str = REDIRECT_URI) -> dict[str, Any]:
        params = {"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri}
        if verifier:
            params["code_verifier"] = verifier
        response = self.token(client, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, client: Registered, refresh_token: str, **params: str) -> httpx.Response:
        return self.token(client, grant_type="refresh_token", refresh_token=refresh_token,
                          **params)

    def refused(self, response: httpx.Response, status: int, error: str) -> str:
        """The description of an OAuth refusal (RFC 6749 5.2), checked."""
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == error, body
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
        return str(body["error_description"])

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a JWT of ours, its signature checked against the published JWKS."""
        return dict(jwt.decode(token, self.jwks(), algorithms=["RS256"]).claims)

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(self.http.get("/oauth/jwks").json())

    def userinfo(self, access_token: str) -> httpx.Response:
        response: httpx.Response = self.http.get(
            "/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"})
        return response

    def introspect(self, client: Registered, token: str) -> dict[str, Any]:
        response = self.http.post("/oauth/introspect", data={"token": token},
                                  headers=client.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.ASGITransport]:
    """Another instance of the app on the same database, started in this event loop, and a
    transport to it: requests sent together are served together."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An async client of another instance of the app (`running`)."""
    async with running(settings) as transport, httpx.AsyncClient(
            transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def make(api: Api) -> Iterator[Factory]:
    factory = Factory(api.db.url)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def op(api: Api, make: Factory) -> Provider:
    return Provider(api, make)


__all__ = ["api", "held_housekeeping", "held_webhook_loop", "settings"]
