"""Signing keys in the database: the first key, what signs and what is published over a
rotation, and the per-process verification cache."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import time_machine
from fastapi.testclient import TestClient
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.api.conftest import Api
from tests.api.test_housekeeping import _sweep
from workspaces.db import create_app_engine, parse_url
from workspaces.oauth import keys, tokens
from workspaces.settings import Settings

T = TypeVar("T")
GRANT = uuid.UUID("3f1e0b5c-7d52-4a8e-9a61-0c7b9b8d2e11")


def in_db(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work(conn)` in one committed transaction, as a request or a CLI command runs it."""
    async def run() -> T:
        engine = create_app_engine(parse_url(settings.database_url), pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _mint(settings: Settings, signer: tokens.Signer) -> str:
    return tokens.mint_access_token(signer, settings, subject="wsc_backend",
                                    client_id="wsc_backend", scopes=["members:read"],
                                    grant_id=GRANT).token


def _verify(settings: Settings, token: str) -> tokens.AccessClaims:
    return in_db(settings, lambda conn: keys.verified_access_token(conn, settings, token))


def _signer(settings: Settings) -> tokens.Signer:
    return in_db(settings, lambda conn: keys.signing_key(conn, settings))


def _kids(settings: Settings) -> list[str]:
    async def published(conn: AsyncConnection) -> list[str]:
        return [jwk["kid"] for jwk in await keys.published_keys(conn, settings)]

    return in_db(settings, published)


def test_the_first_key_is_made_at_start_and_signs(api: Api, settings: Settings) -> None:
    rows = api.db.sql("SELECT kid, alg, public_jwk, sealed_private_key, retired_at "
                      "FROM signing_keys")
    assert len(rows) == 1
    kid, alg, public_jwk, sealed, retired = rows[0]
    assert alg == "RS256" and retired is None
    jwk = public_jwk if isinstance(public_jwk, dict) else json.loads(str(public_jwk))
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}  # no private part
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS256", "sig", kid)
    assert "PRIVATE" not in str(sealed) and "BEGIN" not in str(sealed)
    signer = _signer(settings)
    assert signer.kid == kid
    assert _kids(settings) == [kid]
    claims = _verify(settings, _mint(settings, signer))
    assert claims.client_id == "wsc_backend"


def test_signing_makes_the_first_key_when_the_start_could_not(api: Api,
                                                              settings: Settings) -> None:
    api.db.sql("DELETE FROM signing_keys")

    async def twice(conn: AsyncConnection) -> tuple[str | None, str | None]:
        return (await keys.ensure_first_key(conn, settings),
                await keys.ensure_first_key(conn, settings))

    made, again = in_db(settings, twice)
    assert made is not None and again is None
    assert _signer(settings).kid == made
    assert api.db.sql("SELECT count(*) FROM signing_keys") == [(1,)]


def test_a_rotation_publishes_first_and_signs_only_after_the_cache_age(
        api: Api, settings: Settings) -> None:
    old = _signer(settings)
    start = datetime.now(UTC)
    max_age = timedelta(seconds=settings.jwks_max_age_seconds)
    with time_machine.travel(start, tick=False):
        new = in_db(settings, lambda conn: keys.rotate(conn, settings))
        assert new.state == "pending" and new.activates_at == start + max_age
        assert _signer(settings).kid == old.kid  # never the unpublished-long-enough key
        assert _kids(settings) == [new.kid, old.kid]
        old_token = _mint(settings, old)
    with time_machine.travel(start + max_age - timedelta(microseconds=1), tick=False):
        assert _signer(settings).kid == old.kid
    with time_machine.travel(start + max_age, tick=False):
        signer = _signer(settings)
        assert signer.kid == new.kid
        assert _verify(settings, _mint(settings, signer)).client_id == "wsc_backend"
        assert _verify(settings, old_token).client_id == "wsc_backend"
    ttl = timedelta(minutes=settings.access_token_ttl_minutes)
    with time_machine.travel(start + max_age + ttl + tokens.SKEW - timedelta(seconds=1),
                             tick=False):
        assert _kids(settings) == [new.kid, old.kid]  # its last tokens may still be valid
    with time_machine.travel(start + max_age + ttl + tokens.SKEW, tick=False):
        assert _kids(settings) == [new.kid]


def _rotate(settings: Settings) -> keys.KeyInfo:
    return in_db(settings, lambda conn: keys.rotate(conn, settings))


def _listed(settings: Settings) -> list[tuple[str, str]]:
    return [(k.kid, k.state) for k in in_db(settings, lambda c: keys.list_keys(c, settings))]


def test_discovery_names_every_endpoint_and_what_they_support(api: Api) -> None:
    response = api.client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    issuer = "http://testserver"
    assert body["issuer"] == issuer
    assert {k: v for k, v in body.items() if k.endswith(("_endpoint", "_uri"))} == {
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "end_session_endpoint": f"{issuer}/oauth/logout"}
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token",
                                             "client_credentials"]
    assert body["id_token_signing_alg_values_supported"] == ["RS256"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "none"]
    assert "none" not in body["introspection_endpoint_auth_methods_supported"]
    assert "workspace" in body["scopes_supported"]
    assert "members:write" in body["scopes_supported"]
    assert {"workspace_role", "workspaces", "sid", "auth_time"} <= set(body["claims_supported"])
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["request_uri_parameter_supported"] is False
    assert body["prompt_values_supported"] == ["none", "login", "consent"]


def test_the_jwks_is_cacheable_for_the_rotation_delay_with_an_etag(
        api: Api, settings: Settings) -> None:
    first = api.client.get("/oauth/jwks")
    assert first.status_code == 200
    max_age = settings.jwks_max_age_seconds
    assert first.headers["cache-control"] == f"public, max-age={max_age}"
    assert first.headers["access-control-allow-origin"] == "*"
    (jwk,) = first.json()["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert jwk["kid"] == _signer(settings).kid
    etag = first.headers["etag"]
    same = api.client.get("/oauth/jwks", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.headers["etag"] == etag
    assert same.headers["cache-control"] == f"public, max-age={max_age}"
    new = _rotate(settings)
    changed = api.client.get("/oauth/jwks", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [k["kid"] for k in changed.json()["keys"]] == [new.kid, jwk["kid"]]


def test_reading_the_jwks_never_makes_a_key(api: Api) -> None:
    api.db.sql("DELETE FROM signing_keys")
    response = api.client.get("/oauth/jwks")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "signing_keys_missing"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["retry-after"]
    assert api.client.get("/.well-known/openid-configuration").status_code == 200
    assert api.db.sql("SELECT count(*) FROM signing_keys") == [(0,)]


def test_key_states_over_a_rotation_and_a_second_rotation_is_refused_meanwhile(
        api: Api, settings: Settings) -> None:
    old = _signer(settings).kid
    start = datetime.now(UTC)
    max_age = timedelta(seconds=settings.jwks_max_age_seconds)
    until = start + max_age + timedelta(minutes=settings.access_token_ttl_minutes) + tokens.SKEW
    with time_machine.travel(start, tick=False):
        new = _rotate(settings)
        assert _listed(settings) == [(new.kid, "pending"), (old, "signing")]
        (_, listed_old) = in_db(settings, lambda c: keys.list_keys(c, settings))
        assert listed_old.retired_at == start + max_age and listed_old.published_until == until
        with pytest.raises(keys.RotationPending) as refused:
            _rotate(settings)
        assert refused.value.status == 409
        assert new.kid in refused.value.message
        when = (start + max_age).isoformat(timespec="seconds").replace("+00:00", "Z")
        assert f"starts signing at {when}." in refused.value.message
        assert refused.value.fix == "workspaces keys list"
    with time_machine.travel(start + max_age, tick=False):
        assert _listed(settings) == [(new.kid, "signing"), (old, "retired")]
        third = _rotate(settings)  # the earlier rotation is done: a new one may start
        assert third.activates_at == start + 2 * max_age
    with time_machine.travel(until, tick=False):
        assert _listed(settings) == [(third.kid, "signing"), (new.kid, "retired"),
                                     (old, "expired")]
        assert old not in _kids(settings)


def test_housekeeping_deletes_keys_a_day_after_they_left_the_jwks(
        api: Api, settings: Settings) -> None:
    from workspaces import housekeeping

    old = _signer(settings).kid
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        new = _rotate(settings)
    max_age = timedelta(seconds=settings.jwks_max_age_seconds)
    gone = (start + max_age + timedelta(minutes=settings.access_token_ttl_minutes)
            + tokens.SKEW + housekeeping.KEEP)

    with time_machine.travel(gone - timedelta(seconds=1), tick=False):
        assert _sweep(settings).signing_keys == 0
        assert _listed(settings) == [(new.kid, "signing"), (old, "expired")]
    with time_machine.travel(gone + timedelta(seconds=1), tick=False):
        assert _sweep(settings).signing_keys == 1
        assert _listed(settings) == [(new.kid, "signing")]


def test_instances_racing_for_the_first_key_make_one(api: Api, settings: Settings) -> None:
    from tests.conftest import at_once

    api.db.sql("DELETE FROM signing_keys")
    made = at_once(*[lambda: in_db(settings, lambda c: keys.ensure_first_key(c, settings))
                     for _ in range(4)])
    assert len([kid for kid in made if kid]) == 1
    assert api.db.sql("SELECT kid FROM signing_keys") == [(next(k for k in made if k),)]


def test_a_rotation_with_another_secret_key_is_refused(api: Api, settings: Settings) -> None:
    other = settings.model_copy(update={"secret_key": "another-secret-key-of-enough-length"})
    with pytest.raises(keys.SigningKeyUnreadable):
        _rotate(other)
    with pytest.raises(keys.SigningKeyUnreadable):
        _signer(other)
    assert api.db.sql("SELECT count(*) FROM signing_keys") == [(1,)]


def test_the_verification_cache_reads_again_for_an_unknown_kid_at_most_every_second(
        api: Api, settings: Settings) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)  # past any earlier read of this database

    def known(kid: str | None = None) -> set[str]:
        async def read(conn: AsyncConnection) -> set[str]:
            found = await keys.verification_keys(conn, settings, kid=kid)
            return {k.kid for k in found.keys if k.kid}

        return in_db(settings, read)

    with time_machine.travel(start, tick=False) as traveller:
        old = known()
        new = _rotate(settings)  # another instance's rotation: not in this process's cache
        assert known() == old  # cached
        assert known(new.kid) == old  # an unknown kid, but the last read is too recent
        traveller.shift(timedelta(seconds=keys.UNKNOWN_KID_SECONDS))
        assert known() == old  # no kid asked for: the cache is still fresh
        assert known(new.kid) == old | {new.kid}  # read again at once
        api.db.sql("DELETE FROM signing_keys")
        traveller.shift(timedelta(seconds=keys.REFRESH_SECONDS - 0.001))
        assert known() == old | {new.kid}
        traveller.shift(timedelta(seconds=0.001))
        assert known() == set()  # refreshed after REFRESH_SECONDS


def test_an_operator_lists_and_rotates_keys_running_each_next_line_as_printed(
        api: Api, settings: Settings) -> None:
    import json
    import shlex

    from tests.conftest import Cli
    from workspaces.logs import shown_url

    cli = Cli(settings.database_url, {"SECRET_KEY": settings.secret_key or ""})
    api.db.sql("DELETE FROM signing_keys")
    listed = cli("keys", "list", "--database-url", cli.url)
    assert listed.exit_code == 0, listed.output
    made = listed.stdout.splitlines()[0]
    assert made.startswith("Made the first signing key ")
    kid = made.removeprefix("Made the first signing key ").rstrip(".")
    assert f"{kid}  signing" in listed.stdout
    as_json = json.loads(cli("keys", "list", "--json", "--database-url", cli.url).stdout)
    assert as_json["ok"] is True and as_json["next"] == []
    assert [(k["kid"], k["state"], k["alg"]) for k in as_json["keys"]] == [
        (kid, "signing", "RS256")]

    rotated = cli("keys", "rotate", "--database-url", cli.url)
    assert rotated.exit_code == 0, rotated.output
    assert "Published key " in rotated.stdout
    pasted = f"workspaces keys list --database-url {shlex.quote(shown_url(cli.url).paste)}"
    assert f"next: {pasted}" in rotated.stdout.splitlines()
    again = cli(*shlex.split(pasted)[1:])
    assert again.exit_code == 0, again.output
    states = [line.split()[1] for line in again.stdout.splitlines()]
    assert states == ["pending", "signing"]
    assert _signer(settings).kid == kid  # the servers sign with the old key meanwhile

    refused = cli("keys", "rotate", "--database-url", cli.url)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error[rotation_pending]: A rotation is already under way")
    assert f"  next: {pasted}" in refused.stderr.splitlines()
    refused_json = json.loads(cli("keys", "rotate", "--json", "--database-url", cli.url).stdout)
    assert refused_json["ok"] is False
    assert refused_json["error"]["code"] == "rotation_pending"
    assert refused_json["error"]["next"] == [pasted]


def _mint_in(client: TestClient) -> str:
    """An access token signed by the key this instance signs with now (its own engine)."""
    app = client.app

    async def mint() -> str:
        async with app.state.engine.begin() as conn:  # type: ignore[attr-defined]
            settings: Settings = app.state.settings  # type: ignore[attr-defined]
            return _mint(settings, await keys.signing_key(conn, settings))

    return client.portal.call(mint)  # type: ignore[union-attr]


def _verified_by(client: TestClient, token: str) -> str:
    """The token's client_id, verified with the JWKS this instance serves now and with its
    own verification keys; the kid it was signed with must be in that JWKS."""
    app = client.app
    settings: Settings = app.state.settings  # type: ignore[attr-defined]
    served = client.get("/oauth/jwks")
    assert served.status_code == 200
    jwks = KeySet.import_key_set(served.json())
    assert tokens.unverified_kid(token) in {k.kid for k in jwks.keys}, "signed unpublished"
    claims = tokens.verify_access_token(token, jwks, issuer=tokens.issuer(settings),
                                        audience=tokens.api_audience(settings))

    async def own() -> tokens.AccessClaims:
        async with app.state.engine.connect() as conn:  # type: ignore[attr-defined]
            found = await keys.verification_keys(conn, settings,
                                                 kid=tokens.unverified_kid(token))
        return tokens.verify_access_token(token, found, issuer=tokens.issuer(settings),
                                          audience=tokens.api_audience(settings))

    assert client.portal.call(own) == claims  # type: ignore[union-attr]
    return claims.client_id


def test_two_instances_through_a_rotation_under_load(settings: Settings) -> None:
    """Two servers on one database; one rotates while both sign. Every token either signs
    is in the other's JWKS when it is minted, and verifies with both until it expires."""
    import threading

    from workspaces.app import create_app

    start = datetime.now(UTC)
    max_age = timedelta(seconds=settings.jwks_max_age_seconds)
    ttl = timedelta(minutes=settings.access_token_ttl_minutes)
    with time_machine.travel(start, tick=False) as traveller, \
            TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        instances = (one, two)
        minted: list[tuple[datetime, str]] = []
        failures: list[BaseException] = []
        some, more, stop = threading.Event(), threading.Event(), threading.Event()

        def load() -> None:  # one instance keeps signing while the other rotates
            try:
                while not stop.is_set():
                    token = _mint_in(one)
                    assert _verified_by(two, token) == "wsc_backend"
                    minted.append((start, token))
                    (some if len(minted) < 6 else more).set()
            except BaseException as error:
                failures.append(error)
                some.set()
                more.set()

        worker = threading.Thread(target=load)
        worker.start()
        assert some.wait(60)
        new = two.portal.call(_rotate_in, two)  # type: ignore[union-attr]
        assert more.wait(60)
        stop.set()
        worker.join(60)
        assert not failures, failures
        old_kid = tokens.unverified_kid(minted[0][1])
        assert {tokens.unverified_kid(t) for _, t in minted} == {old_kid} != {new.kid}

        for moment in (start + max_age / 2, start + max_age, start + max_age + ttl / 2,
                       start + max_age + ttl + tokens.SKEW):
            traveller.move_to(moment)
            for signer in instances:
                token = _mint_in(signer)
                assert tokens.unverified_kid(token) == (
                    new.kid if moment >= start + max_age else old_kid)
                minted.append((moment, token))
            for issued, token in minted:
                if moment < issued + ttl + tokens.SKEW:  # still valid: verifies with both
                    for instance in instances:
                        assert _verified_by(instance, token) == "wsc_backend"
        assert [k["kid"] for k in one.get("/oauth/jwks").json()["keys"]] == [new.kid]


async def _rotate_in(client: TestClient) -> keys.KeyInfo:
    app = client.app
    async with app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        return await keys.rotate(conn, app.state.settings)  # type: ignore[attr-defined]


def test_a_rotation_with_no_cache_delay_signs_at_once(api: Api, settings: Settings) -> None:
    """The leaked-key recipe (docs/integration.md): JWKS_MAX_AGE_SECONDS=0 for the rotation."""
    old = _signer(settings).kid
    now = datetime.now(UTC)
    with time_machine.travel(now, tick=False):
        new = _rotate(settings.model_copy(update={"jwks_max_age_seconds": 0}))
        assert new.state == "signing" and _signer(settings).kid == new.kid
        assert _listed(settings) == [(new.kid, "signing"), (old, "retired")]
        assert _kids(settings) == [new.kid, old]


def test_a_server_on_an_unmigrated_database_starts_and_says_why_it_has_no_key(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from workspaces.app import create_app

    settings = Settings(database_url=db_url, secret_key="test-secret-key-of-enough-length",
                        email_backend="console", _env_file=None)  # type: ignore[call-arg]
    with caplog.at_level("WARNING", logger="workspaces.oauth"), \
            TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/oauth/jwks").status_code == 503
    assert any("no signing key made at start" in r.getMessage() for r in caplog.records)
