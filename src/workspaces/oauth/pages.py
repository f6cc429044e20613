"""The OpenID provider's pages: the authorization endpoint (sign-in detour, consent and
workspace picker) and RP-initiated logout.

What the browser carries between steps is signed (html.signer) so it cannot be altered: the
authorization request through sign-in (`resume`) and through the consent form (`pending`, also
bound to the browser session that saw it), and the logout's checked destination (`then`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadData
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.accounts.service import LiveSession, revoke_token, session_for_token
from workspaces.oauth import authorize as flow
from workspaces.oauth import logout
from workspaces.oauth.authorize import NO_STORE, AuthRequest, Decision, Refused, UnsafeRequest
from workspaces.oauth.scopes import DESCRIPTIONS
from workspaces.oauth.tokens import issuer
from workspaces.web.deps import Tx
from workspaces.web.html import (
    NEXT_MAX,
    CsrfChecked,
    end_session,
    redirect,
    render,
    session_token,
    sign_in_url,
    signer,
)
from workspaces.web.middleware import content_security_policy
from workspaces.web.routing import Route

router = APIRouter(route_class=Route, include_in_schema=False)

AUTHORIZE, LOGOUT = "/oauth/authorize", "/oauth/logout"
# How long a sign-in detour or an open consent or logout page stays good.
PENDING_SECONDS = 3600
PENDING_MAX = 3 * NEXT_MAX  # a signed request: the request's parameters, compressed
_HOST = re.compile(r"[a-z0-9.\-:]+")  # a name, or an IPv6 address without its brackets
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def _expired() -> UnsafeRequest:
    return UnsafeRequest("This page has expired. Go back to the app and sign in again.",
                         code="authorization_expired")


async def _session(request: Request, conn: AsyncConnection) -> LiveSession | None:
    """The browser's session; the page header shows its user like every other page's."""
    token = session_token(request)
    session = await session_for_token(conn, token=token, kind="browser") if token else None
    request.state.user = session.user if session else None
    return session


def _source(uri: str) -> tuple[str, ...]:
    """The CSP source of `uri`'s origin (a registered redirect URI), or none if it cannot be
    told safely in a header."""
    parts = urlsplit(uri)
    if not _SCHEME.fullmatch(parts.scheme):
        return ()
    if parts.scheme not in ("http", "https"):
        return (f"{parts.scheme}:",)  # an app's own scheme (RFC 8252)
    try:
        port = parts.port
    except ValueError:
        return ()
    host = parts.hostname
    if not host or not _HOST.fullmatch(host):
        return ()
    host = f"[{host}]" if ":" in host else host
    return (f"{parts.scheme}://{host}{f':{port}' if port else ''}",)


def _shown(uri: str) -> str:
    """Where a redirect URI goes, as the consent page names it: its host (or app scheme)."""
    parts = urlsplit(uri)
    return parts.hostname or f"{parts.scheme}:"


def _headers(*targets: str) -> dict[str, str]:
    """A page of the flow: never cached, and its forms may end at `targets` (their redirect)."""
    sources = tuple(source for target in targets for source in _source(target))
    return {**NO_STORE, "Content-Security-Policy": content_security_policy(form_targets=sources)}


def _go(url: str, status: int = 302) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers=NO_STORE)


def _back(refused: Refused, request: Request, status: int = 302) -> RedirectResponse:
    return _go(refused.url(issuer(request.app.state.settings)), status)


def _resume_url(request: Request, asked: AuthRequest) -> str:
    """This request again, once signed in: `fresh_after` (now) lets a new sign-in satisfy
    `prompt=login` and `max_age`."""
    blob = signer(request, "oauth.resume").dumps(
        {"q": asked.params, "after": clock.now().isoformat()})
    return f"{AUTHORIZE}?resume={blob}"


def _asked(request: Request) -> tuple[list[tuple[str, str]], datetime | None]:
    """The request's parameters (from a sign-in detour's `resume`, when it has one) and the
    moment its sign-in was asked for."""
    params = request.query_params.multi_items()
    resume = [value for name, value in params if name == "resume"]
    if not resume:
        return params, None
    try:
        payload = signer(request, "oauth.resume").loads(resume[0], max_age=PENDING_SECONDS)
    except BadData:
        raise _expired() from None
    return [(str(n), str(v)) for n, v in payload["q"]], datetime.fromisoformat(payload["after"])


def _consent_page(request: Request, asked: AuthRequest, session: LiveSession,
                  decision: Decision, status: int = 200, notice: str | None = None) -> Response:
    pending = signer(request, "oauth.pending").dumps(
        {"q": asked.params, "sid": str(session.id), "consent": decision.consent})
    return render(
        request, "authorize.html", status, headers=_headers(asked.redirect_uri),
        client=asked.client, consent=decision.consent, pick=decision.pick,
        scopes=[DESCRIPTIONS[scope] for scope in asked.scopes], pending=pending,
        notice=notice or decision.notice, back_to=_shown(asked.redirect_uri),
        again=_resume_url(request, asked))


@router.get(AUTHORIZE)
async def authorization(request: Request, tx: Tx) -> Response:
    """The authorization endpoint. Looking changes nothing, except that a request needing no
    answer from the person is answered with a code at once: the OAuth flow's own response
    (RFC 6749 4.1.2), written then."""
    async with tx.read() as conn:
        session = await _session(request, conn)
        params, fresh_after = _asked(request)
        try:
            asked = await flow.check_request(conn, params)  # UnsafeRequest: our error page
            if flow.must_sign_in(asked, session, fresh_after=fresh_after) or session is None:
                return _go(sign_in_url(_resume_url(request, asked), asked.login_hint), 303)
            decision = await flow.decide(conn, asked, session.user)
        except Refused as refused:
            return _back(refused, request)
    if not decision.ready:
        return _consent_page(request, asked, session, decision)
    async with tx.write() as conn:
        code = await flow.issue_code(conn, asked, session, decision.workspace)
    return _go(asked.code_url(code, issuer(request.app.state.settings)))


@router.post(AUTHORIZE, dependencies=[CsrfChecked])
async def answer(request: Request, tx: Tx,
                 pending: Annotated[str, Form(max_length=PENDING_MAX)] = "",
                 decision: Annotated[str, Form(max_length=10)] = "",
                 workspace: Annotated[str, Form(max_length=100)] = "") -> Response:
    """The consent page's and picker's answer: Allow (with the workspace picked) or Deny."""
    async with tx.write() as conn:
        session = await _session(request, conn)
        try:
            payload: dict[str, Any] = signer(request, "oauth.pending").loads(
                pending, max_age=PENDING_SECONDS)
        except BadData:
            raise _expired() from None
        if session is None or str(session.id) != payload["sid"]:
            raise UnsafeRequest("You signed out or in since this page was shown. Go back to "
                                "the app and sign in again.", code="authorization_expired")
        consented = bool(payload["consent"])  # the page asked for consent, and Allow gave it
        try:
            asked = await flow.check_request(conn, [(str(n), str(v)) for n, v in payload["q"]])
            if decision != "allow":
                raise flow.denied(asked)
            outcome = await flow.decide(conn, asked, session.user, answered=consented,
                                        picked=workspace or None)
            if not outcome.ready:  # a pick that is not one of theirs (any more): ask again
                return _consent_page(request, asked, session,
                                     replace(outcome, consent=outcome.consent or consented),
                                     422, notice=outcome.notice or "Pick one of your "
                                                                   "workspaces.")
            if consented:
                await flow.allow(conn, asked, session.user)
            code = await flow.issue_code(conn, asked, session, outcome.workspace)
        except Refused as refused:
            return _back(refused, request, 303)
    return _go(asked.code_url(code, issuer(request.app.state.settings)), 303)


@router.get(LOGOUT)
async def logout_page(request: Request, tx: Tx) -> Response:
    """RP-initiated logout: asks before signing out (looking changes nothing). Nobody signed
    in: straight back to the client, when it may be sent back."""
    async with tx.read() as conn:
        session = await _session(request, conn)
        asked = await logout.check_logout(conn, request.query_params.multi_items(),
                                          settings=request.app.state.settings)
    if session is None:
        if asked.redirect:
            return _go(asked.redirect)
        return render(request, "message.html", heading="You are signed out",
                      text="Nobody is signed in to Workspaces in this browser.",
                      back=("/signin", "Sign in"), headers=NO_STORE)
    then = signer(request, "oauth.logout").dumps(asked.redirect) if asked.redirect else ""
    return render(request, "logout.html", client=asked.client, then=then,
                  headers=_headers(*filter(None, [asked.redirect])))


@router.post(LOGOUT, dependencies=[CsrfChecked])
async def sign_out(request: Request, tx: Tx,
                   then: Annotated[str, Form(max_length=PENDING_MAX)] = "") -> Response:
    """Sign out as the header's button does, then go back to the client if it may be."""
    target: str | None = None
    if then:
        try:
            target = str(signer(request, "oauth.logout").loads(then, max_age=PENDING_SECONDS))
        except BadData:
            target = None
    token = session_token(request)
    if token:
        async with tx.write() as conn:
            await revoke_token(conn, token=token)
    response = _go(target, 303) if target else redirect(request, "/", "You are signed out.")
    end_session(request, response)
    return response
