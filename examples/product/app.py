"""A product that signs its users in with Workspaces: a small FastAPI app, an OpenID Connect
relying party built on Authlib's client, nothing written for Workspaces alone.

    PRODUCT_ISSUER=http://127.0.0.1:8000 PRODUCT_CLIENT_ID=wsc_... \\
    PRODUCT_CLIENT_SECRET=wscs_... PRODUCT_SESSION_SECRET=$(openssl rand -hex 32) \\
        uvicorn examples.product.app:app --port 8090

It shows what a product needs: sign-in (authorization code + PKCE, state, nonce, the ID token
checked against the provider's keys, the `iss` of the authorization response, RFC 9207), the
workspace the user picked and their role there from the token, a call to Workspaces' API with
the user's access token, and a backend endpoint (`/api/whoami`) that verifies access tokens
offline against the JWKS, as a product's own API would. See README.md beside this file.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.middleware.sessions import SessionMiddleware

SCOPES = "openid email profile workspace"
JWKS_REFRESH_SECONDS = 300  # at most the provider's JWKS max-age; unknown kids refetch sooner


@dataclass(frozen=True)
class Config:
    issuer: str
    client_id: str
    client_secret: str | None
    session_secret: str
    # The provider's API, where this product calls with the user's access token.
    api: str

    @classmethod
    def from_environment(cls) -> Config:
        issuer = os.environ["PRODUCT_ISSUER"].rstrip("/")
        return cls(issuer, os.environ["PRODUCT_CLIENT_ID"],
                   os.environ.get("PRODUCT_CLIENT_SECRET") or None,
                   os.environ["PRODUCT_SESSION_SECRET"], f"{issuer}/api")


class AccessTokens:
    """Verifies Workspaces access tokens offline: the signature against the provider's JWKS
    (cached, fetched again for a key it does not know yet, as after a rotation), then the
    claims RFC 9068 requires: `typ: at+jwt`, iss, aud (the API), exp, and this client's id."""

    def __init__(self, config: Config, jwks_uri: str) -> None:
        self._config, self._jwks_uri = config, jwks_uri
        self._keys: KeySet | None = None
        self._fetched = 0.0

    async def _key_set(self, *, fresh: bool) -> KeySet:
        stale = time.monotonic() - self._fetched > JWKS_REFRESH_SECONDS
        if self._keys is None or stale or fresh:
            async with httpx.AsyncClient(timeout=5) as client:
                answer = await client.get(self._jwks_uri)
                answer.raise_for_status()
            self._keys = KeySet.import_key_set(answer.json())
            self._fetched = time.monotonic()
        return self._keys

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; JoseError (or ValueError) if it is not one to accept."""
        keys = await self._key_set(fresh=False)
        try:
            decoded = jwt.decode(token, keys, algorithms=["RS256"])
        except JoseError:  # perhaps signed with a key published since: fetch the set again
            decoded = jwt.decode(token, await self._key_set(fresh=True), algorithms=["RS256"])
        if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise ValueError("not an access token (typ is not at+jwt)")
        jwt.JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": self._config.issuer},
            aud={"essential": True, "value": self._config.api},
            exp={"essential": True},
            client_id={"essential": True, "value": self._config.client_id},
        ).validate(decoded.claims)
        return decoded.claims


def create_app(config: Config | None = None) -> FastAPI:
    config = config or Config.from_environment()
    app = FastAPI(title="Example product")
    # The session cookie holds the claims shown and the access token (signed, not encrypted:
    # a real product would keep tokens server-side).
    app.add_middleware(SessionMiddleware, secret_key=config.session_secret,
                       session_cookie="product_session", same_site="lax")
    oauth = OAuth()
    oauth.register(
        "workspaces",
        server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
        client_id=config.client_id, client_secret=config.client_secret,
        client_kwargs={"scope": SCOPES, "code_challenge_method": "S256",
                       "token_endpoint_auth_method":
                           "client_secret_basic" if config.client_secret else "none"},
    )
    provider = oauth.create_client("workspaces")
    verifier: dict[str, AccessTokens] = {}

    async def access_tokens() -> AccessTokens:
        if not verifier:
            metadata = await provider.load_server_metadata()
            verifier["tokens"] = AccessTokens(config, metadata["jwks_uri"])
        return verifier["tokens"]

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return _page("Example product", '<p>You are not signed in.</p>'
                         '<p><a id="sign-in" href="/login">Sign in with Workspaces</a></p>')
        access_token = request.session.get("access_token")
        members = await _members(config, access_token, user.get("workspace_slug"))
        rows = "".join(f"<li>{html.escape(m['email'])} ({html.escape(m['role'])})</li>"
                       for m in members)
        try:  # what this product's own API would conclude from the token alone
            verified = await (await access_tokens()).verify(access_token or "")
            offline = (f"valid for {html.escape(str(verified.get('scope')))}, role "
                       f"<span id=\"token-role\">"
                       f"{html.escape(str(verified.get('workspace_role')))}</span>")
        except (JoseError, ValueError) as error:
            offline = f"refused: {html.escape(str(error))}"
        return _page("Example product", f"""
<p>Signed in as <strong id="email">{html.escape(user.get('email', ''))}</strong>
 ({html.escape(user.get('name', ''))}).</p>
<p>Workspace: <strong id="workspace">{html.escape(user.get('workspace_slug') or 'none')}</strong>,
 role: <strong id="role">{html.escape(user.get('workspace_role') or 'none')}</strong>.</p>
<h2>Members, from the Workspaces API with your access token</h2>
<ul id="members">{rows}</ul>
<p>Your access token, verified offline against the JWKS: <span id="offline">{offline}</span>.
</p>
<form method="post" action="/logout"><button id="sign-out">Sign out</button></form>""")

    @app.get("/login")
    async def login(request: Request) -> Response:
        redirect_uri = str(request.url_for("callback"))
        response: Response = await provider.authorize_redirect(request, redirect_uri)
        return response

    @app.get("/callback", name="callback")
    async def callback(request: Request) -> Response:
        # RFC 9207: the response must come from the provider this product asked.
        metadata = await provider.load_server_metadata()
        if request.query_params.get("iss") != metadata["issuer"]:
            return _page("Sign-in failed", "<p>The answer did not come from Workspaces.</p>",
                         status=400)
        try:
            token = await provider.authorize_access_token(request)
        except OAuthError as error:
            return _page("Sign-in failed", f"<p>{html.escape(error.error)}: "
                         f"{html.escape(error.description or '')}</p>", status=400)
        claims = token["userinfo"]  # the ID token, verified: signature, iss, aud, exp, nonce
        request.session["user"] = {key: claims.get(key) for key in (
            "sub", "email", "name", "workspace_id", "workspace_slug", "workspace_role")}
        request.session["access_token"] = token["access_token"]
        request.session["id_token"] = token["id_token"]
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        id_token = request.session.pop("id_token", None)
        request.session.clear()
        response: Response = await provider.logout_redirect(
            request, post_logout_redirect_uri=str(request.url_for("home")),
            id_token_hint=id_token)
        return response

    @app.get("/api/whoami")
    async def whoami(request: Request) -> Response:
        """A product backend's endpoint: who calls, in which workspace, with which role, from
        the bearer access token alone (no call to Workspaces)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse({"error": "send Authorization: Bearer <access token>"}, 401)
        try:
            claims = await (await access_tokens()).verify(token)
        except (JoseError, ValueError) as error:
            return JSONResponse({"error": f"token refused: {error}"}, 401)
        return JSONResponse({key: claims.get(key) for key in (
            "sub", "client_id", "scope", "workspace_id", "workspace_slug", "workspace_role")})

    return app


async def _members(config: Config, access_token: str | None, slug: str | None
                   ) -> list[dict[str, Any]]:
    if not access_token or not slug:
        return []
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"{config.api}/workspaces/{slug}/members",
                                  headers={"Authorization": f"Bearer {access_token}"})
    if answer.status_code != 200:
        return []
    body = answer.json()
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;
overflow-wrap:anywhere}}</style></head><body><h1>{title}</h1>{body}</body></html>""",
                        status_code=status)


def __getattr__(name: str) -> Any:
    """`uvicorn examples.product.app:app` builds the app from the environment on first use."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
