"""The client registry: what a client may be registered with (redirect URIs matched exactly,
so their form is checked; scopes; the workspaces its service tokens reach), secrets shown once
and stored hashed, updates, rotation and deletion, on both databases; and `workspaces clients
...` with every `next:` line run as printed."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Cli, Run, json_of, run_as_printed
from tests.factories import Factory
from workspaces import clock
from workspaces.db import create_app_engine, parse_url
from workspaces.errors import AppError
from workspaces.logs import shown_url
from workspaces.models import (
    oauth_client_workspaces,
    oauth_clients,
    oauth_codes,
    oauth_consents,
    oauth_grants,
    oauth_refresh_tokens,
)
from workspaces.oauth import clients
from workspaces.oauth.clients import KEEP, UriEdit
from workspaces.oauth.errors import OAuthError
from workspaces.security import hash_token, new_token
from workspaces.settings import Settings

T = TypeVar("T")
WEB = "https://app.example.com/callback"


def run(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`work` in one transaction on the server's kind of engine, committed; on a thread of its
    own, so that it runs beside a loop of the caller's (Playwright's) too."""
    async def go() -> T:
        engine = create_app_engine(parse_url(url), pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, go()).result()


def refused(url: str, work: Callable[[AsyncConnection], Awaitable[Any]]) -> AppError:
    with pytest.raises(AppError) as caught:
        run(url, work)
    return caught.value


async def add_grant(conn: AsyncConnection, client_id: str, user_id: uuid.UUID | None, *,
                    scopes: list[str], expires_in: timedelta = timedelta(days=30),
                    refresh: bool = True, revoked: bool = False) -> uuid.UUID:
    """A grant as the token endpoint writes it (with a refresh token unless `refresh` is
    False)."""
    now, grant_id = clock.now(), uuid.uuid4()
    await conn.execute(insert(oauth_grants).values(
        id=grant_id, client_id=client_id, user_id=user_id, scopes=scopes, workspace_id=None,
        session_id=None, auth_time=now if user_id else None, created_at=now,
        expires_at=now + expires_in, revoked_at=now if revoked else None))
    if refresh:
        await conn.execute(insert(oauth_refresh_tokens).values(
            token_hash=hash_token(new_token("wsr_")), grant_id=grant_id, created_at=now,
            expires_at=now + expires_in, used_at=None))
    return grant_id


def _settings(url: str) -> Settings:
    return Settings(database_url=url, secret_key="test-secret-key-of-enough-length",
                    _env_file=None)  # type: ignore[call-arg]


# Redirect URIs: their form (no database)

ACCEPTED = [
    WEB,
    "https://app.example.com:8443/auth/callback?tenant=acme&x=%20y",
    "HTTPS://App.Example.com/Callback",  # kept as given: matching is exact
    "http://127.0.0.1:8080/callback",
    "http://[::1]:8080/callback",
    "http://localhost:3000/callback",
]
ACCEPTED_NATIVE = ["com.example.app:/oauth2redirect", "com.example.app://callback",
                   "http://127.0.0.1/callback"]
REFUSED = {
    "": "cannot be empty",
    "/callback": "not absolute",
    "app.example.com/callback": "not absolute",
    "https://app.example.com/callback#": "fragment",
    "https://app.example.com/callback#frag": "fragment",
    "https://user:pw@app.example.com/callback": "user name or password",
    "https://app.example.com@evil.example.com/callback": "user name or password",
    "http://app.example.com/callback": "use https",
    "http://127.0.0.1.nip.io/callback": "use https",
    "http://localhost.evil.example.com/callback": "use https",
    "https://*.example.com/callback": "wildcard",
    "https://app.example.com/call back": "percent-encode",
    "https://evil.example.com\\@app.example.com/": "percent-encode",
    "https://app.example.com/callback/../steal": "path segment",
    "https://app.example.com/%2E%2e/steal": "path segment",
    "https://app.example.com/%zz": "hexadecimal",
    "https://[app.example.com/callback": "IPv6",
    "https://app.example.com:99999/callback": "port",
    "https:///callback": "no host",
    "com.example.app:/callback": "only a public (native) client",
    "javascript://app.example.com/%0aalert(1)": "only a public (native) client",
    "https://app.example.com/" + "x" * 2000: "at most 2000 characters",
}
REFUSED_NATIVE = {
    "javascript:alert(1)": "reverse domain name",
    "data:text/html,hi": "reverse domain name",
    "myapp://callback": "reverse domain name",
    "com.example.app:": "nothing after its scheme",
    "com.example.app://user@callback": "user name or password",
}


@pytest.mark.parametrize("uri", ACCEPTED)
def test_a_redirect_uri_is_kept_exactly_as_given(uri: str) -> None:
    assert clients.check_uri(uri, public=False) == uri


@pytest.mark.parametrize("uri", ACCEPTED_NATIVE)
def test_a_native_app_may_use_its_own_scheme_or_loopback(uri: str) -> None:
    assert clients.check_uri(uri, public=True) == uri


@pytest.mark.parametrize(("uri", "why", "public"), [
    *((uri, why, False) for uri, why in REFUSED.items()),
    *((uri, why, True) for uri, why in REFUSED_NATIVE.items())])
def test_a_redirect_uri_that_could_send_codes_astray_is_refused(uri: str, why: str,
                                                                public: bool) -> None:
    with pytest.raises(AppError) as caught:
        clients.check_uri(uri, public=public)
    assert caught.value.code == "invalid_redirect_uri"
    assert caught.value.extra["field"] == "redirect_uris"
    assert why in caught.value.message
    assert len(caught.value.message) < 400  # a long URI is shown cut


def test_post_logout_uris_follow_the_same_rules_under_their_own_code() -> None:
    with pytest.raises(AppError) as caught:
        clients.check_uri("http://app.example.com/bye", public=False, kind=clients.POST_LOGOUT)
    assert caught.value.code == "invalid_post_logout_redirect_uri"
    assert caught.value.message.startswith("The post-logout redirect URI")


def test_at_most_twenty_uris_and_repeats_dropped() -> None:
    twenty = [f"https://app.example.com/cb{n}" for n in range(20)]
    assert clients.check_uris([*twenty, twenty[0]], public=False, required=True) == twenty
    with pytest.raises(AppError, match="at most 20"):
        clients.check_uris([*twenty, "https://app.example.com/cb20"], public=False,
                           required=True)
    with pytest.raises(AppError, match="at least one"):
        clients.check_uris([], public=False, required=True)


# Creating clients


def test_a_confidential_client_gets_a_secret_shown_once_and_stored_hashed(
        app_db: str) -> None:
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="  Acme   Web ", redirect_uris=[WEB, "http://127.0.0.1:8080/callback"],
        post_logout_redirect_uris=["https://app.example.com/bye"]))
    client, secret = made.client, made.secret
    assert client.id.startswith("wsc_") and len(client.id) == 20
    assert secret is not None and secret.startswith("wscs_") and len(secret) > 40
    assert client.name == "Acme Web"  # a name's rules: whitespace collapsed
    assert (client.public, client.trusted, client.workspaces) == (False, False, None)
    assert client.scopes == ["openid", "email", "profile", "offline_access", "workspaces",
                             "workspace"]
    assert client.redirect_uris == [WEB, "http://127.0.0.1:8080/callback"]
    assert client.post_logout_redirect_uris == ["https://app.example.com/bye"]

    async def stored(conn: AsyncConnection) -> Any:
        return (await conn.execute(select(oauth_clients).where(
            oauth_clients.c.id == client.id))).one()

    row = run(app_db, stored)
    assert row.secret_hash == hash_token(secret) and secret not in str(tuple(row))
    # The secret authenticates it; a wrong one does not.
    settings = _settings(app_db)
    found = run(app_db, lambda conn: clients.authenticate_client(
        conn, settings, client_id=client.id, secret=secret, address="192.0.2.1"))
    assert found.id == client.id and not found.public
    wrong = refused(app_db, lambda conn: clients.authenticate_client(
        conn, settings, client_id=client.id, secret=secret + "x", address="192.0.2.1"))
    assert isinstance(wrong, OAuthError) and wrong.code == "invalid_client"
    # Shown again nowhere.
    shown = run(app_db, lambda conn: clients.show_client(conn, client_id=client.id))
    assert secret not in repr(shown) and shown == client


def test_a_public_client_has_no_secret_and_no_service_scope(app_db: str) -> None:
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Acme for iOS", redirect_uris=["com.example.acme:/callback"], public=True,
        scopes=["openid workspace", "offline_access"]))
    assert made.secret is None and made.client.public
    assert made.client.scopes == ["openid", "offline_access", "workspace"]
    settings = _settings(app_db)
    found = run(app_db, lambda conn: clients.authenticate_client(
        conn, settings, client_id=made.client.id, secret=None, address="192.0.2.1"))
    assert found.public and found.secret_hash is None

    error = refused(app_db, lambda conn: clients.create_client(
        conn, name="Sync", redirect_uris=["com.example.acme:/callback"], public=True,
        scopes=["openid", "members:read"]))
    assert error.code == "invalid_scope" and "members:read" in error.message
    assert "confidential" in error.message


def test_a_backend_with_service_scopes_only_needs_no_redirect_uri(app_db: str) -> None:
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Billing sync", redirect_uris=[], scopes=["members:read", "events:read"]))
    assert made.client.redirect_uris == [] and made.secret
    error = refused(app_db, lambda conn: clients.create_client(
        conn, name="Billing", redirect_uris=[], scopes=["openid", "members:read"]))
    assert error.code == "invalid_redirect_uri" and "at least one" in error.message
    default = refused(app_db, lambda conn: clients.create_client(
        conn, name="Billing", redirect_uris=[]))
    assert default.code == "invalid_redirect_uri"


def test_every_problem_of_a_registration_is_told_at_once(app_db: str) -> None:
    error = refused(app_db, lambda conn: clients.create_client(
        conn, name="\u202eevil", redirect_uris=["http://app.example.com/callback"],
        post_logout_redirect_uris=["https://app.example.com/bye#x"], scopes=["admin"]))
    assert error.code == "invalid_name"
    assert [f["field"] for f in error.extra["fields"]] == [
        "name", "scopes", "redirect_uris", "post_logout_redirect_uris"]
    assert "'admin' is not a scope" in error.message
    assert run(app_db, clients.list_clients) == []  # nothing half-made
    too_long = refused(app_db, lambda conn: clients.create_client(
        conn, name="x" * 201, redirect_uris=[WEB]))
    assert too_long.code == "invalid_name" and "1 to 200" in too_long.message
    none = refused(app_db, lambda conn: clients.create_client(
        conn, name="Acme", redirect_uris=[WEB], scopes=[]))
    assert none.code == "invalid_scope" and "at least one" in none.message


def test_service_tokens_can_be_limited_to_named_workspaces(app_db: str) -> None:
    make = Factory(app_db)
    ann = make.user("ann@example.com")
    acme, globex, _ = (make.workspace(ann, "Acme"), make.workspace(ann, "Globex"),
                       make.workspace(ann, "Initech"))
    make.close()
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Sync", redirect_uris=[], scopes=["members:read"],
        workspace_slugs=[globex.slug, acme.slug, acme.slug]))
    assert made.client.workspaces == sorted([acme.slug, globex.slug])
    client = run(app_db, lambda conn: clients.get_client(conn, made.client.id))
    assert client is not None and client.workspace_ids == frozenset({acme.id, globex.id})
    assert client.reaches(acme.id) and not client.reaches(uuid.uuid4())
    everywhere = run(app_db, lambda conn: clients.create_client(
        conn, name="Everywhere", redirect_uris=[], scopes=["members:read"]))
    found = run(app_db, lambda conn: clients.get_client(conn, everywhere.client.id))
    assert found is not None and found.workspace_ids is None

    unknown = refused(app_db, lambda conn: clients.create_client(
        conn, name="Sync", redirect_uris=[], scopes=["members:read"],
        workspace_slugs=[acme.slug, "no-such-place"]))
    assert unknown.code == "workspace_not_found" and "'no-such-place'" in unknown.message
    pointless = refused(app_db, lambda conn: clients.create_client(
        conn, name="Web", redirect_uris=[WEB], workspace_slugs=[acme.slug]))
    assert pointless.code == "invalid_workspaces" and "service scope" in pointless.message


# Changing and ending clients


def test_updates_change_what_is_given_and_keep_the_rest(app_db: str) -> None:
    make = Factory(app_db)
    acme = make.workspace(make.user("ann@example.com"), "Acme")
    make.close()
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Acme", redirect_uris=[WEB, "https://old.example.com/cb"],
        scopes=["openid", "members:read"]))
    cid = made.client.id

    def update(**changes: Any) -> clients.ClientInfo:
        return run(app_db, lambda conn: clients.update_client(conn, client_id=cid, **changes))

    after = update(name="Acme Web", trusted=True, redirect_uris=UriEdit(
        add=("https://new.example.com/cb",), remove=("https://old.example.com/cb",)))
    assert (after.name, after.trusted) == ("Acme Web", True)
    assert after.redirect_uris == [WEB, "https://new.example.com/cb"]
    assert after.scopes == ["openid", "members:read"] and after.updated_at > after.created_at
    assert update().updated_at == after.updated_at  # nothing given, nothing changed
    assert update(redirect_uris=UriEdit(replace=(WEB,))).redirect_uris == [WEB]
    assert update(workspace_slugs=[acme.slug]).workspaces == [acme.slug]
    assert update(workspace_slugs=KEEP, scopes=["openid members:write"]).workspaces == [
        acme.slug]
    assert update(workspace_slugs=None).workspaces is None
    logout = update(post_logout_redirect_uris=UriEdit(add=("https://app.example.com/bye",)))
    assert logout.post_logout_redirect_uris == ["https://app.example.com/bye"]

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"redirect_uris": UriEdit(remove=("https://other.example.com/cb",))},
         "invalid_redirect_uri", "is not registered"),
        ({"redirect_uris": UriEdit(replace=(WEB,), add=("https://b.example.com/cb",))},
         "invalid_redirect_uri", "not both"),
        ({"redirect_uris": UriEdit(remove=(WEB,))}, "invalid_redirect_uri", "at least one"),
        ({"redirect_uris": UriEdit(add=("com.example.app:/cb",))}, "invalid_redirect_uri",
         "public"),
        ({"scopes": ["openid", "root"]}, "invalid_scope", "'root'"),
        ({"name": ""}, "invalid_name", "1 to 200"),
        ({"workspace_slugs": ["nowhere"]}, "workspace_not_found", "'nowhere'"),
    ]
    for changes, code, words in cases:
        async def change(conn: AsyncConnection, changes: dict[str, Any] = changes) -> Any:
            return await clients.update_client(conn, client_id=cid, **changes)

        error = refused(app_db, change)
        assert (error.code, words in error.message) == (code, True), error.message
    missing = refused(app_db, lambda conn: clients.update_client(conn, client_id="wsc_nope"))
    assert missing.code == "client_not_found"
    assert run(app_db, lambda conn: clients.show_client(conn, client_id=cid)).redirect_uris \
        == [WEB]


def test_a_public_client_stays_public_and_has_no_secret_to_rotate(app_db: str) -> None:
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Acme for iOS", redirect_uris=["com.example.acme:/cb"], public=True))
    cid = made.client.id
    error = refused(app_db, lambda conn: clients.rotate_secret(conn, client_id=cid))
    assert error.code == "public_client" and error.status == 409
    service = refused(app_db, lambda conn: clients.update_client(
        conn, client_id=cid, scopes=["openid", "members:read"]))
    assert service.code == "invalid_scope"


def test_a_rotated_secret_replaces_the_old_at_once_and_ends_its_service_tokens(
        app_db: str) -> None:
    make = Factory(app_db)
    ann = make.user("ann@example.com")
    make.close()
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Acme", redirect_uris=[WEB], scopes=["openid", "members:read"]))
    cid, old = made.client.id, made.secret

    async def grants(conn: AsyncConnection) -> tuple[uuid.UUID, uuid.UUID]:
        return (await add_grant(conn, cid, None, scopes=["members:read"], refresh=False),
                await add_grant(conn, cid, ann.id, scopes=["openid"]))

    service_grant, user_grant = run(app_db, grants)
    rotated = run(app_db, lambda conn: clients.rotate_secret(conn, client_id=cid))
    new = rotated.secret
    assert new and new != old and rotated.client.secret_rotated_at is not None
    settings = _settings(app_db)

    def authenticates(secret: str | None) -> bool:
        try:
            run(app_db, lambda conn: clients.authenticate_client(
                conn, settings, client_id=cid, secret=secret, address="192.0.2.1"))
        except OAuthError as error:
            assert error.code == "invalid_client"
            return False
        return True

    assert not authenticates(old)
    assert authenticates(new)

    async def state(conn: AsyncConnection) -> dict[uuid.UUID, Any]:
        rows = await conn.execute(select(oauth_grants.c.id, oauth_grants.c.revoked_at))
        return {row.id: row.revoked_at for row in rows}

    revoked = run(app_db, state)
    assert revoked[service_grant] is not None  # what the old secret obtained stops too
    assert revoked[user_grant] is None  # users stay signed in


def test_deleting_a_client_takes_its_consents_grants_codes_and_tokens(app_db: str) -> None:
    make = Factory(app_db)
    ann = make.user("ann@example.com")
    acme = make.workspace(ann, "Acme")
    make.close()
    made = run(app_db, lambda conn: clients.create_client(
        conn, name="Acme", redirect_uris=[WEB], scopes=["openid", "members:read"],
        workspace_slugs=[acme.slug]))
    other = run(app_db, lambda conn: clients.create_client(
        conn, name="Other", redirect_uris=[WEB]))
    cid = made.client.id

    async def fill(conn: AsyncConnection) -> None:
        now = clock.now()
        for client_id in (cid, other.client.id):
            await conn.execute(insert(oauth_consents).values(
                user_id=ann.id, client_id=client_id, scopes=["openid"], granted_at=now))
            await add_grant(conn, client_id, ann.id, scopes=["openid"])
            await conn.execute(insert(oauth_codes).values(
                code_hash=hash_token(new_token()), client_id=client_id, user_id=ann.id,
                redirect_uri=WEB, scopes=["openid"], nonce=None, code_challenge=None,
                workspace_id=None, session_id=uuid.uuid4(), auth_time=now, created_at=now,
                expires_at=now + timedelta(seconds=60), used_at=None, grant_id=None))
        await add_grant(conn, cid, None, scopes=["members:read"], refresh=False,
                        revoked=True)

    run(app_db, fill)
    plan = run(app_db, lambda conn: clients.usage(conn, client_id=cid))
    assert (plan.consents, plan.grants) == (1, 1)  # the revoked one is not in force
    gone = run(app_db, lambda conn: clients.delete_client(conn, client_id=cid))
    assert gone.client.id == cid and (gone.consents, gone.grants) == (1, 1)

    async def counts(conn: AsyncConnection) -> dict[str, int]:
        tables = (oauth_clients, oauth_consents, oauth_grants, oauth_codes,
                  oauth_refresh_tokens, oauth_client_workspaces)
        return {t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in tables}

    assert run(app_db, counts) == {  # the other client's rows alone are left
        "oauth_clients": 1, "oauth_consents": 1, "oauth_grants": 1, "oauth_codes": 1,
        "oauth_refresh_tokens": 1, "oauth_client_workspaces": 0}
    again = refused(app_db, lambda conn: clients.delete_client(conn, client_id=cid))
    assert again.code == "client_not_found"


# The command line


@pytest.fixture
def cli(app_db: str) -> Cli:
    return Cli(app_db, {"SECRET_KEY": "operator-secret-key-of-enough-length",
                        "BASE_URL": "https://id.example.com/"})


def _next(run: Run) -> list[str]:
    return [line.split("next: ", 1)[1].split("  #", 1)[0]
            for line in run.output.splitlines() if line.strip().startswith("next: ")]


def test_an_operator_registers_a_client_and_its_secret_is_printed_once(
        cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workspaces.oauth")
    made = cli("clients", "create", "--name", "Acme Web", "--redirect-uri", WEB,
               "--redirect-uri", "http://127.0.0.1:8080/callback", "--trusted",
               "--database-url", cli.url)
    assert made.exit_code == 0, made.output
    secret = next(line.split(": ", 1)[1] for line in made.stdout.splitlines()
                  if line.startswith("client_secret: "))
    assert secret.startswith("wscs_")
    assert "shown only this once" in made.stdout
    assert "issuer is BASE_URL, here https://id.example.com;" in made.stdout
    (show,) = _next(made)
    client_id = show.split()[3]
    pasted = shlex.quote(shown_url(cli.url).paste)
    assert show == f"workspaces clients show {client_id} --database-url {pasted}"
    shown = run_as_printed(cli, show)
    assert shown.exit_code == 0, shown.output
    assert f"client_id:     {client_id}" in shown.stdout and "skipped (trusted" in shown.stdout
    assert "wscs_" not in shown.output
    assert any(f"oauth client {client_id} (Acme Web) registered by an operator" in m
               for m in caplog.messages)
    assert not any(secret in m for m in caplog.messages)

    backend = json_of(cli("clients", "create", "--name", "Billing sync", "--scope",
                        "members:read events:read", "--json", "--database-url", cli.url))
    assert backend["client_secret"].startswith("wscs_")
    assert backend["client"]["redirect_uris"] == [] and backend["client"]["public"] is False
    assert backend["next"] == [f"workspaces clients show {backend['client']['id']} "
                               f"--database-url {pasted}"]
    listed = cli("clients", "list", "--database-url", cli.url)
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 2
    assert "wscs_" not in listed.output
    assert [c["name"] for c in json_of(cli("clients", "list", "--json",
                                         "--database-url", cli.url))["clients"]] == [
        "Acme Web", "Billing sync"]

    native = json_of(cli("clients", "create", "--name", "Acme iOS", "--public", "--redirect-uri",
                       "com.example.acme:/cb", "--json", "--database-url", cli.url))
    assert native["client_secret"] is None and native["client"]["public"] is True


def test_an_operator_updates_rotates_and_deletes_a_client(cli: Cli) -> None:
    make = Factory(cli.url)
    acme = make.workspace(make.user("ann@example.com"), "Acme")
    make.close()
    made = json_of(cli("clients", "create", "--name", "Sync", "--scope", "openid",
                     "--scope", "members:read", "--redirect-uri", WEB, "-w", acme.slug,
                     "--json", "--database-url", cli.url))
    cid, old = made["client"]["id"], made["client_secret"]
    assert made["client"]["workspaces"] == [acme.slug]

    updated = cli("clients", "update", cid, "--add-redirect-uri", "https://b.example.com/cb",
                  "--untrusted", "--all-workspaces", "--name", "Sync 2",
                  "--database-url", cli.url)
    assert updated.exit_code == 0, updated.output
    assert "redirect URI:  https://b.example.com/cb" in updated.stdout
    assert "service reach: every workspace" in updated.stdout
    both = cli("clients", "update", cid, "-w", acme.slug, "--all-workspaces",
               "--database-url", cli.url)
    assert both.exit_code == 1 and "error[invalid_workspaces]" in both.stderr

    rotated = json_of(cli("clients", "rotate-secret", cid, "--json", "--database-url", cli.url))
    assert rotated["client_secret"].startswith("wscs_") and rotated["client_secret"] != old
    assert cli.sql(f"SELECT secret_hash FROM oauth_clients WHERE id = '{cid}'") == [
        (hash_token(rotated["client_secret"]),)]

    # No terminal to ask and no --yes: refused, with the command that confirms.
    unasked = cli("clients", "delete", cid, "--database-url", cli.url)
    assert unasked.exit_code == 1 and "error[confirmation_required]" in unasked.stderr
    assert "This will delete the client Sync 2" in unasked.stdout
    (confirmed,) = _next(unasked)
    assert confirmed.startswith(f"workspaces clients delete {cid} --yes")
    deleted = run_as_printed(cli, confirmed)
    assert deleted.exit_code == 0 and f"Deleted the client Sync 2 ({cid})" in deleted.stdout
    assert cli.sql("SELECT count(*) FROM oauth_clients") == [(0,)]
    missing = cli("clients", "show", cid, "--database-url", cli.url)
    assert missing.exit_code == 1 and "error[client_not_found]" in missing.stderr
    (listing,) = _next(missing)
    assert run_as_printed(cli, listing).stdout.strip() == "No clients registered."


def test_command_line_refusals_are_sentences_with_codes(cli: Cli) -> None:
    bad = cli("clients", "create", "--name", "Acme", "--redirect-uri",
              "http://app.example.com/cb", "--json", "--database-url", cli.url)
    body = json.loads(bad.stdout)
    assert bad.exit_code == 1 and body["ok"] is False
    assert body["error"]["code"] == "invalid_redirect_uri"
    assert "use https" in body["error"]["message"]
    public = cli("clients", "create", "--name", "Acme", "--public", "--redirect-uri", WEB,
                 "--scope", "members:write", "--database-url", cli.url)
    assert public.exit_code == 1 and "error[invalid_scope]" in public.stderr
    nowhere = cli("clients", "create", "--name", "Acme", "--scope", "members:read", "-w",
                  "nope", "--database-url", cli.url)
    assert nowhere.exit_code == 1 and "error[workspace_not_found]" in nowhere.stderr
    assert cli.sql("SELECT count(*) FROM oauth_clients") == [(0,)]
