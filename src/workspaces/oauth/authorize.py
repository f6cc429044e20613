"""The authorization endpoint's rules (RFC 6749 4.1, OpenID Connect Core 3.1.2, RFC 7636): the
request checked in RFC 6749's order, what the signed-in person must still do (sign in again,
consent, pick a workspace), and the code issued.

Until the client and its redirect URI are known good a refusal is a page (`UnsafeRequest`):
redirecting to an address nobody registered would make us an open redirector. From then on a
refusal goes back to the client (`Refused`), with `error`, `error_description`, `state` and
`iss` (RFC 9207).

Decided here (docs/integration.md tells product developers):
- `openid` is required: this is an OpenID provider and every code yields an ID token.
- PKCE is S256 only; public clients must use it, confidential ones may.
- `workspace=<slug>` naming a workspace the person is not a member of shows the picker (with a
  line saying so) rather than refusing: a refusal without consent would tell the client who
  belongs to which workspace.
- An account whose address is unverified may sign in (the existing pages let it act); the
  claims then say `email_verified: false`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.accounts.service import LiveSession, UserInfo
from workspaces.errors import AppError
from workspaces.models import oauth_codes
from workspaces.oauth import consents, scopes
from workspaces.oauth.clients import Client, get_client
from workspaces.oauth.errors import OAuthCode, OAuthError
from workspaces.security import hash_token, new_token
from workspaces.workspaces.service import WorkspaceInfo, list_workspaces

CODE_TTL = timedelta(seconds=60)
# RFC 7636 4.1: 43 to 128 characters of the unreserved set (an S256 challenge has 43).
CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
PROMPTS = ("none", "login", "consent")
# Kept through sign-in and the consent form, and stored (nonce): bounded.
STATE_MAX = NONCE_MAX = 512
LOGIN_HINT_MAX = 320  # longer hints are ignored: they prefill an email field
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
Params = Sequence[tuple[str, str]]
_Refuse = Callable[["OAuthCode", str], "Refused"]


class UnsafeRequest(AppError):
    """A request answered on our page, never redirected: its client or redirect URI is not
    known good (or the page it came from has expired)."""

    status, code = 400, "invalid_authorization_request"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code, headers=NO_STORE)


class Refused(OAuthError):
    """A refusal told to the client at its (checked) redirect URI."""

    def __init__(self, code: OAuthCode, message: str, *, redirect_uri: str,
                 state: str | None) -> None:
        super().__init__(code, message)
        self.redirect_uri = redirect_uri
        self.state = state

    def url(self, issuer: str) -> str:
        return response_url(self.redirect_uri, {
            "error": self.code, "error_description": self.message, "state": self.state,
            "iss": issuer})


def response_url(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """`redirect_uri` with `params` (those not None) added to the query it already has."""
    parts = urlsplit(redirect_uri)
    added = urlencode({name: value for name, value in params.items() if value is not None})
    return urlunsplit(parts._replace(query=f"{parts.query}&{added}" if parts.query else added))


@dataclass(frozen=True)
class AuthRequest:
    """An authorization request that passed every check."""

    client: Client
    redirect_uri: str
    scopes: tuple[scopes.Scope, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    workspace: str | None  # the slug the client named with `workspace=`
    params: tuple[tuple[str, str], ...]  # as sent: carried through sign-in and consent

    def refused(self, code: OAuthCode, message: str) -> Refused:
        return Refused(code, message, redirect_uri=self.redirect_uri, state=self.state)

    def code_url(self, code: str, issuer: str) -> str:
        """Where the browser takes the code: the redirect URI with code, state and iss."""
        return response_url(self.redirect_uri, {"code": code, "state": self.state,
                                                "iss": issuer})


def _unknown_client() -> UnsafeRequest:
    return UnsafeRequest("The app that sent you here is not registered with Workspaces, so "
                         "you cannot sign in to it from this link. Go back to the app and try "
                         "again; if it happens again, tell the app's makers.",
                         code="unknown_client")


def _unregistered_redirect(client: Client) -> UnsafeRequest:
    return UnsafeRequest(f"{client.name} asked to send you back to an address it has not "
                         "registered with Workspaces, so the sign-in was stopped here. Go back "
                         "to the app and try again; if it happens again, tell the app's makers.",
                         code="redirect_uri_not_registered")


async def _client_and_redirect(conn: AsyncConnection, asked: Mapping[str, list[str]]
                               ) -> tuple[Client, str]:
    """The client and the redirect URI, both known good; else an `UnsafeRequest`."""
    client_ids = asked.get("client_id", [])
    if len(client_ids) != 1:
        raise _unknown_client()
    client = await get_client(conn, client_ids[0])
    if client is None:
        raise _unknown_client()
    uris = asked.get("redirect_uri", [])
    if not uris and len(client.redirect_uris) == 1:
        return client, client.redirect_uris[0]  # RFC 6749 3.1.2.3: the one registered
    # Compared as strings, exactly (no normalising: case, ports, slashes, queries all count).
    if len(uris) != 1 or uris[0] not in client.redirect_uris:
        raise _unregistered_redirect(client)
    return client, uris[0]


def _one(asked: Mapping[str, list[str]], name: str) -> str | None:
    values = asked.get(name)
    return values[0] if values else None


async def check_request(conn: AsyncConnection, params: Params) -> AuthRequest:
    """The authorization request `params` make, checked; raises `UnsafeRequest` (a page) or
    `Refused` (back to the client)."""
    # RFC 6749 3.1: a parameter without a value is one not sent.
    sent = tuple((name, value) for name, value in params if value != "")
    asked: dict[str, list[str]] = {}
    for name, value in sent:
        asked.setdefault(name, []).append(value)
    client, redirect_uri = await _client_and_redirect(conn, asked)
    state = _one(asked, "state")

    def refuse(code: OAuthCode, message: str) -> Refused:
        return Refused(code, message, redirect_uri=redirect_uri, state=state)

    repeated = sorted(name for name, count in Counter(name for name, _ in sent).items()
                      if count > 1)
    if repeated:
        raise refuse("invalid_request", f"Parameters may be sent once: {', '.join(repeated)} "
                                        "came more than once.")
    for name, code in (("request", "request_not_supported"),
                       ("request_uri", "request_uri_not_supported"),
                       ("registration", "registration_not_supported")):
        if name in asked:
            raise refuse(cast(OAuthCode, code), f"The {name} parameter is not supported.")
    response_type = _one(asked, "response_type")
    if response_type is None:
        raise refuse("invalid_request", "response_type is missing; it must be code.")
    if response_type != "code":
        raise refuse("unsupported_response_type",
                     "Only the authorization code flow is offered: response_type=code.")
    if _one(asked, "response_mode") not in (None, "query"):
        raise refuse("invalid_request", "Only response_mode=query is offered.")
    requested = _scopes(client, _one(asked, "scope"), refuse)
    challenge = _challenge(client, _one(asked, "code_challenge"),
                           _one(asked, "code_challenge_method"), refuse)
    prompt = frozenset((_one(asked, "prompt") or "").split())
    if not prompt <= set(PROMPTS):
        raise refuse("invalid_request", "prompt may be none, login or consent.")
    if "none" in prompt and len(prompt) > 1:
        raise refuse("invalid_request", "prompt=none cannot be combined with another value.")
    max_age = _one(asked, "max_age")
    if max_age is not None and not re.fullmatch(r"[0-9]{1,9}", max_age):
        raise refuse("invalid_request", "max_age must be a whole number of seconds.")
    nonce = _one(asked, "nonce")
    if len(state or "") > STATE_MAX or len(nonce or "") > NONCE_MAX:
        raise refuse("invalid_request", f"state and nonce may have at most {STATE_MAX} "
                                        "characters.")
    hint = _one(asked, "login_hint")
    return AuthRequest(
        client=client, redirect_uri=redirect_uri, scopes=requested, state=state, nonce=nonce,
        code_challenge=challenge, prompt=prompt,
        max_age=int(max_age) if max_age is not None else None,
        login_hint=hint if hint and len(hint) <= LOGIN_HINT_MAX else None,
        workspace=_one(asked, "workspace"), params=sent)


def _scopes(client: Client, text: str | None, refuse: _Refuse) -> tuple[scopes.Scope, ...]:
    requested = scopes.parse(text)
    if unknown := scopes.unknown(requested):
        raise refuse("invalid_scope", f"Unknown scope: {' '.join(unknown)}.")
    if refused := [scope for scope in requested if scope not in client.scopes]:
        raise refuse("invalid_scope", f"This client may not ask for: {' '.join(refused)}.")
    if "openid" not in requested:
        raise refuse("invalid_scope", "The openid scope is required: Workspaces is an OpenID "
                                      "Connect provider.")
    return cast(tuple[scopes.Scope, ...], tuple(requested))


def _challenge(client: Client, challenge: str | None, method: str | None,
               refuse: _Refuse) -> str | None:
    """The PKCE code challenge (RFC 7636): S256 only, required of public clients."""
    if method is not None and method != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256 (plain is not "
                                        "accepted).")
    if challenge is None:
        if method is not None:
            raise refuse("invalid_request", "code_challenge is missing.")
        if client.public:
            raise refuse("invalid_request", "PKCE is required for this client: send "
                                            "code_challenge with code_challenge_method=S256.")
        return None
    if method is None:  # RFC 7636 4.3: no method means plain
        raise refuse("invalid_request", "code_challenge_method=S256 is required (plain is not "
                                        "accepted).")
    if not CHALLENGE.fullmatch(challenge):
        raise refuse("invalid_request", "code_challenge must be 43 to 128 characters of "
                                        "A-Z, a-z, 0-9, '-', '.', '_' and '~'.")
    return challenge


def must_sign_in(request: AuthRequest, session: LiveSession | None, *,
                 fresh_after: datetime | None) -> bool:
    """Whether the person must (again) sign in before going on; `prompt=none` refuses instead.

    `prompt=login` and an exceeded `max_age` ask for a sign-in newer than the session's. The
    sign-in they send the person to comes back with `fresh_after`, the moment it was asked for:
    a session begun since satisfies them, so the flow does not ask again.
    """
    if session is None:
        if "none" in request.prompt:
            raise request.refused("login_required", "Nobody is signed in.")
        return True
    if fresh_after is not None and session.created_at >= fresh_after:
        return False
    stale = "login" in request.prompt or (
        request.max_age is not None
        and clock.now() - session.created_at > timedelta(seconds=request.max_age))
    if stale and "none" in request.prompt:
        raise request.refused("login_required", "The sign-in is older than max_age allows.")
    return stale


@dataclass(frozen=True)
class Decision:
    """What the signed-in person must still do before a code is issued (consent, pick a
    workspace: one page), and the workspace named or picked."""

    consent: bool
    pick: tuple[WorkspaceInfo, ...] | None  # the picker's choices; None: no picker
    workspace: WorkspaceInfo | None
    notice: str | None = None  # why the picker shows although a workspace was named

    @property
    def ready(self) -> bool:
        return not self.consent and self.pick is None


async def decide(conn: AsyncConnection, request: AuthRequest, user: UserInfo, *,
                 answered: bool = False, picked: str | None = None) -> Decision:
    """What remains for `user`. `answered`: they just allowed the request on the consent page;
    `picked`: the workspace they chose on the picker. With `prompt=none`, anything that
    remains is refused (`consent_required`, `account_selection_required`)."""
    consent = not answered and ("consent" in request.prompt or (
        not request.client.trusted
        and not await consents.consented(conn, user_id=user.id, client_id=request.client.id,
                                         scopes=request.scopes)))
    pick: tuple[WorkspaceInfo, ...] | None = None
    workspace = notice = None
    if "workspace" in request.scopes:
        mine = await list_workspaces(conn, user=user)
        wanted = picked or request.workspace
        workspace = next((w for w in mine if w.slug == wanted), None)
        if workspace is None:
            pick = tuple(mine)
            if wanted and mine:
                notice = (f"You are not a member of the workspace {request.client.name} asked "
                          f"for ({wanted}): pick one of yours, or deny.")
    decision = Decision(consent, pick, workspace, notice)
    if "none" in request.prompt and not decision.ready:
        if consent:
            raise request.refused("consent_required", "The person has not consented yet.")
        raise request.refused("account_selection_required", "The person must pick a "
                                                            "workspace.")
    return decision


def denied(request: AuthRequest) -> Refused:
    return request.refused("access_denied", "The person did not allow the request.")


async def allow(conn: AsyncConnection, request: AuthRequest, user: UserInfo) -> None:
    """Remember that `user` allowed the client the scopes asked (the consent page's Allow)."""
    await consents.record_consent(conn, user_id=user.id, client_id=request.client.id,
                                  scopes=request.scopes)


async def issue_code(conn: AsyncConnection, request: AuthRequest, session: LiveSession,
                     workspace: WorkspaceInfo | None) -> str:
    """A code for the request (stored as its hash; the token endpoint redeems it once, within
    CODE_TTL), bound to the browser session that signed in (`sid`, `auth_time`)."""
    code, now = new_token(), clock.now()
    await conn.execute(insert(oauth_codes).values(
        code_hash=hash_token(code), client_id=request.client.id, user_id=session.user.id,
        redirect_uri=request.redirect_uri, scopes=list(request.scopes), nonce=request.nonce,
        code_challenge=request.code_challenge,
        workspace_id=workspace.id if workspace else None, session_id=session.id,
        auth_time=session.created_at, created_at=now, expires_at=now + CODE_TTL))
    return code
