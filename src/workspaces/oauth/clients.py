"""Registered clients: the operator's registry (create, list, show, update, rotate the
secret, delete, each checked here), looking one up, and authenticating a confidential one by
its secret."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.errors import Conflict, InvalidInput, NotFound, RateLimited, counted
from workspaces.models import (
    oauth_client_workspaces,
    oauth_clients,
    oauth_consents,
    oauth_grants,
    workspaces,
)
from workspaces.oauth import scopes as vocabulary
from workspaces.oauth.errors import OAuthError
from workspaces.oauth.grants import end_grants
from workspaces.security import hash_token, new_token
from workspaces.settings import Settings
from workspaces.validation import check_all, clean_name
from workspaces.workspaces.service import SLUG

log = logging.getLogger("workspaces.oauth")

CLIENT_ID_PREFIX = "wsc_"
CLIENT_SECRET_PREFIX = "wscs_"  # noqa: S105 (a marker that makes leaked secrets easy to find)


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    public: bool  # no secret: PKCE is required
    trusted: bool  # first-party: no consent page
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    # The workspaces its service tokens reach; None: every workspace.
    workspace_ids: frozenset[uuid.UUID] | None
    created_at: datetime
    secret_hash: str | None

    def reaches(self, workspace_id: uuid.UUID) -> bool:
        return self.workspace_ids is None or workspace_id in self.workspace_ids


def client_of(row: Any, workspace_ids: frozenset[uuid.UUID] | None) -> Client:
    return Client(row.id, row.name, row.secret_hash is None, row.trusted,
                  tuple(row.redirect_uris), tuple(row.post_logout_redirect_uris),
                  tuple(row.scopes), workspace_ids, clock.aware(row.created_at),
                  row.secret_hash)


async def get_client(conn: AsyncConnection, client_id: str) -> Client | None:
    """The client registered as `client_id`, or None."""
    row = (await conn.execute(select(oauth_clients).where(oauth_clients.c.id == client_id))
           ).first()
    if row is None:
        return None
    reach: frozenset[uuid.UUID] | None = None
    if row.workspace_restricted:
        reach = frozenset((await conn.execute(
            select(oauth_client_workspaces.c.workspace_id)
            .where(oauth_client_workspaces.c.client_id == client_id))).scalars())
    return client_of(row, reach)


def _failures(client_id: str, address: str, settings: Settings) -> ratelimit.Limit:
    """Failed authentications of one client from one address: per address, so that a
    stranger who knows a client's id (every browser sees a public client's) locks only
    themselves out. Secrets are random and long: the limit slows a broken deployment's retry
    loop, it is not what keeps them from being guessed."""
    return ratelimit.Limit(f"oauth:client-auth-fail:{ratelimit.hashed(client_id)}:"
                           f"{ratelimit.client_key(address)}",
                           settings.client_auth_failures_per_client_per_hour,
                           timedelta(hours=1), "failed client authentications",
                           name="client_auth_failures_per_client_per_hour")


def _address_limit(address: str, settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(f"oauth:token:addr:{ratelimit.client_key(address)}",
                           settings.token_limit_per_address_per_minute, timedelta(minutes=1),
                           "token requests from your network",
                           name="token_limit_per_address_per_minute")


def _client_limit(client_id: str, settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(f"oauth:token:client:{ratelimit.hashed(client_id)}",
                           settings.token_limit_per_client_per_minute, timedelta(minutes=1),
                           "token requests for this client",
                           name="token_limit_per_client_per_minute")


def _invalid_client() -> OAuthError:
    # One answer for an unknown client, a wrong secret and a missing one: nothing tells which.
    return OAuthError("invalid_client", "Client authentication failed: check the client_id "
                      "and client_secret.", status=401,
                      headers={"WWW-Authenticate": 'Basic realm="workspaces"'})


async def authenticate_client(conn: AsyncConnection, settings: Settings, *, client_id: str,
                              secret: str | None, address: str) -> Client:
    """The client whose id and secret these are (a public client: its id and no secret),
    sent from `address`.

    Each attempt is counted as a failure (of this client from this address) before it is
    checked and taken back when it is right, so guesses sent at once cannot pass the limit;
    over it, 429 from that address even for the right secret until the hour ends. A refusal
    keeps its count (the caller's transaction commits it).
    """
    limit = _failures(client_id, address, settings)
    try:
        await ratelimit.hit(conn, limit)
    except RateLimited as refused:
        raise counted(refused) from None
    client = await get_client(conn, client_id)
    if client is None:
        raise counted(_invalid_client())
    if client.secret_hash is None:
        if secret is not None:  # a public client has no secret to send
            raise counted(_invalid_client())
    elif secret is None or not hmac.compare_digest(client.secret_hash, hash_token(secret)):
        raise counted(_invalid_client())
    await ratelimit.undo(conn, limit)
    return client


_CLIENT_ID_FORM = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, as long as the column


@dataclass(frozen=True)
class Presented:
    """The client authentication a request carried (after the endpoint parsed its form)."""

    client_id: str | None
    secret: str | None


async def authenticate(conn: AsyncConnection, settings: Settings, *, presented: Presented,
                       address: str, limited: bool = True) -> Client:
    """The client a request to the token, revocation or introspection endpoint comes from.

    With `limited` (the token endpoint), the request counts against its address first,
    refused or not; then the client authenticates (`authenticate_client`: failures counted
    per client and address, locked for the hour past their limit); then a confidential
    client's request counts against the client, whatever its grant's fate. Only a request
    that proved it comes from the client counts against it: one that merely names it (any
    request naming a public client) would let strangers spend its budget."""
    if limited:
        await ratelimit.hit(conn, _address_limit(address, settings))
    if not presented.client_id or not _CLIENT_ID_FORM.fullmatch(presented.client_id):
        raise _invalid_client()  # none, or none of ours (NUL bytes never reach a query)
    client = await authenticate_client(conn, settings, client_id=presented.client_id,
                                       secret=presented.secret, address=address)
    if limited and not client.public:
        await ratelimit.hit(conn, _client_limit(client.id, settings))
    return client


# The registry: rules of what a client may be registered with.

NAME_MAX = 200
URI_MAX = 2000
URIS_MAX = 20
# What a client may ask for when --scope is not given: signing users in, with the workspace
# claims and refresh tokens. Never a service scope: a backend's reach is always asked for.
DEFAULT_SCOPES: tuple[vocabulary.UserScope, ...] = (
    "openid", "email", "profile", "workspaces", "workspace", "offline_access")
# Plain http is allowed to these hosts only, for development and native apps (RFC 8252 7.3).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# The characters RFC 3986 allows in a URI; anything else must be percent-encoded.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A private-use scheme as RFC 8252 7.1 asks: a reverse domain name (com.example.app), which
# also keeps out javascript:, data:, file: and the like.
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+")


class Keep(Enum):
    """An update's "leave this as it is" (where None means something: every workspace)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class ClientInfo:
    """A registered client as operators see it (never its secret)."""

    id: str
    name: str
    public: bool
    trusted: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    scopes: list[str]
    # The slugs of the workspaces its service tokens reach; None: every workspace.
    workspaces: list[str] | None
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None


@dataclass(frozen=True)
class Registered:
    """A client and its new secret: the only time the secret is shown (None: public)."""

    client: ClientInfo
    secret: str | None


@dataclass(frozen=True)
class Deleted:
    client: ClientInfo
    consents: int  # of users, deleted with it
    grants: int  # in force (neither revoked nor expired), ended with it


@dataclass(frozen=True)
class UriEdit:
    """A change to a list of URIs: replace it (`replace`), or add and remove some."""

    replace: tuple[str, ...] | None = None
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.replace is not None or bool(self.add or self.remove)


@dataclass(frozen=True)
class _UriField:
    field: str
    code: str
    words: str


REDIRECT = _UriField("redirect_uris", "invalid_redirect_uri", "redirect URI")
POST_LOGOUT = _UriField("post_logout_redirect_uris", "invalid_post_logout_redirect_uri",
                        "post-logout redirect URI")


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_hex(8)


def new_secret() -> str:
    return new_token(CLIENT_SECRET_PREFIX)


def _shown(uri: str) -> str:
    return repr(uri if len(uri) <= 100 else uri[:99] + "…")


def check_uri(uri: str, *, public: bool, kind: _UriField = REDIRECT) -> str:
    """A redirect URI as it will be matched: exactly as given, so only its form is checked.

    Absolute, no fragment, no user name or password, no dot segments; https, or http to a
    loopback host; a public (native) client may also use a private-use scheme named as a
    reverse domain name (com.example.app:/callback).
    """
    def refused(why: str) -> InvalidInput:
        return InvalidInput(f"The {kind.words} {_shown(uri)} {why}", code=kind.code,
                            field=kind.field)

    if len(uri) > URI_MAX:
        raise InvalidInput(f"A {kind.words} may be at most {URI_MAX} characters long; one "
                           f"given has {len(uri)}.", code=kind.code, field=kind.field)
    if not uri:
        raise InvalidInput(f"A {kind.words} cannot be empty.", code=kind.code,
                           field=kind.field)
    if not _URI_CHARACTERS.fullmatch(uri):
        bad = next(ch for ch in uri if not _URI_CHARACTERS.fullmatch(ch))
        raise refused(f"holds {bad!r}, which a URI cannot hold as it is: percent-encode it "
                      "(a space as %20).")
    if _BAD_PERCENT.search(uri):
        raise refused("has a % that is not followed by two hexadecimal digits.")
    if "#" in uri:
        raise refused("has a fragment (#...); a redirect URI cannot have one.")
    try:
        parts = urlsplit(uri)
    except ValueError:  # an unbalanced [ or ] around an IPv6 host
        raise refused("has a [ or ] that does not enclose an IPv6 address.") from None
    if not parts.scheme:
        raise refused("is not absolute: start it with https:// (or http://127.0.0.1 "
                      "for development).")
    if "@" in parts.netloc:
        raise refused("holds a user name or password (before an @); remove it.")
    # Browsers resolve these (%2e too) before following the redirect: the URI matched would
    # not be the one reached.
    if any(segment.lower().replace("%2e", ".") in (".", "..")
           for segment in parts.path.split("/")):
        raise refused("has a . or .. path segment; write the path as the browser will "
                      "reach it.")
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number in range)
    except ValueError:
        raise refused("has a port that is not a number from 0 to 65535.") from None
    scheme = parts.scheme.lower()
    if scheme in ("https", "http"):
        host = parts.hostname or ""
        if not host:
            raise refused("has no host name.")
        if "*" in host:
            raise refused("has a wildcard in its host; URIs are matched exactly, so list "
                          "each one.")
        if scheme == "http" and host not in LOOPBACK_HOSTS:
            raise refused("uses http: use https (plain http only to 127.0.0.1, [::1] or "
                          "localhost, for development).")
        return uri
    if not public:
        raise refused(f"uses the scheme {scheme}:, which only a public (native) client "
                      "may use; a confidential client's redirect URI uses https.")
    if not _PRIVATE_SCHEME.fullmatch(scheme):
        raise refused(f"uses the scheme {scheme}:; a native app's scheme must be a reverse "
                      "domain name you control, such as com.example.app:/callback.")
    if not (parts.netloc or parts.path):
        raise refused("has nothing after its scheme; add a path, such as "
                      f"{scheme}:/callback.")
    return uri


def check_uris(uris: Iterable[str], *, public: bool, required: bool,
               kind: _UriField = REDIRECT) -> list[str]:
    """Each URI checked (`check_uri`), repeats dropped, in the order given."""
    checked = list(dict.fromkeys(check_uri(uri, public=public, kind=kind) for uri in uris))
    if required and not checked:
        raise InvalidInput(f"Give at least one {kind.words}: where the browser returns "
                           "after sign-in (https://app.example.com/callback).",
                           code=kind.code, field=kind.field)
    if len(checked) > URIS_MAX:
        raise InvalidInput(f"A client may have at most {URIS_MAX} {kind.words}s; "
                           f"{len(checked)} were given.", code=kind.code, field=kind.field)
    return checked


def scope_words(given: Sequence[str] | None) -> list[str] | None:
    """--scope values, each of which may hold several space-separated scopes."""
    if given is None:
        return None
    return vocabulary.parse(" ".join(given))


def signs_users_in(scopes: Sequence[str] | None) -> bool:
    """Whether a client with these scopes (None: the default) sends browsers back to it."""
    return scopes is None or any(s in vocabulary.USER_SCOPES for s in scopes)


def check_scopes(scopes: list[str] | None, *, public: bool) -> list[str]:
    """The scopes a client may ask for, in the vocabulary's order; None: DEFAULT_SCOPES."""
    if scopes is None:
        scopes = list(DEFAULT_SCOPES)
    choices = ", ".join(vocabulary.ALL_SCOPES)
    unknown = vocabulary.unknown(scopes)
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not a scope. Choose among {choices}.",
                           code="invalid_scope", field="scopes")
    if not scopes:
        raise InvalidInput(f"Give at least one scope, among {choices}.",
                           code="invalid_scope", field="scopes")
    service = [s for s in scopes if s in vocabulary.SERVICE_SCOPES]
    if public and service:
        raise InvalidInput(f"A public client cannot hold a secret, so it cannot have service "
                           f"scopes ({', '.join(service)}), which it would use with its "
                           "secret alone (client_credentials). Register the backend as a "
                           "confidential client (without --public).",
                           code="invalid_scope", field="scopes")
    return [s for s in vocabulary.ALL_SCOPES if s in scopes]


def _has_service_scope(scopes: Iterable[str]) -> bool:
    return any(s in vocabulary.SERVICE_SCOPES for s in scopes)


async def _workspace_ids(conn: AsyncConnection, slugs: Sequence[str],
                         scopes: Sequence[str]) -> dict[uuid.UUID, str]:
    """The workspaces named by slug, for a client that has service scopes to limit."""
    if not _has_service_scope(scopes):
        raise InvalidInput("--workspace limits where the client's service tokens act, and "
                           "it has no service scope (" + ", ".join(vocabulary.SERVICE_SCOPES)
                           + "): give one with --scope, or leave --workspace out.",
                           code="invalid_workspaces", field="workspaces")
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        raise InvalidInput("Name at least one workspace by its slug.",
                           code="invalid_workspaces", field="workspaces")
    valid = [slug for slug in wanted if SLUG.fullmatch(slug)]
    found = {row.slug: row.id for row in await conn.execute(
        select(workspaces.c.id, workspaces.c.slug).where(workspaces.c.slug.in_(valid)))}
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise NotFound(f"No workspace with the slug {missing[0]!r} (a workspace's slug is "
                       "in its address, /w/SLUG).", code="workspace_not_found",
                       field="workspaces")
    return {found[slug]: slug for slug in wanted}


def _not_found(client_id: str) -> NotFound:
    return NotFound(f"No client {client_id!r} is registered.", code="client_not_found",
                    fix="workspaces clients list  # the registered clients and their ids")


def _info(row: Any, slugs: list[str] | None) -> ClientInfo:
    return ClientInfo(row.id, row.name, row.secret_hash is None, row.trusted,
                      list(row.redirect_uris), list(row.post_logout_redirect_uris),
                      list(row.scopes), slugs, clock.aware(row.created_at),
                      clock.aware(row.updated_at),
                      clock.aware(row.secret_rotated_at) if row.secret_rotated_at else None)


async def _reach(conn: AsyncConnection, client_ids: list[str]) -> dict[str, list[str]]:
    """The slugs of the workspaces each restricted client reaches."""
    rows = await conn.execute(
        select(oauth_client_workspaces.c.client_id, workspaces.c.slug)
        .join(workspaces, workspaces.c.id == oauth_client_workspaces.c.workspace_id)
        .where(oauth_client_workspaces.c.client_id.in_(client_ids))
        .order_by(workspaces.c.slug))
    reach: dict[str, list[str]] = {}
    for row in rows:
        reach.setdefault(row.client_id, []).append(row.slug)
    return reach


async def _rows_as_info(conn: AsyncConnection, rows: Sequence[Any]) -> list[ClientInfo]:
    restricted = [row.id for row in rows if row.workspace_restricted]
    reach = await _reach(conn, restricted) if restricted else {}
    return [_info(row, reach.get(row.id, []) if row.workspace_restricted else None)
            for row in rows]


async def _row(conn: AsyncConnection, client_id: str, *, lock: bool = False) -> Any:
    query = select(oauth_clients).where(oauth_clients.c.id == client_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise _not_found(client_id)
    return row


async def list_clients(conn: AsyncConnection) -> list[ClientInfo]:
    """Every registered client, oldest first."""
    rows = (await conn.execute(select(oauth_clients).order_by(
        oauth_clients.c.created_at, oauth_clients.c.id))).all()
    return await _rows_as_info(conn, rows)


async def show_client(conn: AsyncConnection, *, client_id: str) -> ClientInfo:
    """One client; 404 `client_not_found`."""
    (info,) = await _rows_as_info(conn, [await _row(conn, client_id)])
    return info


async def _set_reach(conn: AsyncConnection, client_id: str,
                     reach: dict[uuid.UUID, str] | None) -> None:
    await conn.execute(delete(oauth_client_workspaces).where(
        oauth_client_workspaces.c.client_id == client_id))
    if reach:
        await conn.execute(insert(oauth_client_workspaces), [
            {"client_id": client_id, "workspace_id": workspace_id} for workspace_id in reach])


async def create_client(conn: AsyncConnection, *, name: str, redirect_uris: Sequence[str],
                        post_logout_redirect_uris: Sequence[str] = (), public: bool = False,
                        trusted: bool = False, scopes: Sequence[str] | None = None,
                        workspace_slugs: Sequence[str] | None = None) -> Registered:
    """Register a client. A confidential one gets a secret, returned this once and stored as
    its sha256; a public one has none (PKCE stands in for it). Redirect URIs are needed
    unless every scope is a service scope (a backend that only uses client_credentials)."""
    wanted = scope_words(scopes)
    clean, chosen, uris, logout_uris = check_all(
        lambda: clean_name(name, field="name", max_length=NAME_MAX),
        lambda: check_scopes(wanted, public=public),
        lambda: check_uris(redirect_uris, public=public, required=signs_users_in(wanted)),
        lambda: check_uris(post_logout_redirect_uris, public=public, required=False,
                           kind=POST_LOGOUT))
    reach = None if workspace_slugs is None else await _workspace_ids(
        conn, workspace_slugs, chosen)
    client_id, secret = new_client_id(), None if public else new_secret()
    now = clock.now()
    await conn.execute(insert(oauth_clients).values(
        id=client_id, name=clean, secret_hash=hash_token(secret) if secret else None,
        trusted=trusted, redirect_uris=uris, post_logout_redirect_uris=logout_uris,
        scopes=chosen, workspace_restricted=reach is not None, created_at=now,
        updated_at=now, secret_rotated_at=None))
    await _set_reach(conn, client_id, reach)
    info = await show_client(conn, client_id=client_id)
    log.info("oauth client %s (%s) registered by an operator: %s, %s, scopes %s%s",
             info.id, info.name, "public" if info.public else "confidential",
             "trusted" if info.trusted else "asks consent", " ".join(info.scopes),
             f", workspaces {' '.join(info.workspaces)}" if info.workspaces is not None
             else "")
    return Registered(info, secret)


def _edited(current: list[str], edit: UriEdit, *, public: bool, kind: _UriField) -> list[str]:
    """The list after `edit`: the new URIs checked, the removed ones registered before."""
    if edit.replace is not None and (edit.add or edit.remove):
        raise InvalidInput(f"Either replace the {kind.words}s or add and remove some, not "
                           "both at once.", code=kind.code, field=kind.field)
    if edit.replace is not None:
        return check_uris(edit.replace, public=public, required=False, kind=kind)
    missing = [uri for uri in edit.remove if uri not in current]
    if missing:
        raise InvalidInput(f"The {kind.words} {_shown(missing[0])} is not registered for "
                           f"this client; it has {', '.join(map(repr, current)) or 'none'}.",
                           code=kind.code, field=kind.field)
    added = check_uris(edit.add, public=public, required=False, kind=kind)
    kept = [uri for uri in current if uri not in edit.remove]
    result = list(dict.fromkeys([*kept, *added]))
    if len(result) > URIS_MAX:
        raise InvalidInput(f"A client may have at most {URIS_MAX} {kind.words}s; this "
                           f"would make {len(result)}.", code=kind.code, field=kind.field)
    return result


async def update_client(conn: AsyncConnection, *, client_id: str, name: str | None = None,
                        redirect_uris: UriEdit = UriEdit(),
                        post_logout_redirect_uris: UriEdit = UriEdit(),
                        scopes: Sequence[str] | None = None, trusted: bool | None = None,
                        workspace_slugs: Sequence[str] | Keep | None = KEEP) -> ClientInfo:
    """Change what is given, checked as on creation; what is not given stays. Whether it is
    public stays too (a secret cannot be added to an app that cannot keep one)."""
    row = await _row(conn, client_id, lock=True)
    public = row.secret_hash is None
    values: dict[str, Any] = {}
    wanted = scope_words(scopes)
    final_scopes = list(row.scopes) if wanted is None else wanted
    clean, chosen, uris, logout_uris = check_all(
        lambda: None if name is None else clean_name(name, field="name", max_length=NAME_MAX),
        lambda: None if wanted is None else check_scopes(wanted, public=public),
        lambda: None if not redirect_uris else _edited(
            list(row.redirect_uris), redirect_uris, public=public, kind=REDIRECT),
        lambda: None if not post_logout_redirect_uris else _edited(
            list(row.post_logout_redirect_uris), post_logout_redirect_uris, public=public,
            kind=POST_LOGOUT))
    if clean is not None and clean != row.name:
        values["name"] = clean
    if chosen is not None and chosen != list(row.scopes):
        values["scopes"] = final_scopes = chosen
    if uris is not None and uris != list(row.redirect_uris):
        values["redirect_uris"] = uris
    if logout_uris is not None and logout_uris != list(row.post_logout_redirect_uris):
        values["post_logout_redirect_uris"] = logout_uris
    if trusted is not None and trusted != row.trusted:
        values["trusted"] = trusted
    if signs_users_in(final_scopes) and not values.get("redirect_uris", row.redirect_uris):
        check_uris([], public=public, required=True)
    changed = sorted(values)
    if not isinstance(workspace_slugs, Keep):
        reach = None if workspace_slugs is None else await _workspace_ids(
            conn, workspace_slugs, final_scopes)
        before = (await _reach(conn, [client_id])).get(client_id, []) \
            if row.workspace_restricted else None
        if (None if reach is None else sorted(reach.values())) != before:
            values["workspace_restricted"] = reach is not None
            await _set_reach(conn, client_id, reach)
            changed.append("workspaces")
    if values:
        await conn.execute(update(oauth_clients).where(oauth_clients.c.id == client_id)
                           .values(**values, updated_at=clock.now()))
        # A service scope taken away: the service tokens that hold it stop at once (as a
        # narrowed reach does), not when they expire; the client asks for a new one. Users'
        # grants lose it at their next refresh (grants._user_scopes).
        taken = _has_service_scope(set(row.scopes) - set(final_scopes))
        ended = await end_grants(conn, client_id=client_id, user_id=None) if taken else 0
        log.info("oauth client %s (%s) updated by an operator: %s%s", client_id,
                 values.get("name", row.name), ", ".join(changed),
                 f"; {ended} service grants ended" if taken else "")
    return await show_client(conn, client_id=client_id)


async def rotate_secret(conn: AsyncConnection, *, client_id: str) -> Registered:
    """A new secret, returned this once; the old one stops working at once, and so do the
    service tokens it obtained (their grants end). Users' sign-ins stay."""
    row = await _row(conn, client_id, lock=True)
    if row.secret_hash is None:
        raise Conflict(f"The client {client_id} is public (a native or browser app): it has "
                       "no secret to rotate.", code="public_client")
    secret, now = new_secret(), clock.now()
    await conn.execute(update(oauth_clients).where(oauth_clients.c.id == client_id).values(
        secret_hash=hash_token(secret), secret_rotated_at=now, updated_at=now))
    ended = await end_grants(conn, client_id=client_id, user_id=None)
    log.info("oauth client %s (%s): secret rotated by an operator; %d service grants ended",
             client_id, row.name, ended)
    return Registered(await show_client(conn, client_id=client_id), secret)


async def usage(conn: AsyncConnection, *, client_id: str) -> Deleted:
    """What deleting the client would take with it."""
    client = await show_client(conn, client_id=client_id)
    consents = (await conn.execute(select(func.count()).select_from(oauth_consents).where(
        oauth_consents.c.client_id == client_id))).scalar_one()
    grants = (await conn.execute(select(func.count()).select_from(oauth_grants).where(
        oauth_grants.c.client_id == client_id, oauth_grants.c.revoked_at.is_(None),
        oauth_grants.c.expires_at > clock.now()))).scalar_one()
    return Deleted(client, consents, grants)


async def delete_client(conn: AsyncConnection, *, client_id: str) -> Deleted:
    """Delete a client with its users' consents, its grants, codes and refresh tokens (the
    tables' cascades): every token it holds stops working."""
    await _row(conn, client_id, lock=True)
    gone = await usage(conn, client_id=client_id)
    await conn.execute(delete(oauth_clients).where(oauth_clients.c.id == client_id))
    log.info("oauth client %s (%s) deleted by an operator, with %d consents and %d live "
             "grants", client_id, gone.client.name, gone.consents, gone.grants)
    return gone
