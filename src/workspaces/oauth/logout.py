"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): where the browser may go once
signed out. Only to a `post_logout_redirect_uri` its client registered, compared exactly, and
only when the client is known for sure (its `client_id`, or the audience of an `id_token_hint`
we signed; both, when both are sent, must agree). Anything else ends on our own page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.oauth import keys, tokens
from workspaces.oauth.authorize import response_url
from workspaces.oauth.clients import Client, get_client
from workspaces.settings import Settings


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None  # the client that asked, when known for sure
    redirect: str | None  # its registered URI with `state` added; None: our own page


NOWHERE = LogoutRequest(None, None)


async def _hinted_clients(conn: AsyncConnection, settings: Settings, hint: str
                          ) -> tuple[str, ...] | None:
    """The clients an ID token of ours was issued to (expired or not); None if we did not
    sign it."""
    try:
        keyset = await keys.verification_keys(conn, settings, kid=tokens.unverified_kid(hint))
        return tokens.verify_id_token_hint(hint, keyset, issuer=tokens.issuer(settings)
                                           ).audiences
    except tokens.InvalidAccessToken:
        return None


async def check_logout(conn: AsyncConnection, params: Sequence[tuple[str, str]], *,
                       settings: Settings) -> LogoutRequest:
    """The client asking and where to send the browser after signing out, from the request's
    parameters: nowhere but our page unless every check passes."""
    asked: dict[str, list[str]] = {}
    for name, value in params:
        if value != "":  # RFC 6749 3.1: a parameter without a value is one not sent
            asked.setdefault(name, []).append(value)
    if any(len(values) > 1 for values in asked.values()):
        return NOWHERE
    one = {name: values[0] for name, values in asked.items()}
    client_id = one.get("client_id")
    if "id_token_hint" in one:
        audiences = await _hinted_clients(conn, settings, one["id_token_hint"])
        if audiences is None:  # not ours: nothing it says, nor what comes with it, is believed
            return NOWHERE
        if client_id is None and len(audiences) == 1:
            client_id = audiences[0]
        if client_id not in audiences:
            return NOWHERE
    client = await get_client(conn, client_id) if client_id else None
    if client is None:
        return NOWHERE
    uri = one.get("post_logout_redirect_uri")
    if uri is None or uri not in client.post_logout_redirect_uris:
        return LogoutRequest(client, None)
    return LogoutRequest(client, response_url(uri, {"state": one.get("state")}))
