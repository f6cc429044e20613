"""Apps and their access tokens, written straight into a migrated database: a registered
client, a grant (what the token endpoint would record), and a JWT signed with the key the
application under test signs with.

    apps = Apps(api)
    crm = apps.client("Acme CRM", scopes=("members:read",))
    token = apps.token(apps.grant(crm))                       # a service token
    token = apps.token(apps.grant(app, user=ann, scopes=("openid", "workspaces")))
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import delete, select, update

from tests.api.conftest import Api
from tests.factories import Factory, User, Workspace
from workspaces import clock
from workspaces.models import oauth_client_workspaces, oauth_clients, oauth_grants, signing_keys
from workspaces.oauth import tokens
from workspaces.oauth.scopes import SERVICE_SCOPES
from workspaces.oauth.tokens import Signer, WorkspaceClaim
from workspaces.roles import Role
from workspaces.security import hash_token, new_token, secret_key, unseal
from workspaces.settings import Settings


@dataclass(frozen=True)
class App:
    id: str
    name: str


@dataclass(frozen=True)
class Grant:
    id: uuid.UUID
    client_id: str
    user_id: uuid.UUID | None  # None: the client's own (client_credentials)
    scopes: tuple[str, ...]
    workspace: WorkspaceClaim | None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Apps(Factory):
    """Clients, grants and tokens for the database of `api`, signed as `api` signs."""

    def __init__(self, api: Api | None = None, *, url: str = "",
                 settings: Settings | None = None) -> None:
        """For the database and settings of `api`, or of a server given by both."""
        super().__init__(api.db.url if api else url)
        self.settings = api.settings if api else settings or Settings()

    def client(self, name: str = "Acme CRM", *, scopes: Sequence[str] = SERVICE_SCOPES,
               workspaces: Sequence[Workspace] = ()) -> App:
        """A confidential client; with `workspaces`, its service tokens reach only those."""
        return self.client_with_secret(name, scopes, workspaces)[0]

    def client_with_secret(self, name: str, scopes: Sequence[str],
                           workspaces: Sequence[Workspace] = ()) -> tuple[App, str]:
        """`client`, and the secret it authenticates with at the token endpoint."""
        self.count += 1
        client_id, now = f"wsc_test{self.count}{uuid.uuid4().hex[:8]}", clock.now()
        secret = new_token("wscs_")
        self._insert(oauth_clients, id=client_id, name=name, secret_hash=hash_token(secret),
                     trusted=False, redirect_uris=[], post_logout_redirect_uris=[],
                     scopes=list(scopes), workspace_restricted=bool(workspaces),
                     created_at=now, updated_at=now)
        for place in workspaces:
            self._insert(oauth_client_workspaces, client_id=client_id, workspace_id=place.id)
        return App(client_id, name), secret

    def grant(self, app: App, *, user: User | None = None,
              scopes: Sequence[str] = SERVICE_SCOPES,
              workspace: tuple[Workspace, Role] | None = None) -> Grant:
        """What the token endpoint records for a code (a user's) or for client_credentials."""
        grant_id, now = uuid.uuid4(), clock.now()
        picked = WorkspaceClaim(workspace[0].id, workspace[0].slug, workspace[1]) \
            if workspace else None
        self._insert(oauth_grants, id=grant_id, client_id=app.id,
                     user_id=user.id if user else None, scopes=list(scopes),
                     workspace_id=picked.id if picked else None,
                     auth_time=now if user else None, created_at=now,
                     expires_at=now + timedelta(hours=1))
        return Grant(grant_id, app.id, user.id if user else None, tuple(scopes), picked)

    def signer(self) -> Signer:
        """The key the application signs with now."""
        now = clock.now()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(signing_keys).where(signing_keys.c.activates_at <= now)
                .order_by(signing_keys.c.activates_at.desc()).limit(1)).one()
        pem = unseal(secret_key(self.settings), row.sealed_private_key)
        assert pem is not None
        return Signer(row.kid, RSAKey.import_key(pem))

    def token(self, grant: Grant, *, now: datetime | None = None) -> str:
        """An access token of `grant`, as the token endpoint mints it."""
        subject = str(grant.user_id) if grant.user_id else grant.client_id
        return tokens.mint_access_token(
            self.signer(), self.settings, subject=subject, client_id=grant.client_id,
            scopes=grant.scopes, grant_id=grant.id,
            auth_time=clock.now() if grant.user_id else None, workspace=grant.workspace,
            now=now).token

    def headers(self, grant: Grant) -> dict[str, str]:
        return bearer(self.token(grant))

    def signed(self, claims: dict[str, Any], **header: Any) -> str:
        """Any claims under any header, signed with the application's own key."""
        signer = self.signer()
        return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": signer.kid, **header},
                          claims, signer.key)

    def claims(self, grant: Grant, **changes: Any) -> dict[str, Any]:
        """The claims `token` would sign for `grant`, with `changes`."""
        now = int(clock.now().timestamp())
        return {"iss": tokens.issuer(self.settings), "aud": tokens.api_audience(self.settings),
                "sub": str(grant.user_id) if grant.user_id else grant.client_id,
                "client_id": grant.client_id, "scope": " ".join(grant.scopes), "iat": now,
                "exp": now + 600, "jti": uuid.uuid4().hex, "gid": str(grant.id), **changes}

    def revoke(self, grant: Grant) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(oauth_grants).where(oauth_grants.c.id == grant.id)
                         .values(revoked_at=clock.now()))

    def delete_client(self, app: App) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(oauth_clients).where(oauth_clients.c.id == app.id))
