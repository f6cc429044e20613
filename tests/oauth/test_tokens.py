"""Minting ID and access tokens, and refusing every access token we did not sign as one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from workspaces.oauth import tokens
from workspaces.oauth.tokens import (
    AccessClaims,
    InvalidAccessToken,
    Signer,
    WorkspaceClaim,
    looks_like_jwt,
    mint_access_token,
    mint_id_token,
    verify_access_token,
)
from workspaces.settings import Settings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SETTINGS = Settings(base_url="https://id.example.com/", secret_key="k" * 40,
                    _env_file=None)  # type: ignore[call-arg]
ISSUER = "https://id.example.com"
AUDIENCE = "https://id.example.com/api"
GRANT = uuid.UUID("3f1e0b5c-7d52-4a8e-9a61-0c7b9b8d2e11")
USER = uuid.UUID("8a6c2f4e-1b3d-4c5e-8f70-9a1b2c3d4e5f")
WORKSPACE = WorkspaceClaim(uuid.UUID("0b5a9c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d"), "acme", "admin")


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


@pytest.fixture(scope="module")
def signer(rsa: RSAKey) -> Signer:
    return Signer(rsa.kid or "", rsa)


@pytest.fixture(scope="module")
def keyset(rsa: RSAKey) -> KeySet:
    return KeySet([RSAKey.import_key(rsa.as_dict(private=False))])


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _access(signer: Signer, **overrides: Any) -> str:
    now = overrides.pop("now", NOW)
    return mint_access_token(signer, SETTINGS, subject=str(USER), client_id="wsc_app",
                             scopes=["openid", "workspace"], grant_id=GRANT, auth_time=now,
                             workspace=WORKSPACE, now=now, **overrides).token


def _verify(token: str, keyset: KeySet, *, now: datetime = NOW) -> AccessClaims:
    return verify_access_token(token, keyset, issuer=ISSUER, audience=AUDIENCE, now=now)


def _refused(token: str, keyset: KeySet, reason: str, *, now: datetime = NOW) -> None:
    with pytest.raises(InvalidAccessToken) as refused:
        _verify(token, keyset, now=now)
    assert refused.value.reason == reason, refused.value.message
    assert refused.value.status == 401 and refused.value.code == "invalid_token"


def test_an_access_token_round_trips_with_rfc_9068_header_and_claims(
        signer: Signer, keyset: KeySet) -> None:
    minted = mint_access_token(signer, SETTINGS, subject=str(USER), client_id="wsc_app",
                               scopes=["openid", "workspace"], grant_id=GRANT,
                               auth_time=NOW - timedelta(minutes=5), workspace=WORKSPACE,
                               now=NOW)
    assert minted.expires_at == NOW + timedelta(minutes=SETTINGS.access_token_ttl_minutes)
    header = jws.extract_compact(minted.token.encode()).headers()
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": signer.kid}
    claims = _verify(minted.token, keyset)
    assert claims == AccessClaims(
        sub=str(USER), client_id="wsc_app", scopes=("openid", "workspace"), gid=GRANT,
        jti=minted.jti, issued_at=NOW, expires_at=minted.expires_at, user_id=USER,
        auth_time=NOW - timedelta(minutes=5), workspace=WORKSPACE)
    assert not claims.service


def test_a_service_token_names_the_client_as_its_subject(signer: Signer,
                                                         keyset: KeySet) -> None:
    token = mint_access_token(signer, SETTINGS, subject="wsc_backend", client_id="wsc_backend",
                              scopes=["members:read"], grant_id=GRANT, now=NOW).token
    claims = _verify(token, keyset)
    assert claims.service and claims.user_id is None and claims.auth_time is None
    assert claims.workspace is None and claims.scopes == ("members:read",)


def test_an_id_token_carries_oidc_claims(signer: Signer, keyset: KeySet) -> None:
    token = mint_id_token(signer, SETTINGS, subject=str(USER), client_id="wsc_app",
                          auth_time=NOW - timedelta(minutes=1), sid="s1", nonce="n-1",
                          claims={"email": "ann@example.com", "email_verified": True},
                          workspace=WORKSPACE, now=NOW)
    decoded = jwt.decode(token, keyset, algorithms=["RS256"])
    assert decoded.header == {"alg": "RS256", "typ": "JWT", "kid": signer.kid}
    ttl = SETTINGS.access_token_ttl_minutes * 60
    assert decoded.claims == {
        "iss": ISSUER, "sub": str(USER), "aud": "wsc_app", "azp": "wsc_app",
        "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + ttl,
        "auth_time": int(NOW.timestamp()) - 60, "amr": ["pwd"], "sid": "s1", "nonce": "n-1",
        "email": "ann@example.com", "email_verified": True,
        "workspace_id": str(WORKSPACE.id), "workspace_slug": "acme", "workspace_role": "admin"}
    # an ID token is no access token, even for our own audience
    _refused(token, keyset, "type")
    with pytest.raises(ValueError, match="sub"):
        mint_id_token(signer, SETTINGS, subject="x", client_id="c", auth_time=NOW, sid=None,
                      claims={"sub": "someone else"})


def test_alg_none_is_refused(signer: Signer, keyset: KeySet) -> None:
    real = _access(signer)
    _, body, _ = real.split(".")
    forged = f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': signer.kid})}.{body}."
    assert looks_like_jwt(forged)
    _refused(forged, keyset, "algorithm")
    for alg in ("None", "NONE", "rs256", "RS512", "PS256", "ES256"):
        header = _b64({"alg": alg, "typ": "at+jwt", "kid": signer.kid})
        _refused(f"{header}.{body}.{real.split('.')[2]}", keyset, "algorithm")


def test_hs256_signed_with_the_public_key_is_refused(rsa: RSAKey, signer: Signer,
                                                     keyset: KeySet) -> None:
    # Built by hand: joserfc itself refuses a public key as an HMAC secret.
    _, body, _ = _access(signer).split(".")
    header = _b64({"alg": "HS256", "typ": "at+jwt", "kid": signer.kid})
    for secret in (rsa.as_pem(private=False), json.dumps(rsa.as_dict(private=False)).encode()):
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        _refused(f"{header}.{body}.{_b64(mac)}", keyset, "algorithm")
    # and a symmetric key in the key set under our kid is never used to verify
    confused = KeySet([OctKey.import_key("s" * 32, {"kid": signer.kid})])
    _refused(_access(signer), confused, "unknown_kid")


def test_a_token_of_another_key_or_a_changed_body_is_refused(signer: Signer,
                                                            keyset: KeySet) -> None:
    other = RSAKey.generate_key(2048, auto_kid=True)
    _refused(_access(Signer(other.kid or "", other)), keyset, "unknown_kid")
    # another key claiming our kid
    _refused(_access(Signer(signer.kid, other)), keyset, "signature")
    header, body, signature = _access(signer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    changed = _b64({**claims, "scope": "openid workspace members:write"})
    _refused(f"{header}.{changed}.{signature}", keyset, "signature")
    no_kid = _b64({"alg": "RS256", "typ": "at+jwt"})
    _refused(f"{no_kid}.{body}.{signature}", keyset, "unknown_kid")


def test_issuer_audience_and_type_are_checked(signer: Signer, keyset: KeySet) -> None:
    token = _access(signer)
    with pytest.raises(InvalidAccessToken) as refused:
        verify_access_token(token, keyset, issuer="https://evil.example", audience=AUDIENCE,
                            now=NOW)
    assert refused.value.reason == "issuer"
    with pytest.raises(InvalidAccessToken) as refused:
        verify_access_token(token, keyset, issuer=ISSUER, audience="wsc_app", now=NOW)
    assert refused.value.reason == "audience"
    claims = jwt.decode(token, keyset, algorithms=["RS256"]).claims
    for typ in ("JWT", None, "at+JWT-ish"):
        header: dict[str, Any] = {"alg": "RS256", "kid": signer.kid}
        if typ:
            header["typ"] = typ
        _refused(jwt.encode(header, claims, signer.key, algorithms=["RS256"]), keyset, "type")
    upper = jwt.encode({"alg": "RS256", "kid": signer.kid, "typ": "application/AT+JWT"},
                       claims, signer.key, algorithms=["RS256"])
    assert _verify(upper, keyset).jti == claims["jti"]


def test_expiry_and_future_times_allow_thirty_seconds_of_skew(signer: Signer,
                                                              keyset: KeySet) -> None:
    token = _access(signer)
    ttl = timedelta(minutes=SETTINGS.access_token_ttl_minutes)
    assert _verify(token, keyset, now=NOW + ttl + timedelta(seconds=29))
    _refused(token, keyset, "expired", now=NOW + ttl + timedelta(seconds=30))
    assert _verify(token, keyset, now=NOW - timedelta(seconds=30))
    _refused(token, keyset, "not_yet_valid", now=NOW - timedelta(seconds=31))
    claims = jwt.decode(token, keyset, algorithms=["RS256"]).claims
    header = {"alg": "RS256", "typ": "at+jwt", "kid": signer.kid}
    later = jwt.encode(header, {**claims, "nbf": int(NOW.timestamp()) + 60}, signer.key,
                       algorithms=["RS256"])
    _refused(later, keyset, "not_yet_valid")
    for missing in ("exp", "iat", "gid", "jti", "client_id", "sub"):
        partial = {k: v for k, v in claims.items() if k != missing}
        _refused(jwt.encode(header, partial, signer.key, algorithms=["RS256"]), keyset,
                 "claims")


@pytest.mark.parametrize("token", [
    "", "wst_abcdef", "a.b", "a.b.c.d", "a..c", "!!.??.xx", "eyJhbGciOiJSUzI1NiJ9.e30",
    _b64(b"[1, 2]") + "." + _b64(b"{}") + ".sig", _b64(b"\xff\xfe") + ".e30.sig",
])
def test_malformed_tokens_are_refused(token: str, keyset: KeySet) -> None:
    _refused(token, keyset, "malformed")


def test_looks_like_jwt_tells_jwts_from_opaque_tokens(signer: Signer) -> None:
    assert looks_like_jwt(_access(signer))
    assert not looks_like_jwt("wst_" + "A" * 43)
    assert not looks_like_jwt("a.b") and not looks_like_jwt("a b.c.d")
    assert tokens.unverified_kid(_access(signer)) == signer.kid
    assert tokens.unverified_kid("wst_x") is None
