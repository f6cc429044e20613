"""ID tokens (OpenID Connect Core) and access tokens (RFC 9068 JWTs): minting them with the
signing key, and verifying an access token offline against the published keys.

Only RS256 is made and only RS256 with an RSA key is accepted: the algorithm a token names is
checked against that before any key is used, so `alg: none` and an HS256 token "signed" with
our public key as its secret never reach a verifier.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from workspaces import clock
from workspaces.errors import NotAuthenticated
from workspaces.roles import ROLES, Role
from workspaces.settings import Settings

ALG = "RS256"
ALGORITHMS = [ALG]
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a header value, no secret)
ID_TOKEN_TYPE = "JWT"  # noqa: S105
# Clocks of our instances and of relying parties disagree a little: expiry and issue times
# are judged this leniently.
SKEW = timedelta(seconds=30)
# What our ID tokens (and userinfo) may say, for the discovery document.
CLAIMS_SUPPORTED = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid",
                    "azp", "email", "email_verified", "name", "workspaces", "workspace_id",
                    "workspace_slug", "workspace_role")
_PART = re.compile(r"[A-Za-z0-9_-]*")

Rejection = Literal["malformed", "algorithm", "type", "unknown_kid", "signature", "issuer",
                    "audience", "expired", "not_yet_valid", "claims"]


class InvalidAccessToken(NotAuthenticated):
    """An access token we do not accept; `reason` says which check refused it (for logs and
    tests: the caller is told only that the token is not valid)."""

    code = "invalid_token"

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__("The access token is not valid: " + detail)
        self.reason: Rejection = reason


@dataclass(frozen=True)
class Signer:
    """The key that signs now: its kid (named in each token's header) and its private part."""

    kid: str
    key: RSAKey


@dataclass(frozen=True)
class WorkspaceClaim:
    """The workspace a grant names, as tokens carry it (workspace_id, _slug, _role)."""

    id: uuid.UUID
    slug: str
    role: Role

    def claims(self) -> dict[str, str]:
        return {"workspace_id": str(self.id), "workspace_slug": self.slug,
                "workspace_role": self.role}


@dataclass(frozen=True)
class Minted:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class AccessClaims:
    """A verified access token. `user_id` is None for a service token (its sub is the client)."""

    sub: str
    client_id: str
    scopes: tuple[str, ...]
    gid: uuid.UUID  # the oauth_grants row it belongs to
    jti: str
    issued_at: datetime
    expires_at: datetime
    user_id: uuid.UUID | None
    auth_time: datetime | None
    workspace: WorkspaceClaim | None

    @property
    def service(self) -> bool:
        return self.user_id is None


def issuer(settings: Settings) -> str:
    """Our issuer identifier: BASE_URL without a trailing slash."""
    return settings.base_url.rstrip("/")


def api_audience(settings: Settings) -> str:
    """The `aud` of our access tokens: our API."""
    return f"{issuer(settings)}/api"


def token_ttl(settings: Settings) -> timedelta:
    """How long ID and access tokens live."""
    return timedelta(minutes=settings.access_token_ttl_minutes)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _sign(signer: Signer, typ: str, claims: dict[str, Any]) -> str:
    header = {"alg": ALG, "typ": typ, "kid": signer.kid}
    return jwt.encode(header, claims, signer.key, algorithms=ALGORITHMS)


# Claims a caller's extras may not replace: they say who signed, for whom and until when.
_REGISTERED = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "amr",
                         "sid", "azp", "jti", "client_id", "scope", "gid"})


def mint_id_token(signer: Signer, settings: Settings, *, subject: str, client_id: str,
                  auth_time: datetime, sid: str | None, nonce: str | None = None,
                  claims: Mapping[str, Any] | None = None,
                  workspace: WorkspaceClaim | None = None, now: datetime | None = None) -> str:
    """An ID token for `client_id` about user `subject`; `claims` are the scopes' own (email,
    name, workspaces...), `workspace` the grant's workspace if it names one."""
    now = now or clock.now()
    extra = dict(claims or {})
    if clash := _REGISTERED & extra.keys():
        raise ValueError(f"claims may not replace {sorted(clash)}")
    body: dict[str, Any] = {
        "iss": issuer(settings), "sub": subject, "aud": client_id, "azp": client_id,
        "iat": _epoch(now), "exp": _epoch(now + token_ttl(settings)),
        "auth_time": _epoch(auth_time), "amr": ["pwd"], **extra}
    if sid is not None:
        body["sid"] = sid
    if nonce is not None:
        body["nonce"] = nonce
    if workspace is not None:
        body |= workspace.claims()
    return _sign(signer, ID_TOKEN_TYPE, body)


def mint_access_token(signer: Signer, settings: Settings, *, subject: str, client_id: str,
                      scopes: Sequence[str], grant_id: uuid.UUID,
                      auth_time: datetime | None = None,
                      workspace: WorkspaceClaim | None = None,
                      now: datetime | None = None) -> Minted:
    """An access token for our API (RFC 9068). `subject` is the user's id, or for a service
    token the client_id; `auth_time` is given for user tokens."""
    now = now or clock.now()
    expires = now + token_ttl(settings)
    jti = secrets.token_urlsafe(16)
    body: dict[str, Any] = {
        "iss": issuer(settings), "sub": subject, "aud": api_audience(settings),
        "client_id": client_id, "scope": " ".join(scopes), "iat": _epoch(now),
        "exp": _epoch(expires), "jti": jti, "gid": str(grant_id)}
    if auth_time is not None:
        body["auth_time"] = _epoch(auth_time)
    if workspace is not None:
        body |= workspace.claims()
    return Minted(_sign(signer, ACCESS_TOKEN_TYPE, body), jti,
                  datetime.fromtimestamp(body["exp"], UTC))


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url parts (the last may be empty, as in `alg: none`): a JWT,
    not one of our opaque tokens (which have no dot)."""
    parts = token.split(".")
    return (len(parts) == 3 and bool(parts[0]) and bool(parts[1])
            and all(_PART.fullmatch(part) for part in parts))


def _segment(part: str) -> dict[str, Any]:
    # RecursionError: JSON nested deeper than the parser goes, sent by anyone in a header.
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidAccessToken("malformed", "it is not a JWT.") from None
    if not isinstance(value, dict):
        raise InvalidAccessToken("malformed", "it is not a JWT.")
    return value


def unverified_kid(token: str) -> str | None:
    """The kid a token's header names, read before any check (to pick the key set)."""
    if not looks_like_jwt(token):
        return None
    kid = _segment(token.split(".")[0]).get("kid")
    return kid if isinstance(kid, str) else None


def _moment(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidAccessToken("claims", f"its {name} is missing or not a number.")
    return datetime.fromtimestamp(value, UTC)


def _optional_moment(claims: Mapping[str, Any], name: str) -> datetime | None:
    return None if claims.get(name) is None else _moment(claims, name)


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidAccessToken("claims", f"its {name} is missing.")
    return value


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidAccessToken("claims", f"its {name} is no id.") from None


def _workspace(claims: Mapping[str, Any]) -> WorkspaceClaim | None:
    if "workspace_id" not in claims:
        return None
    role = claims.get("workspace_role")
    if role not in ROLES:
        raise InvalidAccessToken("claims", "its workspace_role is not a role.")
    return WorkspaceClaim(_uuid(_text(claims, "workspace_id"), "workspace_id"),
                          _text(claims, "workspace_slug"), role)


def _signed_claims(token: str, keys: KeySet, *, issuer: str, types: tuple[str, ...],
                   kind: str) -> dict[str, Any]:
    """The claims of a JWT of one of `types` that one of our keys signed and we issued;
    raises InvalidAccessToken (with its reason) for anything else. Expiry is the caller's."""
    if not looks_like_jwt(token):
        raise InvalidAccessToken("malformed", "it is not a JWT.")
    header = _segment(token.split(".")[0])
    if header.get("alg") != ALG:  # before any key is touched: no `none`, no HS256 confusion
        raise InvalidAccessToken("algorithm", f"only {ALG} is accepted.")
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.lower() not in types:
        raise InvalidAccessToken("type", f"it is not {kind}.")
    kid = header.get("kid")
    # By exact kid, among RSA keys only (KeySet.get_by_kid would hand a lone key to a token
    # naming none).
    key = next((k for k in keys.keys if isinstance(k, RSAKey) and isinstance(kid, str)
                and k.kid == kid), None)
    if key is None:
        raise InvalidAccessToken("unknown_kid", "it was not signed by one of our keys.")
    try:
        decoded = jwt.decode(token, key, algorithms=ALGORITHMS)
    except JoseError:
        raise InvalidAccessToken("signature", "its signature does not match.") from None
    if decoded.claims.get("iss") != issuer:
        raise InvalidAccessToken("issuer", "it was issued by someone else.")
    return decoded.claims


def verify_access_token(token: str, keys: KeySet, *, issuer: str, audience: str,
                        now: datetime | None = None) -> AccessClaims:
    """The claims of an access token we signed for `audience`, checked offline; raises
    InvalidAccessToken (with its reason) for anything else."""
    now = now or clock.now()
    claims = _signed_claims(token, keys, issuer=issuer, kind="an access token (typ at+jwt)",
                            types=(ACCESS_TOKEN_TYPE, f"application/{ACCESS_TOKEN_TYPE}"))
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise InvalidAccessToken("audience", "it is meant for another audience.")
    expires, issued = _moment(claims, "exp"), _moment(claims, "iat")
    not_before = _optional_moment(claims, "nbf")
    if now >= expires + SKEW:
        raise InvalidAccessToken("expired", "it has expired.")
    if issued > now + SKEW or (not_before is not None and not_before > now + SKEW):
        raise InvalidAccessToken("not_yet_valid", "it is not valid yet.")
    sub, client_id = _text(claims, "sub"), _text(claims, "client_id")
    scope = claims.get("scope")
    if not isinstance(scope, str):
        raise InvalidAccessToken("claims", "its scope is missing.")
    return AccessClaims(
        sub=sub, client_id=client_id, scopes=tuple(s for s in scope.split(" ") if s),
        gid=_uuid(_text(claims, "gid"), "gid"), jti=_text(claims, "jti"), issued_at=issued,
        expires_at=expires, user_id=None if sub == client_id else _uuid(sub, "sub"),
        auth_time=_optional_moment(claims, "auth_time"), workspace=_workspace(claims))


@dataclass(frozen=True)
class IdTokenHint:
    """An ID token of ours handed back as `id_token_hint` (RP-initiated logout)."""

    sub: str
    audiences: tuple[str, ...]  # the client(s) it was issued to
    sid: str | None


def verify_id_token_hint(token: str, keys: KeySet, *, issuer: str) -> IdTokenHint:
    """An ID token we signed, its signature and issuer checked but not its expiry: a relying
    party signing someone out often holds only an expired one (OpenID Connect RP-Initiated
    Logout 1.0, 2). Raises InvalidAccessToken for anything else."""
    claims = _signed_claims(token, keys, issuer=issuer, types=(ID_TOKEN_TYPE.lower(),),
                            kind="an ID token")
    aud = claims.get("aud")
    audiences = (aud,) if isinstance(aud, str) else tuple(
        a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()
    if not audiences:
        raise InvalidAccessToken("audience", "it names no client.")
    sid = claims.get("sid")
    return IdTokenHint(_text(claims, "sub"), audiences, sid if isinstance(sid, str) else None)
