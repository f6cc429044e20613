"""The UserInfo endpoint (OpenID Connect Core 5.3): claims by scope, read live, for a live
user access token with `openid`; RFC 6750 refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from tests.factories import Factory
from tests.oauth.conftest import Provider


def test_claims_by_scope_read_now(op: Provider, make: Factory) -> None:
    ann = make.user("ann@example.com", name="Ann")
    acme = make.workspace(ann, "Acme")
    app = op.client()
    every = op.redeem(app, op.code(app, ann, scopes=(
        "openid", "email", "profile", "workspaces", "workspace"), workspace=acme))
    answer = op.userinfo(every["access_token"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "sub": str(ann.id), "email": "ann@example.com", "email_verified": False,
        "name": "Ann", "workspace_id": str(acme.id), "workspace_slug": acme.slug,
        "workspace_role": "owner",
        "workspaces": [{"id": str(acme.id), "slug": acme.slug, "name": "Acme",
                        "role": "owner"}]}
    posted = op.http.post("/oauth/userinfo",
                          headers={"Authorization": f"Bearer {every['access_token']}"})
    assert posted.status_code == 200 and posted.json() == answer.json()

    # Live: a rename shows at once, with the same access token.
    op.http.patch("/api/me", json={"name": "Ann B."}, headers=ann.headers)
    assert op.userinfo(every["access_token"]).json()["name"] == "Ann B."

    bare = op.redeem(app, op.code(app, ann, scopes=("openid",)))
    assert op.userinfo(bare["access_token"]).json() == {"sub": str(ann.id)}


def test_refusals(op: Provider, make: Factory) -> None:
    ann = make.user()
    app = op.client(scopes=("openid", "email", "members:read"))
    no_openid = op.redeem(app, op.code(app, ann, scopes=("email",)))
    refused = op.userinfo(no_openid["access_token"])
    op.refused(refused, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]

    service = op.token(app, grant_type="client_credentials").json()
    op.refused(op.userinfo(service["access_token"]), 403, "insufficient_scope")

    for token in ("garbage", "a.b.c", ann.token):  # not a JWT of ours (an opaque API token)
        answer = op.userinfo(token)
        op.refused(answer, 401, "invalid_token")
        assert answer.headers["www-authenticate"].startswith('Bearer realm="workspaces", '
                                                            'error="invalid_token"')
    missing = op.http.get("/oauth/userinfo")
    op.refused(missing, 401, "invalid_token")
    assert missing.headers["www-authenticate"] == 'Bearer realm="workspaces"'

    tokens = op.redeem(app, op.code(app, ann, scopes=("openid",)))
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=11), tick=False):
        op.refused(op.userinfo(tokens["access_token"]), 401, "invalid_token")
    revoked = op.http.post("/oauth/revoke", data={"token": tokens["access_token"]},
                           headers=app.auth)
    assert revoked.status_code == 200
    op.refused(op.userinfo(tokens["access_token"]), 401, "invalid_token")
