"""Revocation (RFC 7009) and introspection (RFC 7662): a client ends and inspects its own
tokens only; anything else gets 200 with nothing done, or `{"active": false}`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from tests.factories import Factory
from tests.oauth.conftest import Provider, Registered


def _revoke(op: Provider, client: Registered, token: str, **extra: str) -> None:
    response = op.http.post("/oauth/revoke", data={"token": token, **extra},
                            headers=client.auth)
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"


def test_revoking_a_refresh_token_ends_its_family(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    first = op.redeem(app, op.code(app, ann))
    second = op.refresh(app, first["refresh_token"]).json()
    other = op.redeem(app, op.code(app, ann))  # another sign-in: a grant of its own
    _revoke(op, app, second["refresh_token"], token_type_hint="refresh_token")
    op.refused(op.refresh(app, second["refresh_token"]), 400, "invalid_grant")
    assert op.userinfo(second["access_token"]).status_code == 401
    assert op.userinfo(first["access_token"]).status_code == 401  # the same grant
    assert op.userinfo(other["access_token"]).status_code == 200
    assert op.refresh(app, other["refresh_token"]).status_code == 200


def test_revoking_an_access_token_ends_its_grant(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client()
    tokens = op.redeem(app, op.code(app, ann))
    # A wrong hint is only a hint.
    _revoke(op, app, tokens["access_token"], token_type_hint="refresh_token")
    assert op.userinfo(tokens["access_token"]).status_code == 401
    op.refused(op.refresh(app, tokens["refresh_token"]), 400, "invalid_grant")


def test_another_clients_tokens_and_unknown_ones_are_left_alone(op: Provider,
                                                                make: Factory) -> None:
    ann = make.user()
    app, other = op.client(), op.client()
    tokens = op.redeem(app, op.code(app, ann))
    for token in (tokens["refresh_token"], tokens["access_token"], "wsr_unknown", "x.y.z",
                  "anything"):
        _revoke(op, other, token, token_type_hint="no_such_hint")
    assert op.userinfo(tokens["access_token"]).status_code == 200
    assert op.refresh(app, tokens["refresh_token"]).status_code == 200
    assert op.api.db.sql("SELECT count(*) FROM oauth_grants WHERE revoked_at IS NOT NULL"
                         ) == [(0,)]


def test_revocation_needs_the_client_and_the_token(op: Provider, make: Factory) -> None:
    app = op.client()
    wrong = Registered(app.id, "wscs_wrong")
    op.refused(op.http.post("/oauth/revoke", data={"token": "x"}, headers=wrong.auth), 401,
               "invalid_client")
    op.refused(op.http.post("/oauth/revoke", data={"token": "x"}), 401, "invalid_client")
    op.refused(op.http.post("/oauth/revoke", data={}, headers=app.auth), 400,
               "invalid_request")
    op.refused(op.http.post("/oauth/revoke", json={"token": "x"}, headers=app.auth), 400,
               "invalid_request")
    public = op.client(public=True)  # a public client revokes its own with its id alone
    tokens = op.redeem(public, op.code(public, make.user()))
    answer = op.http.post("/oauth/revoke", data={"token": tokens["refresh_token"],
                                                 "client_id": public.id})
    assert answer.status_code == 200
    op.refused(op.refresh(public, tokens["refresh_token"]), 400, "invalid_grant")


def test_introspection_of_live_tokens(op: Provider, make: Factory) -> None:
    ann = make.user()
    acme = make.workspace(ann, "Acme")
    app = op.client()
    tokens = op.redeem(app, op.code(app, ann, scopes=("openid", "offline_access", "workspace"),
                                    workspace=acme))
    access = op.claims(tokens["access_token"])
    answer = op.http.post("/oauth/introspect", data={"token": tokens["access_token"]},
                          headers=app.auth)
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "active": True, "token_type": "Bearer", "scope": "openid offline_access workspace",
        "client_id": app.id, "sub": str(ann.id), "iss": "http://testserver",
        "aud": "http://testserver/api", "jti": access["jti"], "iat": access["iat"],
        "exp": access["exp"], "workspace_id": str(acme.id), "workspace_slug": acme.slug,
        "workspace_role": "owner"}
    refresh = op.introspect(app, tokens["refresh_token"])
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert refresh["sub"] == str(ann.id) and refresh["client_id"] == app.id
    assert refresh["scope"] == "openid offline_access workspace"
    assert refresh["workspace_slug"] == acme.slug
    assert refresh["exp"] - refresh["iat"] == 30 * 24 * 3600

    service = op.token(app, grant_type="client_credentials").json()["access_token"]
    about = op.introspect(app, service)
    assert about["active"] is True and about["sub"] == app.id
    assert "workspace_id" not in about


def test_introspection_says_inactive_for_the_rest(op: Provider, make: Factory) -> None:
    ann = make.user()
    app, other = op.client(), op.client()
    tokens = op.redeem(app, op.code(app, ann))
    # Another client's live tokens: a client learns only about its own.
    for token in (tokens["access_token"], tokens["refresh_token"], "wsr_nope", "a.b.c"):
        assert op.introspect(other, token) == {"active": False}
    assert op.introspect(app, tokens["refresh_token"])["active"] is True
    newer = op.refresh(app, tokens["refresh_token"]).json()
    assert op.introspect(app, tokens["refresh_token"]) == {"active": False}  # used
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11), tick=False):
        assert op.introspect(app, newer["access_token"]) == {"active": False}  # expired
    _revoke(op, app, newer["refresh_token"])
    for token in (newer["access_token"], newer["refresh_token"]):
        assert op.introspect(app, token) == {"active": False}


def test_introspection_is_for_confidential_clients(op: Provider, make: Factory) -> None:
    public = op.client(public=True)
    tokens = op.redeem(public, op.code(public, make.user()))
    refused = op.http.post("/oauth/introspect", data={"token": tokens["access_token"],
                                                      "client_id": public.id})
    op.refused(refused, 401, "invalid_client")
    op.refused(op.http.post("/oauth/introspect", data={"token": tokens["access_token"]}), 401,
               "invalid_client")
