"""The token endpoint on SQLite and PostgreSQL: codes redeemed once with PKCE, refresh tokens
rotated with reuse detection, client credentials, client authentication, and every refusal in
RFC 6749's shape."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import time_machine

from tests.factories import Factory
from tests.oauth.conftest import REDIRECT_URI, VERIFIER, Provider, basic, moment


def test_a_code_gives_access_id_and_refresh_tokens(op: Provider, make: Factory) -> None:
    ann = make.user("ann@example.com", name="Ann")
    acme = make.workspace(ann, "Acme")
    app = op.client()
    session = op.session(ann)
    code = op.code(app, ann, scopes=("openid", "email", "profile", "offline_access",
                                     "workspaces", "workspace"),
                   workspace=acme, session_id=session)
    response = op.token(app, grant_type="authorization_code", code=code,
                        redirect_uri=REDIRECT_URI, code_verifier=VERIFIER)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "openid email profile offline_access workspaces workspace"
    assert body["refresh_token"].startswith("wsr_")

    access = op.claims(body["access_token"])
    grant_id = access["gid"]
    assert access["sub"] == str(ann.id) and access["client_id"] == app.id
    assert access["aud"] == "http://testserver/api" and access["iss"] == "http://testserver"
    assert access["scope"] == body["scope"]
    assert (access["workspace_id"], access["workspace_slug"], access["workspace_role"]) == (
        str(acme.id), acme.slug, "owner")
    assert "email" not in access  # the ID token and userinfo carry the profile

    identity = op.claims(body["id_token"])
    assert identity["aud"] == app.id and identity["azp"] == app.id
    assert identity["sub"] == str(ann.id) and identity["nonce"] == "n-0S6_WzA2Mj"
    assert identity["sid"] == str(session) and identity["amr"] == ["pwd"]
    assert identity["email"] == "ann@example.com" and identity["name"] == "Ann"
    assert identity["email_verified"] is False  # the factory's first account is unverified
    assert identity["workspaces"] == [{"id": str(acme.id), "slug": acme.slug, "name": "Acme",
                                       "role": "owner"}]
    assert identity["workspace_slug"] == acme.slug
    assert identity["auth_time"] <= identity["iat"]

    # The grant lasts as long as its longest-lived token: the refresh token's 30 days.
    [(expires_at, workspace_id)] = op.api.db.sql(
        f"SELECT expires_at, workspace_id FROM oauth_grants WHERE id = {op.sql_id(grant_id)}")
    assert timedelta(days=29) < moment(expires_at) - datetime.now(UTC) <= timedelta(days=30)
    assert workspace_id is not None


def test_without_openid_or_offline_access_only_an_access_token(op: Provider,
                                                                make: Factory) -> None:
    ann = make.user()
    app = op.client()
    body = op.redeem(app, op.code(app, ann, scopes=("email",)))
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["scope"] == "email"


def test_client_secret_post_and_public_clients(op: Provider, make: Factory) -> None:
    ann = make.user()
    confidential = op.client()
    code = op.code(confidential, ann)
    posted = op.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER, "client_id": confidential.id,
        "client_secret": confidential.secret})
    assert posted.status_code == 200, posted.text

    public = op.client(public=True)
    body = op.redeem(public, op.code(public, ann))
    assert "refresh_token" in body  # public clients refresh too, rotated like any other
    # A public client's secret, or a confidential client without one, is no authentication.
    op.refused(op.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": op.code(public, ann),
        "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER, "client_id": public.id,
        "client_secret": "wscs_guess"}), 401, "invalid_client")
    refused = op.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": op.code(confidential, ann),
        "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER,
        "client_id": confidential.id})
    op.refused(refused, 401, "invalid_client")
    assert refused.headers["www-authenticate"].startswith("Basic")


def test_basic_credentials_are_form_encoded_first(op: Provider, make: Factory) -> None:
    """RFC 6749 2.3.1: the id and secret are form-encoded before they are joined and
    base64-encoded; a relying party that does so (`%5F` for `_`) is understood."""
    ann = make.user()
    app = op.client()
    assert app.secret is not None
    encoded_id = app.id.replace("_", "%5F")
    response = op.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": op.code(app, ann),
        "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER},
        headers=basic(encoded_id, app.secret.replace("_", "%5F")))
    assert response.status_code == 200, response.text


def test_malformed_requests_are_invalid_request(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    assert app.secret is not None
    code = op.code(app, ann)
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
              "code_verifier": VERIFIER}
    as_json = op.http.post("/oauth/token", content=json.dumps(params),
                           headers={**app.auth, "Content-Type": "application/json"})
    assert "x-www-form-urlencoded" in op.refused(as_json, 400, "invalid_request")
    both = op.http.post("/oauth/token", data={**params, "client_secret": app.secret},
                        headers=app.auth)
    assert "one way" in op.refused(both, 400, "invalid_request")
    other_id = op.http.post("/oauth/token", data={**params, "client_id": "wsc_someone"},
                            headers=app.auth)
    op.refused(other_id, 400, "invalid_request")
    repeated = op.http.post("/oauth/token", content=f"grant_type=authorization_code&code={code}"
                            f"&code=again&redirect_uri={REDIRECT_URI}",
                            headers={**app.auth,
                                     "Content-Type": "application/x-www-form-urlencoded"})
    assert "repeated" in op.refused(repeated, 400, "invalid_request")
    op.refused(op.token(app, code=code), 400, "invalid_request")  # no grant_type
    op.refused(op.token(app, grant_type="password", username="ann", password="x"), 400,
               "unsupported_grant_type")
    op.refused(op.token(app, grant_type="authorization_code", redirect_uri=REDIRECT_URI),
               400, "invalid_request")  # no code
    not_basic = op.http.post("/oauth/token", data=params,
                             headers={"Authorization": "Bearer something"})
    op.refused(not_basic, 401, "invalid_client")
    op.refused(op.http.post("/oauth/token", data=params), 401, "invalid_client")  # no client
    # None of this used the code.
    assert op.redeem(app, code)["access_token"]


def test_refused_codes(op: Provider, make: Factory) -> None:
    ann = make.user()
    app, other = op.client(), op.client()
    code = op.code(app, ann)
    unknown = op.token(app, grant_type="authorization_code", code="nope",
                       redirect_uri=REDIRECT_URI, code_verifier=VERIFIER)
    op.refused(unknown, 400, "invalid_grant")
    wrong_uri = op.token(app, grant_type="authorization_code", code=code,
                         redirect_uri=REDIRECT_URI + "/", code_verifier=VERIFIER)
    assert "redirect_uri" in op.refused(wrong_uri, 400, "invalid_grant")
    no_uri = op.token(app, grant_type="authorization_code", code=code, code_verifier=VERIFIER)
    op.refused(no_uri, 400, "invalid_request")
    # Another client presenting the code is told nothing more than for an unknown one...
    stolen = op.token(other, grant_type="authorization_code", code=code,
                      redirect_uri=REDIRECT_URI, code_verifier=VERIFIER)
    assert op.refused(stolen, 400, "invalid_grant") == op.refused(unknown, 400,
                                                                    "invalid_grant")
    # ...and the code still works for its own client.
    op.redeem(app, code)

    late = op.code(app, ann)
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=False):
        op.refused(op.token(app, grant_type="authorization_code", code=late,
                            redirect_uri=REDIRECT_URI, code_verifier=VERIFIER),
                   400, "invalid_grant")


def test_pkce_is_checked_and_cannot_be_downgraded(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    code = op.code(app, ann)
    missing = op.token(app, grant_type="authorization_code", code=code,
                       redirect_uri=REDIRECT_URI)
    assert "code_verifier" in op.refused(missing, 400, "invalid_grant")
    wrong = op.token(app, grant_type="authorization_code", code=code,
                     redirect_uri=REDIRECT_URI, code_verifier=VERIFIER[:-1] + "x")
    op.refused(wrong, 400, "invalid_grant")
    short = op.token(app, grant_type="authorization_code", code=code,
                     redirect_uri=REDIRECT_URI, code_verifier="short")
    op.refused(short, 400, "invalid_grant")
    op.redeem(app, code)  # refusals do not burn the code

    # A code issued without a challenge, redeemed with a verifier: the challenge was dropped
    # on the way (a downgrade), so it is refused.
    plain = op.code(app, ann, verifier=None)
    downgraded = op.token(app, grant_type="authorization_code", code=plain,
                          redirect_uri=REDIRECT_URI, code_verifier=VERIFIER)
    assert "without a code_challenge" in op.refused(downgraded, 400, "invalid_grant")
    op.redeem(app, plain, verifier=None)  # a confidential client may go without PKCE


def test_a_replayed_code_revokes_what_it_issued(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    code = op.code(app, ann)
    first = op.redeem(app, code)
    assert op.userinfo(first["access_token"]).status_code == 200
    again = op.token(app, grant_type="authorization_code", code=code,
                     redirect_uri=REDIRECT_URI, code_verifier=VERIFIER)
    op.refused(again, 400, "invalid_grant")
    assert op.userinfo(first["access_token"]).status_code == 401
    op.refused(op.refresh(app, first["refresh_token"]), 400, "invalid_grant")
    assert op.introspect(app, first["access_token"]) == {"active": False}
    assert op.api.db.sql("SELECT count(*) FROM oauth_refresh_tokens") == [(0,)]


def test_the_code_of_a_departed_member_gives_tokens_without_the_workspace(
        op: Provider, make: Factory) -> None:
    ann = make.user()
    acme = make.workspace(make.user(), "Acme")
    make.member(acme, ann)
    app = op.client()
    code = op.code(app, ann, scopes=("openid", "workspace"), workspace=acme)
    op.api.db.sql(f"DELETE FROM workspace_members WHERE user_id = {op.sql_id(ann.id)}")
    body = op.redeem(app, code)
    assert "workspace_id" not in op.claims(body["access_token"])
    assert "workspace_id" not in op.claims(body["id_token"])
    assert op.api.db.sql("SELECT workspace_id FROM oauth_grants") == [(None,)]


def test_refresh_rotates_and_reads_the_claims_anew(op: Provider, make: Factory) -> None:
    ann = make.user("ann@example.com", name="Ann")
    acme = make.workspace(ann, "Acme")
    app = op.client()
    first = op.redeem(app, op.code(app, ann, scopes=(
        "openid", "email", "profile", "offline_access", "workspaces", "workspace"),
        workspace=acme))
    op.http.patch("/api/me", json={"name": "Ann B."}, headers=ann.headers)
    beta = make.workspace(ann, "Beta")
    refreshed = op.refresh(app, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    identity = op.claims(second["id_token"])
    assert identity["name"] == "Ann B."
    assert {w["slug"] for w in identity["workspaces"]} == {acme.slug, beta.slug}
    assert "nonce" not in identity  # the sign-in's nonce is for its own ID token
    assert identity["sid"] == op.claims(first["id_token"])["sid"]
    assert identity["auth_time"] == op.claims(first["id_token"])["auth_time"]
    assert op.claims(second["access_token"])["gid"] == op.claims(first["access_token"])["gid"]

    third = op.refresh(app, second["refresh_token"], scope="openid email")
    assert third.status_code == 200, third.text
    assert third.json()["scope"] == "openid email"
    narrowed = op.claims(third.json()["id_token"])
    assert "name" not in narrowed and "workspaces" not in narrowed
    # Narrowing is for that answer: the grant keeps its scope.
    fourth = op.refresh(app, third.json()["refresh_token"])
    assert fourth.json()["scope"] == first["scope"]
    widened = op.refresh(app, fourth.json()["refresh_token"], scope="openid members:write")
    assert "narrow" in op.refused(widened, 400, "invalid_scope")


def test_a_reused_refresh_token_ends_its_family(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    first = op.redeem(app, op.code(app, ann))
    second = op.refresh(app, first["refresh_token"]).json()
    op.refused(op.refresh(app, first["refresh_token"]), 400, "invalid_grant")
    # The newer sibling and the access tokens of the grant end with it.
    op.refused(op.refresh(app, second["refresh_token"]), 400, "invalid_grant")
    assert op.userinfo(second["access_token"]).status_code == 401
    [(revoked_at,)] = op.api.db.sql("SELECT revoked_at FROM oauth_grants")
    assert revoked_at is not None
    # Another sign-in of the same user is a grant of its own, untouched.
    fresh = op.redeem(app, op.code(app, ann))
    assert op.refresh(app, fresh["refresh_token"]).status_code == 200


def test_refresh_tokens_of_another_client_or_past_their_time(op: Provider,
                                                             make: Factory) -> None:
    ann = make.user()
    app, other = op.client(), op.client()
    tokens = op.redeem(app, op.code(app, ann))
    stolen = op.refresh(other, tokens["refresh_token"])
    assert op.refused(stolen, 400, "invalid_grant") == op.refused(
        op.refresh(app, "wsr_unknown"), 400, "invalid_grant")
    # Not revoked by the other client's attempt: its owner refreshes.
    renewed = op.refresh(app, tokens["refresh_token"])
    assert renewed.status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(days=30, minutes=1), tick=False):
        op.refused(op.refresh(app, renewed.json()["refresh_token"]), 400, "invalid_grant")


def test_a_removed_member_refreshes_without_the_workspace(op: Provider, make: Factory) -> None:
    owner = make.user()
    acme = make.workspace(owner, "Acme")
    bob = make.member(acme, make.user("bob@example.com"), "admin")
    app = op.client()
    first = op.redeem(app, op.code(app, bob, scopes=("openid", "offline_access", "workspaces",
                                                     "workspace"), workspace=acme))
    assert op.claims(first["access_token"])["workspace_role"] == "admin"
    removed = op.http.delete(f"/api/workspaces/{acme.slug}/members/{bob.id}",
                             headers=owner.headers)
    assert removed.status_code in (200, 204), removed.text
    body = op.refresh(app, first["refresh_token"]).json()
    for token in (body["access_token"], body["id_token"]):
        claims = op.claims(token)
        assert not {"workspace_id", "workspace_slug", "workspace_role"} & claims.keys()
    assert op.claims(body["id_token"])["workspaces"] == []
    assert op.api.db.sql("SELECT workspace_id FROM oauth_grants") == [(None,)]
    # Joining again later does not bring it back into this grant.
    make.member(acme, bob, "member")
    again = op.refresh(app, body["refresh_token"]).json()
    assert "workspace_id" not in op.claims(again["access_token"])


def test_client_credentials(op: Provider, make: Factory) -> None:
    backend = op.client(scopes=("openid", "members:read", "invites:write"))
    response = op.token(backend, grant_type="client_credentials")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["scope"] == "members:read invites:write"  # its service scopes only
    claims = op.claims(body["access_token"])
    assert claims["sub"] == backend.id == claims["client_id"]
    assert "auth_time" not in claims
    assert op.api.db.sql("SELECT user_id FROM oauth_grants") == [(None,)]
    narrowed = op.token(backend, grant_type="client_credentials", scope="members:read")
    assert narrowed.json()["scope"] == "members:read"
    op.refused(op.token(backend, grant_type="client_credentials", scope="openid"), 400,
               "invalid_scope")
    op.refused(op.token(backend, grant_type="client_credentials", scope="events:read"), 400,
               "invalid_scope")

    public = op.client(public=True)
    op.refused(op.token(public, grant_type="client_credentials"), 400, "unauthorized_client")
    relying_party = op.client(scopes=("openid", "email"))
    op.refused(op.token(relying_party, grant_type="client_credentials"), 400,
               "unauthorized_client")


def test_a_deleted_account_has_no_tokens(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    tokens = op.redeem(app, op.code(app, ann))
    pending = op.code(app, ann)
    assert op.http.delete("/api/me", headers=ann.headers).status_code == 204
    op.refused(op.refresh(app, tokens["refresh_token"]), 400, "invalid_grant")
    op.refused(op.token(app, grant_type="authorization_code", code=pending,
                        redirect_uri=REDIRECT_URI, code_verifier=VERIFIER), 400,
               "invalid_grant")
    assert op.userinfo(tokens["access_token"]).status_code == 401
    assert op.api.db.sql("SELECT count(*) FROM oauth_grants") == [(0,)]


def test_a_client_that_lost_offline_access_refreshes_no_more(op: Provider,
                                                             make: Factory) -> None:
    ann = make.user()
    app = op.client(scopes=("openid", "email", "offline_access"))
    tokens = op.redeem(app, op.code(app, ann, scopes=("openid", "email", "offline_access")))
    op.api.db.sql(f"UPDATE oauth_clients SET scopes = '[\"openid\", \"email\"]' "
                  f"WHERE id = '{app.id}'")
    assert "sign in again" in op.refused(op.refresh(app, tokens["refresh_token"]), 400,
                                         "invalid_grant")


def test_hostile_client_credentials_are_invalid_client(op: Provider) -> None:
    """Bytes that are no client id of ours, in either place, are refused as unknown clients,
    never as a server or database error."""
    params = {"grant_type": "client_credentials"}
    for raw in (b"wsc_x:%ff", b"\xff\xfe:secret", b"wsc_\x00:secret", b":secret", b"nocolon"):
        encoded = base64.b64encode(raw).decode()
        answer = op.http.post("/oauth/token", data=params,
                              headers={"Authorization": f"Basic {encoded}"})
        op.refused(answer, 401, "invalid_client")
    op.refused(op.http.post("/oauth/token", data=params,
                            headers={"Authorization": "Basic not base64!"}), 401,
               "invalid_client")
    for client_id in ("wsc_\x00", "x" * 65, "wsc_ spaced"):
        op.refused(op.http.post("/oauth/token", data={**params, "client_id": client_id,
                                                      "client_secret": "s"}),
                   401, "invalid_client")
    not_utf8 = op.http.post("/oauth/token", content=b"grant_type=%ff%fe",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    op.refused(not_utf8, 400, "invalid_request")
