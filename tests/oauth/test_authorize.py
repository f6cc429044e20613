"""The authorization endpoint through HTTP: every check of the request, redirect URI attacks,
PKCE downgrades, the sign-in detour (prompt, max_age), consent and the workspace picker."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import insert

from tests.api.conftest import Api
from tests.factories import PASSWORD, Factory, User, Workspace
from tests.oauth.test_keys import in_db
from workspaces import clock
from workspaces.models import auth_tokens, oauth_clients, oauth_consents
from workspaces.oauth import keys, tokens
from workspaces.oauth.scopes import DESCRIPTIONS, SERVICE_SCOPES, USER_SCOPES
from workspaces.security import hash_token, new_token

ISSUER = "http://testserver"
REDIRECT = "https://app.example.com/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636's example


@pytest.fixture
def make(api: Api) -> Iterator[Factory]:
    factory = Factory(api.db.url)
    yield factory
    factory.close()


def register(make: Factory, *, public: bool = False, trusted: bool = False,
             redirect_uris: tuple[str, ...] = (REDIRECT,),
             post_logout: tuple[str, ...] = (),
             scopes: tuple[str, ...] = (*USER_SCOPES, *SERVICE_SCOPES),
             name: str = "Example App") -> str:
    """A client row, as `workspaces clients create` writes it; its client_id."""
    client_id, now = f"wsc_{uuid.uuid4().hex[:16]}", clock.now()
    with make.engine.begin() as conn:
        conn.execute(insert(oauth_clients).values(
            id=client_id, name=name, secret_hash=None if public else hash_token(new_token()),
            trusted=trusted, redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout), scopes=list(scopes),
            workspace_restricted=False, created_at=now, updated_at=now))
    return client_id


def signed_in(api: Api, make: Factory, user: User, *, age: timedelta = timedelta()) -> uuid.UUID:
    """A browser session for `user` that began `age` ago, in the test client's cookie."""
    token, session_id, began = new_token("wst_"), uuid.uuid4(), clock.now() - age
    with make.engine.begin() as conn:
        conn.execute(insert(auth_tokens).values(
            id=session_id, user_id=user.id, token_hash=hash_token(token), kind="browser",
            created_at=began, expires_at=began + timedelta(days=14), last_used_at=began))
    api.client.cookies.set("ws_session", token)
    return session_id


def authorize(api: Api, client_id: str | list[str] | None, **params: Any) -> httpx.Response:
    query: dict[str, Any] = {"response_type": "code", "scope": "openid", "state": "s-1",
                             "redirect_uri": REDIRECT, "code_challenge": CHALLENGE,
                             "code_challenge_method": "S256", **params}
    if client_id is not None:
        query["client_id"] = client_id
    query = {name: value for name, value in query.items() if value is not None}
    response: httpx.Response = api.client.get("/oauth/authorize", params=query,
                                              follow_redirects=False)
    return response


def back_at(response: httpx.Response, redirect_uri: str = REDIRECT) -> dict[str, str]:
    """The parameters of a redirect back to the client (each once)."""
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + ("&" if "?" in redirect_uri else "?")), location
    assert response.headers["cache-control"] == "no-store"
    query = parse_qs(urlsplit(location).query)
    assert all(len(values) == 1 for values in query.values()), query
    return {name: values[0] for name, values in query.items()}


def refused(response: httpx.Response, error: str) -> str:
    answer = back_at(response)
    assert answer["error"] == error, answer
    assert answer["iss"] == ISSUER and answer["error_description"]
    assert "code" not in answer
    return answer["error_description"]


def codes(api: Api) -> list[tuple[Any, ...]]:
    return api.db.sql("SELECT client_id, user_id, redirect_uri, scopes, nonce, code_challenge, "
                      "workspace_id, session_id FROM oauth_codes")


def ident(value: Any) -> uuid.UUID:
    """A UUID as raw SQL returns it (a string on SQLite)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def listed(value: Any) -> list[str]:
    """A JSON list as raw SQL returns it (text on SQLite)."""
    return value if isinstance(value, list) else list(json.loads(value))


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def answer(api: Api, page: httpx.Response, decision: str = "allow", **fields: str
           ) -> httpx.Response:
    """Press a button of the consent page or picker `page`."""
    response: httpx.Response = api.client.post("/oauth/authorize", data={
        "csrf_token": csrf(page.text), "pending": hidden(page.text, "pending"),
        "decision": decision, **fields}, follow_redirects=False)
    return response


# The client and its redirect URI: until both are known good, a page and never a redirect.


def _no_redirect(response: httpx.Response, says: str) -> None:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert says in response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("client_id", [None, "wsc_unknown", ["wsc_a", "wsc_b"]])
def test_an_unknown_or_missing_client_gets_our_page(api: Api, client_id: Any) -> None:
    _no_redirect(authorize(api, client_id), "not registered with Workspaces")


def test_a_client_named_twice_gets_our_page(api: Api, make: Factory) -> None:
    client = register(make)
    _no_redirect(authorize(api, [client, client]),
                 "not registered with Workspaces")


@pytest.mark.parametrize("redirect_uri", [
    "https://app.example.com/callback/evil",        # suffix
    "https://app.example.com/call",                 # prefix
    "https://app.example.com/callback/",            # trailing slash
    "https://APP.example.com/callback",             # case of the host
    "https://app.example.com/Callback",             # case of the path
    "https://app.example.com@evil.example/callback",  # userinfo
    "https://evil.example@app.example.com/callback",
    "https://app.example.com/callback#fragment",
    "https://app.example.com:8443/callback",        # another port
    "https://app.example.com:443/callback",         # the same port, spelt out
    "http://app.example.com/callback",              # another scheme
    "https://app.example.com/callback?next=evil",   # a query added
    "https://app.example.com.evil.example/callback",
    "https://app.example.com/callback/../evil",
    "https://app.example.com/callback%2F..%2Fevil",
    " https://app.example.com/callback",
    "//evil.example/callback",
])
def test_redirect_uri_variants_get_our_page_and_no_redirect(api: Api, make: Factory,
                                                             redirect_uri: str) -> None:
    client = register(make)
    response = authorize(api, client, redirect_uri=redirect_uri)
    _no_redirect(response, "not registered with Workspaces")
    assert "evil" not in response.text


def test_a_redirect_uri_is_needed_when_several_are_registered_and_sent_once(
        api: Api, make: Factory) -> None:
    client = register(make, redirect_uris=(REDIRECT, "https://app.example.com/other"))
    _no_redirect(authorize(api, client, redirect_uri=None), "not registered")
    _no_redirect(authorize(api, client, redirect_uri=[REDIRECT, REDIRECT]), "not registered")


def test_the_one_registered_redirect_uri_serves_when_none_is_sent(api: Api,
                                                                  make: Factory) -> None:
    client = register(make)
    refused(authorize(api, client, redirect_uri=None, response_type="token"),
            "unsupported_response_type")


def test_a_redirect_uri_registered_with_a_query_keeps_it(api: Api, make: Factory) -> None:
    registered = "https://app.example.com/cb?tenant=1"
    client = register(make, redirect_uris=(registered,), trusted=True)
    signed_in(api, make, make.user())
    answer_ = back_at(authorize(api, client, redirect_uri=registered), registered)
    assert answer_["tenant"] == "1" and answer_["code"] and answer_["state"] == "s-1"


# Every other refusal goes back to the client, with state and iss.


@pytest.mark.parametrize(("params", "error"), [
    ({"response_type": None}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": "id_token"}, "unsupported_response_type"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"scope": "openid mystery"}, "invalid_scope"),
    ({"scope": "email profile"}, "invalid_scope"),  # no openid
    ({"scope": None}, "invalid_scope"),
    ({"scope": "openid events:read"}, "invalid_scope"),  # not this client's
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),  # no method means plain
    ({"code_challenge_method": "s256"}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),  # a method without a challenge
    ({"code_challenge": "short"}, "invalid_request"),
    ({"code_challenge": CHALLENGE[:-1] + "="}, "invalid_request"),
    ({"code_challenge": "a" * 129}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "none consent"}, "invalid_request"),
    ({"prompt": "select_account"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "1.5"}, "invalid_request"),
    ({"max_age": "ten"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://app.example.com/request.jwt"}, "request_uri_not_supported"),
    ({"registration": "{}"}, "registration_not_supported"),
    ({"scope": ["openid", "openid email"]}, "invalid_request"),  # repeated
    ({"nonce": ["a", "b"]}, "invalid_request"),
    ({"nonce": "n" * 513}, "invalid_request"),
])
def test_each_refusal_goes_back_to_the_client(api: Api, make: Factory, params: dict[str, Any],
                                              error: str) -> None:
    client = register(make, scopes=tuple(USER_SCOPES))
    signed_in(api, make, make.user())
    refused(authorize(api, client, **params), error)
    assert codes(api) == []


def test_a_repeated_state_is_refused_and_not_echoed_twice(api: Api, make: Factory) -> None:
    client = register(make)
    response = authorize(api, client, state=["one", "two"])
    assert back_at(response)["error"] == "invalid_request"


def test_pkce_is_required_of_public_clients_and_optional_for_confidential_ones(
        api: Api, make: Factory) -> None:
    public = register(make, public=True, trusted=True)
    confidential = register(make, trusted=True)
    user = make.user()
    signed_in(api, make, user)
    without = {"code_challenge": None, "code_challenge_method": None}
    assert "PKCE is required" in refused(authorize(api, public, **without), "invalid_request")
    assert refused(authorize(api, public, code_challenge_method="plain",
                             code_challenge="x" * 43), "invalid_request")
    assert back_at(authorize(api, public))["code"]
    assert back_at(authorize(api, confidential, **without))["code"]
    assert sorted(row[5] or "" for row in codes(api)) == ["", CHALLENGE]


# Signing in: the detour through our sign-in page, prompt and max_age.


def _sign_in_for_real(api: Api, detour: httpx.Response, email: str) -> httpx.Response:
    """Follow a redirect to our sign-in page, sign in there, and follow it back."""
    assert detour.status_code == 303, detour.text
    page = api.client.get(detour.headers["location"])
    assert page.status_code == 200
    done = api.client.post("/signin", data={
        "csrf_token": csrf(page.text), "next": hidden(page.text, "next"), "email": email,
        "password": PASSWORD}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith("/oauth/authorize?resume=")
    response: httpx.Response = api.client.get(done.headers["location"],
                                              follow_redirects=False)
    return response


def test_without_a_session_the_person_signs_in_and_comes_back(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    user = make.user("ann@example.com")
    detour = authorize(api, client, login_hint="ann@example.com", nonce="n-1")
    location = detour.headers["location"]
    assert location.startswith("/signin?next=/oauth/authorize%3Fresume%3D")
    assert location.endswith("&email=ann@example.com")
    page = api.client.get(location)
    assert 'value="ann@example.com"' in page.text  # login_hint fills the address
    assert codes(api) == []
    back = back_at(_sign_in_for_real(api, detour, "ann@example.com"))
    assert back["state"] == "s-1" and back["iss"] == ISSUER
    ((client_id, user_id, redirect_uri, scopes, nonce, challenge, _, session_id),) = codes(api)
    assert (client_id, ident(user_id), redirect_uri, listed(scopes), nonce, challenge) == (
        client, user.id, REDIRECT, ["openid"], "n-1", CHALLENGE)
    browsers = [ident(i) for i, kind in api.db.sql("SELECT id, kind FROM auth_tokens")
                if kind == "browser"]
    assert browsers == [ident(session_id)]  # the session the sign-in began


def test_a_resume_link_altered_or_invented_is_refused(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    detour = authorize(api, client)
    resume = parse_qs(urlsplit(parse_qs(urlsplit(detour.headers["location"]).query)["next"][0]
                               ).query)["resume"][0]
    for forged in (resume[:-2] + "xx", "eyJxIjpbXX0.abc.def"):
        response = api.client.get("/oauth/authorize", params={"resume": forged},
                                  follow_redirects=False)
        _no_redirect(response, "This page has expired")


def test_prompt_none_without_a_session_is_login_required(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    refused(authorize(api, client, prompt="none"), "login_required")
    assert codes(api) == []


def test_prompt_login_asks_again_once_and_does_not_loop(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    user = make.user("ann@example.com")
    old = signed_in(api, make, user, age=timedelta(minutes=5))
    detour = authorize(api, client, prompt="login")
    assert detour.headers["location"].startswith("/signin?")
    back = back_at(_sign_in_for_real(api, detour, "ann@example.com"))
    assert back["code"]
    ((session_id,),) = api.db.sql("SELECT session_id FROM oauth_codes")
    assert ident(session_id) != old  # the new sign-in's session


@pytest.mark.parametrize("max_age", ["60", "0"])
def test_max_age_exceeded_asks_for_a_new_sign_in_then_issues(api: Api, make: Factory,
                                                            max_age: str) -> None:
    client = register(make, trusted=True)
    user = make.user("ann@example.com")
    signed_in(api, make, user, age=timedelta(minutes=5))
    refused(authorize(api, client, max_age=max_age, prompt="none"), "login_required")
    detour = authorize(api, client, max_age=max_age)
    assert back_at(_sign_in_for_real(api, detour, "ann@example.com"))["code"]


def test_max_age_not_exceeded_issues_at_once(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    signed_in(api, make, make.user(), age=timedelta(minutes=5))
    assert back_at(authorize(api, client, max_age="600", prompt="none"))["code"]


def test_an_unverified_account_may_sign_in_to_a_client(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    user = make.user()  # the factory's first account is unverified
    assert api.db.sql(f"SELECT email_verified_at FROM users WHERE email = '{user.email}'"
                      ) == [(None,)]
    signed_in(api, make, user)
    assert back_at(authorize(api, client))["code"]


# Consent.


def test_consent_page_shows_the_client_and_each_scope_then_allow_issues(api: Api,
                                                                       make: Factory) -> None:
    client = register(make, name="Acme Notes")
    user = make.user()
    signed_in(api, make, user)
    page = authorize(api, client, scope="openid email offline_access")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://app.example.com;" in csp
    assert "Acme Notes wants to use your Workspaces account" in page.text
    for scope in ("openid", "email", "offline_access"):
        assert DESCRIPTIONS[scope] in page.text
    assert DESCRIPTIONS["profile"] not in page.text
    assert codes(api) == []
    back = back_at(answer(api, page))
    assert back["code"] and back["state"] == "s-1" and back["iss"] == ISSUER
    assert len(codes(api)) == 1
    ((scopes,),) = api.db.sql("SELECT scopes FROM oauth_consents")
    assert sorted(listed(scopes)) == ["email", "offline_access", "openid"]


def test_consent_is_remembered_for_the_same_or_fewer_scopes(api: Api, make: Factory) -> None:
    client = register(make)
    signed_in(api, make, make.user())
    back_at(answer(api, authorize(api, client, scope="openid email profile")))
    assert back_at(authorize(api, client, scope="openid email"))["code"]
    assert back_at(authorize(api, client, scope="openid profile email", prompt="none"))["code"]
    more = authorize(api, client, scope="openid email workspaces")
    assert more.status_code == 200 and DESCRIPTIONS["workspaces"] in more.text
    refused(authorize(api, client, scope="openid workspaces", prompt="none"),
            "consent_required")
    again = authorize(api, client, scope="openid", prompt="consent")
    assert again.status_code == 200 and "wants to use your Workspaces account" in again.text


def test_consent_is_per_user(api: Api, make: Factory) -> None:
    client = register(make)
    signed_in(api, make, make.user())
    back_at(answer(api, authorize(api, client)))
    signed_in(api, make, make.user())
    assert authorize(api, client).status_code == 200


def test_deny_goes_back_with_access_denied_and_remembers_nothing(api: Api,
                                                                 make: Factory) -> None:
    client = register(make)
    signed_in(api, make, make.user())
    refused(answer(api, authorize(api, client), "deny"), "access_denied")
    assert codes(api) == [] and api.db.sql("SELECT count(*) FROM oauth_consents") == [(0,)]


def test_a_trusted_client_skips_consent_unless_prompt_consent(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    signed_in(api, make, make.user())
    assert back_at(authorize(api, client, scope="openid email profile"))["code"]
    assert authorize(api, client, prompt="consent").status_code == 200


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_consent_without_the_csrf_token_is_refused_and_issues_nothing(
        api: Api, make: Factory, token: str | None) -> None:
    client = register(make)
    signed_in(api, make, make.user())
    page = authorize(api, client)
    data = {"pending": hidden(page.text, "pending"), "decision": "allow"}
    if token is not None:
        data["csrf_token"] = token
    response = api.client.post("/oauth/authorize", data=data, follow_redirects=False)
    assert response.status_code == 403 and "location" not in response.headers
    assert codes(api) == [] and api.db.sql("SELECT count(*) FROM oauth_consents") == [(0,)]


def test_a_consent_form_from_another_session_or_altered_is_refused(api: Api,
                                                                   make: Factory) -> None:
    client = register(make)
    signed_in(api, make, make.user())
    page = authorize(api, client)
    pending = hidden(page.text, "pending")
    altered = api.client.post("/oauth/authorize", data={
        "csrf_token": csrf(page.text), "pending": pending[:-3] + "abc", "decision": "allow"},
        follow_redirects=False)
    _no_redirect(altered, "This page has expired")
    signed_in(api, make, make.user())  # another account in this browser now
    other = api.client.get("/signin")
    moved = api.client.post("/oauth/authorize", data={
        "csrf_token": csrf(other.text), "pending": pending, "decision": "allow"},
        follow_redirects=False)
    _no_redirect(moved, "since this page was shown")
    assert codes(api) == []


def test_a_client_changed_since_the_page_is_checked_again(api: Api, make: Factory) -> None:
    client = register(make)
    signed_in(api, make, make.user())
    page = authorize(api, client)
    api.db.sql(f"UPDATE oauth_clients SET redirect_uris = '[\"https://other.example/cb\"]' "
               f"WHERE id = '{client}'")
    _no_redirect(answer(api, page), "not registered")
    assert codes(api) == []


# The workspace picker.


def _member_of(make: Factory, user: User, *names: str) -> list[Workspace]:
    owner = make.user()
    made = []
    for index, name in enumerate(names):
        workspace = make.workspace(owner, name)
        make.member(workspace, user, ("member", "admin")[index % 2])
        made.append(workspace)
    return made


def test_the_picker_lists_the_persons_workspaces_and_the_pick_is_in_the_code(
        api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    user = make.user()
    acme, globex = _member_of(make, user, "Acme", "Globex")
    make.workspace(make.user(), "Not Theirs")
    signed_in(api, make, user)
    page = authorize(api, client, scope="openid workspace")
    assert page.status_code == 200 and "Choose a workspace" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert re.findall(r'name="workspace" value="([^"]+)"', page.text) == [acme.slug,
                                                                           globex.slug]
    assert ">member<" in page.text and ">admin<" in page.text
    assert "Not Theirs" not in page.text
    back_at(answer(api, page, workspace=globex.slug))
    ((workspace_id,),) = api.db.sql("SELECT workspace_id FROM oauth_codes")
    assert ident(workspace_id) == globex.id


def test_a_pick_that_is_not_theirs_shows_the_picker_again(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    user = make.user()
    _member_of(make, user, "Acme")
    other = make.workspace(make.user(), "Other")
    signed_in(api, make, user)
    page = authorize(api, client, scope="openid workspace")
    for picked in (other.slug, ""):
        again = answer(api, page, workspace=picked)
        assert again.status_code == 422 and 'name="workspace"' in again.text
    assert codes(api) == []


def test_a_named_workspace_of_theirs_needs_no_picker(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    user = make.user()
    _, globex = _member_of(make, user, "Acme", "Globex")
    signed_in(api, make, user)
    back_at(authorize(api, client, scope="openid workspace", workspace=globex.slug,
                      prompt="none"))
    ((workspace_id,),) = api.db.sql("SELECT workspace_id FROM oauth_codes")
    assert ident(workspace_id) == globex.id


def test_a_named_workspace_not_theirs_shows_the_picker_saying_so(api: Api,
                                                                 make: Factory) -> None:
    client = register(make, trusted=True, name="Acme Notes")
    user = make.user()
    _member_of(make, user, "Acme")
    other = make.workspace(make.user(), "Other")
    signed_in(api, make, user)
    page = authorize(api, client, scope="openid workspace", workspace=other.slug)
    assert page.status_code == 200
    assert f"not a member of the workspace Acme Notes asked for ({other.slug})" in page.text
    refused(authorize(api, client, scope="openid workspace", workspace=other.slug,
                      prompt="none"), "account_selection_required")


def test_someone_without_a_workspace_is_told_so_and_can_only_go_back(api: Api,
                                                                    make: Factory) -> None:
    client = register(make, trusted=True, name="Acme Notes")
    signed_in(api, make, make.user())
    page = authorize(api, client, scope="openid workspace")
    assert "You are not a member of any workspace yet, and Acme Notes needs one" in page.text
    assert 'value="allow"' not in page.text
    refused(answer(api, page, "deny"), "access_denied")
    refused(authorize(api, client, scope="openid workspace", prompt="none"),
            "account_selection_required")


def test_consent_and_picker_on_one_page(api: Api, make: Factory) -> None:
    client = register(make)
    user = make.user()
    (acme,) = _member_of(make, user, "Acme")
    signed_in(api, make, user)
    page = authorize(api, client, scope="openid workspace")
    assert "wants to use your Workspaces account" in page.text and acme.slug in page.text
    assert 'checked' in page.text  # the only workspace is picked already
    wrong = answer(api, page, workspace="not-theirs")
    assert wrong.status_code == 422 and "wants to use your Workspaces account" in wrong.text
    assert api.db.sql("SELECT count(*) FROM oauth_consents") == [(0,)]  # nothing given yet
    back_at(answer(api, wrong, workspace=acme.slug))
    assert api.db.sql("SELECT count(*) FROM oauth_consents") == [(1,)]
    page = authorize(api, client, scope="openid workspace")  # consented: the picker alone
    assert "Choose a workspace" in page.text


def test_the_consent_table_is_left_as_it_was_by_a_refusal(api: Api, make: Factory) -> None:
    client = register(make)
    user = make.user()
    signed_in(api, make, user)
    with make.engine.begin() as conn:
        conn.execute(insert(oauth_consents).values(user_id=user.id, client_id=client,
                                                   scopes=["openid"], granted_at=clock.now()))
    page = authorize(api, client, scope="openid email")
    refused(answer(api, page, "deny"), "access_denied")
    assert back_at(authorize(api, client, prompt="none"))["code"]
    refused(authorize(api, client, scope="openid email", prompt="none"), "consent_required")


# RP-initiated logout.

LOGGED_OUT = "https://app.example.com/signed-out"


def id_token(api: Api, client_id: str, *, age: timedelta = timedelta(hours=2),
             key: RSAKey | None = None, alg: str = "RS256") -> str:
    """An ID token for `client_id` signed with our key (expired by default: `age` old), or
    with `key` under our key's kid."""
    settings = api.settings
    signer = in_db(settings, lambda conn: keys.signing_key(conn, settings))
    if key is not None or alg != "RS256":
        claims = {"iss": ISSUER, "sub": str(uuid.uuid4()), "aud": client_id, "exp": 2**31,
                  "iat": 0}
        header = {"alg": alg, "kid": signer.kid, "typ": "JWT"}
        if key is None:  # alg none: no signature at all
            return ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode()
                            .rstrip("=") for part in (header, claims)) + "."
        return jwt.encode(header, claims, key, algorithms=[alg])
    return tokens.mint_id_token(signer, settings, subject=str(uuid.uuid4()),
                                client_id=client_id, auth_time=clock.now() - age, sid=None,
                                now=clock.now() - age)


def logout(api: Api, **params: Any) -> httpx.Response:
    response: httpx.Response = api.client.get("/oauth/logout", params=params,
                                              follow_redirects=False)
    return response


def live_sessions(api: Api) -> int:
    return len([1 for kind, revoked in api.db.sql("SELECT kind, revoked_at FROM auth_tokens")
                if kind == "browser" and revoked is None])


def confirm_sign_out(api: Api, page: httpx.Response, **fields: str) -> httpx.Response:
    response: httpx.Response = api.client.post("/oauth/logout", data={
        "csrf_token": csrf(page.text), **fields, **(
            {"then": hidden(page.text, "then")} if 'name="then"' in page.text else {})},
        follow_redirects=False)
    return response


def test_logout_asks_then_signs_out_and_goes_back_with_state(api: Api, make: Factory) -> None:
    client = register(make, post_logout=(LOGGED_OUT,), name="Acme Notes")
    signed_in(api, make, make.user())
    page = logout(api, id_token_hint=id_token(api, client),  # expired: still a hint
                  post_logout_redirect_uri=LOGGED_OUT, state="bye-1")
    assert page.status_code == 200 and "Sign out of Workspaces?" in page.text
    assert "Acme Notes asks to sign you out" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "form-action 'self' https://app.example.com;" in page.headers[
        "content-security-policy"]
    assert live_sessions(api) == 1  # looking changed nothing
    done = confirm_sign_out(api, page)
    assert done.status_code == 303
    assert done.headers["location"] == f"{LOGGED_OUT}?state=bye-1"
    assert live_sessions(api) == 0
    assert any(c.startswith('ws_session=""') for c in done.headers.get_list("set-cookie"))


def test_logout_by_client_id_alone_may_go_back(api: Api, make: Factory) -> None:
    client = register(make, post_logout=(LOGGED_OUT,))
    signed_in(api, make, make.user())
    page = logout(api, client_id=client, post_logout_redirect_uri=LOGGED_OUT)
    assert confirm_sign_out(api, page).headers["location"] == LOGGED_OUT


@pytest.mark.parametrize("target", [
    "https://app.example.com/signed-out/", "https://app.example.com/signed-outx",
    "https://app.example.com/signed", "https://APP.example.com/signed-out",
    "https://app.example.com@evil.example/signed-out", "https://app.example.com:444/signed-out",
    "https://app.example.com/signed-out?x=1", "https://app.example.com/signed-out#x",
    REDIRECT,  # a redirect URI is not a post-logout one
    "https://evil.example/",
])
def test_logout_to_an_unregistered_address_stays_on_our_pages(api: Api, make: Factory,
                                                               target: str) -> None:
    client = register(make, post_logout=(LOGGED_OUT,))
    signed_in(api, make, make.user())
    page = logout(api, client_id=client, post_logout_redirect_uri=target, state="s")
    assert page.status_code == 200 and 'name="then"' not in page.text
    assert "evil" not in page.headers["content-security-policy"]
    done = confirm_sign_out(api, page)
    assert done.headers["location"] == "/" and live_sessions(api) == 0
    api.client.cookies.clear()
    anonymous = logout(api, client_id=client, post_logout_redirect_uri=target)
    assert anonymous.status_code == 200 and "location" not in anonymous.headers
    assert "You are signed out" in anonymous.text


def test_logout_believes_no_hint_we_did_not_sign(api: Api, make: Factory) -> None:
    client = register(make, post_logout=(LOGGED_OUT,))
    other = register(make, post_logout=(LOGGED_OUT,))
    foreign = RSAKey.generate_key(2048)
    for hint, client_id in ((id_token(api, client, key=foreign), None),
                            (id_token(api, client, alg="none"), None),
                            (id_token(api, client, key=foreign), client),
                            (id_token(api, other), client),  # another client's token
                            ("not.a.jwt", client)):
        params = {"id_token_hint": hint, "post_logout_redirect_uri": LOGGED_OUT}
        if client_id:
            params["client_id"] = client_id
        response = logout(api, **params)
        assert response.status_code == 200 and "location" not in response.headers, hint


def test_logout_without_a_session_goes_straight_back(api: Api, make: Factory) -> None:
    client = register(make, post_logout=(LOGGED_OUT,))
    response = logout(api, id_token_hint=id_token(api, client, age=timedelta()),
                      post_logout_redirect_uri=LOGGED_OUT, state="x y")
    assert response.status_code == 302
    assert response.headers["location"] == f"{LOGGED_OUT}?state=x+y"


def test_logout_without_the_csrf_token_signs_nobody_out(api: Api, make: Factory) -> None:
    client = register(make, post_logout=(LOGGED_OUT,))
    signed_in(api, make, make.user())
    page = logout(api, client_id=client, post_logout_redirect_uri=LOGGED_OUT)
    refused_ = api.client.post("/oauth/logout", data={"then": hidden(page.text, "then")},
                               follow_redirects=False)
    assert refused_.status_code == 403 and live_sessions(api) == 1
    forged = api.client.post("/oauth/logout", data={
        "csrf_token": csrf(page.text), "then": "InRoZXJlIg.forged"}, follow_redirects=False)
    assert forged.headers["location"] == "/"  # signed out, but sent nowhere it was not told


def test_a_newcomer_signs_up_on_the_way_and_comes_back(api: Api, make: Factory) -> None:
    client = register(make, trusted=True)
    detour = authorize(api, client)
    signin = api.client.get(detour.headers["location"])
    link = re.search(r'href="(/signup\?next=[^"]+)"', signin.text)
    assert link, signin.text
    page = api.client.get(link.group(1).replace("&amp;", "&"))
    done = api.client.post("/signup", data={
        "csrf_token": csrf(page.text), "next": hidden(page.text, "next"), "name": "Newcomer",
        "email": "new@example.com", "password": PASSWORD}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].startswith("/oauth/authorize?resume=")
    back = back_at(api.client.get(done.headers["location"], follow_redirects=False))
    assert back["code"] and back["state"] == "s-1"
