"""Invitations through the HTTP API, with email over real SMTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from tests.api.conftest import Api, token_of
from tests.conftest import Sink, link_in
from workspaces.invites.schemas import InvitePreview


def _expire(api: Api, email: str) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None).isoformat(sep=" ")
    api.db.sql(f"UPDATE workspace_invites SET expires_at = '{past}' WHERE email = '{email}'")


def test_invite_email_link_preview_and_accept(api: Api, smtp: Sink) -> None:
    owner = api.signup("ann@example.com", "Ann")
    slug = api.workspace(owner, "Acme Inc")
    created = api.invite(owner, slug, "Bob@Example.com", "admin")
    assert created["email"] == "bob@example.com" and created["status"] == "pending"
    assert created["accept_url"].startswith("http://testserver/invites/")

    (message,) = smtp.wait_for(1)
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "ann@example.com invited you to “Acme Inc” on Workspaces"
    token = link_in(message)
    assert created["accept_url"].endswith(token)
    html = message.get_body(("html",))
    assert html is not None and f"/invites/{token}" in html.get_content()
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "as an admin" in text and "expires on" in text

    preview = api.client.get(f"/api/invites/{token}")
    assert preview.status_code == 200
    assert preview.json() | {"expires_at": None} == {
        "workspace_name": "Acme Inc", "inviter_name": "Ann", "inviter_email": "ann@example.com",
        "email": "bob@example.com",
        "role": "admin", "status": "pending", "expires_at": None}
    # the documented model, byte for byte (the route serialises the service's Preview itself)
    model = InvitePreview.model_validate_json(preview.content)
    assert preview.content == TypeAdapter(InvitePreview).dump_json(model)
    assert preview.json()["expires_at"].endswith("Z")  # aware, on SQLite too
    for _ in range(3):  # opening the link (a mail scanner's GET) changes nothing
        api.client.get(f"/api/invites/{token}")
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "pending"

    bob = api.signup("bob@example.com", "Bob")
    accepted = api.client.post(f"/api/invites/{token}/accept", headers=bob)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["member"]["role"] == "admin"
    members = api.client.get(f"/api/workspaces/{slug}/members", headers=owner).json()
    assert {(m["email"], m["role"]) for m in members} == {
        ("ann@example.com", "owner"), ("bob@example.com", "admin")}
    api.error(api.client.post(f"/api/invites/{token}/accept", headers=bob), 410, "invite_used")
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "accepted"


def test_a_signed_in_user_with_another_email_is_refused_and_the_invite_stays(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "bob@example.com")
    mallory = api.signup("mallory@example.com")
    message = api.error(api.client.post(f"/api/invites/{token}/accept", headers=mallory),
                        403, "email_mismatch")
    assert "signed in as mallory@example.com" in message and "bob@example.com" in message
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "pending"
    bob = api.signup("BOB@example.com")  # the same address, typed differently
    assert api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code == 200


def test_a_newcomer_signs_up_from_the_invite_and_joins_in_one_step(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "new@example.com")
    api.error(api.client.post(f"/api/invites/{token}/accept"), 401, "sign_in_required")
    joined = api.client.post(f"/api/invites/{token}/accept",
                             json={"name": "Newt", "password": "long enough pw"})
    assert joined.status_code == 200, joined.text
    assert joined.json()["member"]["email"] == "new@example.com"
    headers = {"Authorization": f"Bearer {joined.json()['token']}"}
    assert api.client.get("/api/me", headers=headers).json()["email"] == "new@example.com"
    assert api.client.get(f"/api/workspaces/{slug}", headers=headers).json()["role"] == "member"


def test_invite_rules_and_their_error_codes(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    url = f"/api/workspaces/{slug}/invites"
    api.invite(owner, slug, "bob@example.com")
    api.error(api.client.post(url, json={"email": "BOB@example.com"}, headers=owner),
              409, "invite_exists")
    api.error(api.client.post(url, json={"email": "ann@example.com"}, headers=owner),
              409, "already_member")
    api.error(api.client.post(url, json={"email": "nope"}, headers=owner), 422, "invalid_email")
    api.error(api.client.post(url, json={"email": "c@example.com", "role": "king"},
                              headers=owner), 422, "invalid_input")
    api.error(api.client.post(url, json={"email": "c@example.com", "expires_in_days": 31},
                              headers=owner), 422, "invalid_input")
    api.error(api.client.post(url, json={"email": "c@example.com"}), 401, "not_authenticated")

    admin_token = api.invite(owner, slug, "adm@example.com", "admin")["accept_url"]
    admin = api.signup("adm@example.com")
    api.client.post(f"/api/invites/{admin_token.rsplit('/', 1)[1]}/accept", headers=admin)
    api.error(api.client.post(url, json={"email": "o@example.com", "role": "owner"},
                              headers=admin), 403, "role_above_inviter")
    assert api.client.post(url, json={"email": "a2@example.com", "role": "admin"},
                           headers=admin).status_code == 201

    member_token = api.invite(owner, slug, "mem@example.com")["accept_url"]
    member = api.signup("mem@example.com")
    api.client.post(f"/api/invites/{member_token.rsplit('/', 1)[1]}/accept", headers=member)
    api.error(api.client.post(url, json={"email": "x@example.com"}, headers=member),
              403, "insufficient_role")
    api.error(api.client.get(url, headers=member), 403, "insufficient_role")

    outsider = api.signup("out@example.com")
    api.error(api.client.post(url, json={"email": "x@example.com"}, headers=outsider),
              404, "workspace_not_found")


def test_resend_replaces_the_link_and_sends_a_new_email(api: Api, smtp: Sink) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    invite = api.invite(owner, slug, "bob@example.com")
    first = link_in(smtp.wait_for(1)[0])
    resent = api.client.post(f"/api/workspaces/{slug}/invites/{invite['id']}/resend",
                             headers=owner)
    assert resent.status_code == 200, resent.text
    second = link_in(smtp.wait_for(2)[1])
    assert second != first and resent.json()["accept_url"].endswith(second)
    api.error(api.client.get(f"/api/invites/{first}"), 404, "invite_not_found")
    assert api.client.get(f"/api/invites/{second}").json()["status"] == "pending"


def test_revoke_stops_the_link(api: Api) -> None:
    owner = api.signup("ann@example.com", "Ann")
    slug = api.workspace(owner)
    invite = api.invite(owner, slug, "bob@example.com")
    token = token_of(invite)
    revoked = api.client.post(f"/api/workspaces/{slug}/invites/{invite['id']}/revoke",
                              headers=owner)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    bob = api.signup("bob@example.com")
    message = api.error(api.client.post(f"/api/invites/{token}/accept", headers=bob),
                        410, "invite_revoked")
    assert "ask “Ann” (ann@example.com)" in message
    api.error(api.client.post(f"/api/workspaces/{slug}/invites/{invite['id']}/revoke",
                              headers=owner), 409, "invite_revoked")
    api.error(api.client.post(f"/api/workspaces/{slug}/invites/{invite['id']}/resend",
                              headers=owner), 409, "invite_revoked")


def test_an_expired_invite_is_expired_everywhere_and_can_be_resent(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    invite = api.invite(owner, slug, "bob@example.com")
    token = token_of(invite)
    _expire(api, "bob@example.com")
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "expired"
    bob = api.signup("bob@example.com")
    api.error(api.client.post(f"/api/invites/{token}/accept", headers=bob), 410,
              "invite_expired")
    listed = api.client.get(f"/api/workspaces/{slug}/invites?status=expired", headers=owner)
    assert [i["id"] for i in listed.json()["items"]] == [invite["id"]]
    assert api.client.get(f"/api/workspaces/{slug}/invites?status=pending",
                          headers=owner).json()["items"] == []
    resent = api.client.post(f"/api/workspaces/{slug}/invites/{invite['id']}/resend",
                             headers=owner).json()
    assert resent["status"] == "pending"
    token = token_of(resent)
    assert api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code == 200


def test_inviting_again_after_expiry_replaces_the_expired_invite(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    old = api.invite(owner, slug, "bob@example.com")
    _expire(api, "bob@example.com")
    new = api.invite(owner, slug, "bob@example.com")
    statuses = {i["id"]: i["status"] for i in api.client.get(
        f"/api/workspaces/{slug}/invites", headers=owner).json()["items"]}
    assert statuses == {old["id"]: "revoked", new["id"]: "pending"}


def test_decline_is_recorded_and_ends_the_invite(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    invite = api.invite(owner, slug, "bob@example.com")
    token = token_of(invite)
    assert api.client.post(f"/api/invites/{token}/decline").status_code == 204
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "declined"
    api.error(api.client.post(f"/api/invites/{token}/decline"), 410, "invite_used")
    audit = api.client.get(f"/api/workspaces/{slug}/audit", headers=owner).json()["items"]
    assert [e["action"] for e in audit][:2] == ["declined", "created"]


def test_listing_filters_and_pages_newest_first(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    ids = [api.invite(owner, slug, f"p{n}@example.com")["id"] for n in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        query = f"limit=3&cursor={cursor}" if cursor else "limit=3"
        page = api.client.get(f"/api/workspaces/{slug}/invites?{query}", headers=owner).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    api.error(api.client.get(f"/api/workspaces/{slug}/invites?cursor=garbage", headers=owner),
              422, "invalid_cursor")
    api.error(api.client.get(f"/api/workspaces/{slug}/invites?limit=101", headers=owner),
              422, "invalid_input")


def test_two_racing_invites_of_one_address_make_one_invite(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    results: list[int] = []

    def invite() -> None:
        response = api.client.post(f"/api/workspaces/{slug}/invites",
                                   json={"email": "bob@example.com"}, headers=owner)
        results.append(response.status_code)

    threads = [threading.Thread(target=invite) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 5
    assert api.db.sql("SELECT count(*) FROM workspace_invites") == [(1,)]


def test_two_racing_accepts_make_one_membership(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "bob@example.com")
    bob = api.signup("bob@example.com")
    results: list[int] = []

    def accept() -> None:
        results.append(api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code)

    threads = [threading.Thread(target=accept) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results)[0] == 200 and results.count(200) == 1
    assert all(code in (409, 410) for code in results if code != 200), results
    assert api.db.sql("SELECT count(*) FROM workspace_members") == [(2,)]


def test_invite_creation_is_rate_limited_per_workspace(api: Api) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    api.client.app.state.settings.invite_rate_limit_per_hour = 3  # type: ignore[attr-defined]
    for n in range(3):
        api.invite(owner, slug, f"p{n}@example.com")
    over = api.client.post(f"/api/workspaces/{slug}/invites",
                           json={"email": "p9@example.com"}, headers=owner)
    api.error(over, 429, "rate_limited")
    assert 1 <= int(over.headers["Retry-After"]) <= 3600
    other = api.workspace(owner, "Other")
    api.invite(owner, other, "p9@example.com")  # counted per workspace


def test_the_database_never_holds_a_raw_token(api: Api, smtp: Sink) -> None:
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    api.invite(owner, slug, "bob@example.com")
    token = link_in(smtp.wait_for(1)[0])
    bob_headers = api.signup("bob@example.com")
    api_token = bob_headers["Authorization"].split()[1]
    assert api.client.post(f"/api/invites/{token}/accept", headers=bob_headers).status_code == 200
    secrets = {token, api_token, "correct horse battery"}
    for (table,) in api.db.sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if not api.db.is_pg else
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    ):
        for row in api.db.sql(f'SELECT * FROM "{table}"'):
            dumped = " ".join(map(str, row))
            assert not any(secret in dumped for secret in secrets), table


def test_an_inviter_name_cannot_pose_as_an_address_or_a_brand(api: Api, smtp: Sink) -> None:
    """Found by attacking: an inviter named "security@paypal.com" sent emails whose Subject
    and text began with that name, and the invite page showed it alone as "Invited by"."""
    owner = api.signup("mallory@evil.example", "security@paypal.com")
    slug = api.workspace(owner, "PayPal Account Review")
    token = api.invite_token(owner, slug, "bob@example.com")
    (message,) = smtp.wait_for(1)
    assert message["Subject"] == \
        "mallory@evil.example invited you to “PayPal Account Review” on Workspaces"
    assert "security@paypal.com" not in message["Subject"]
    shown = "“security@paypal.com” (mallory@evil.example)"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith(f"{shown} invited you")
    html = message.get_body(("html",))
    assert html is not None and "&#34;" not in shown and shown in html.get_content()
    page = api.client.get(f"/invites/{token}")
    assert page.status_code == 200
    assert f"<dt>Invited by</dt><dd>{shown}</dd>" in page.text
    assert api.client.get(f"/api/invites/{token}").json()["inviter_email"] == \
        "mallory@evil.example"
