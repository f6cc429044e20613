"""Verified addresses: sign-up mails a link, the link verifies, a reset through the mailbox
takes an unverified account over, and "Invitations for you" need a verified address."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, token_of
from tests.conftest import Sink, at_once, link_in
from workspaces.security import hash_token
from workspaces.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"verification_limit_per_account_per_hour": 2})


def _me(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    response = api.client.get("/api/me", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _verify(api: Api, smtp: Sink, address: str, headers: dict[str, str]) -> None:
    token = link_in(smtp.confirmation_for(address), "verify")
    response = api.client.post("/api/auth/verify", json={"token": token}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"email": address}


def _events(api: Api, address: str) -> list[str]:
    return [str(row[0]) for row in api.db.sql(
        "SELECT action FROM account_events JOIN users ON users.id = account_events.user_id "
        f"WHERE users.email = '{address}' ORDER BY account_events.created_at")]


def test_sign_up_mails_a_link_that_verifies_the_address_once(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    assert _me(api, ann)["email_verified_at"] is None
    message = smtp.confirmation_for("ann@example.com")
    token = link_in(message, "verify")
    # Only the token's hash is stored, and the outbox's sealed copy was erased on delivery.
    assert api.db.sql("SELECT count(*) FROM account_tokens WHERE token_hash = "
                      f"'{hash_token(token)}' AND purpose = 'verify_email'") == [(1,)]
    for table in ("account_tokens", "email_outbox", "account_events"):
        assert token not in str(api.db.sql(f"SELECT * FROM {table}"))
    # Opening the page changes nothing (mail scanners open links); the button does, for the
    # account signed in (here: the API; the browser test presses the button).
    page = api.client.get(f"/verify/{token}")
    assert page.status_code == 200 and "Sign in as ann@example.com" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert _me(api, ann)["email_verified_at"] is None
    verified = api.client.post("/api/auth/verify", json={"token": token}, headers=ann)
    assert verified.json() == {"email": "ann@example.com"}
    assert _me(api, ann)["email_verified_at"] is not None
    assert _events(api, "ann@example.com") == ["signed_up", "email_verified"]
    again = api.client.post("/api/auth/verify", json={"token": token}, headers=ann)
    assert "ask for a new one" in api.error(again, 410, "verify_link_invalid")
    api.error(api.client.post("/api/auth/verify", json={"token": "x" * 43}, headers=ann),
              410, "verify_link_invalid")
    api.error(api.client.post("/api/me/verification", headers=ann), 409, "already_verified")


def test_a_new_link_ends_the_old_one_and_asking_is_limited(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    first = link_in(smtp.confirmation_for("ann@example.com"), "verify")
    sent = api.client.post("/api/me/verification", headers=ann)
    assert sent.status_code == 202 and sent.json()["email"] == "ann@example.com"
    api.client.post("/api/me/verification", headers=ann)  # the second of two an hour
    refused = api.client.post("/api/me/verification", headers=ann)
    api.error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    api.error(api.client.post("/api/me/verification"), 401, "not_authenticated")
    api.error(api.client.post("/api/me/verification", headers={"Authorization": "Bearer x"}),
              401, "invalid_token")
    api.error(api.client.post("/api/auth/verify", json={"token": first}, headers=ann), 410,
              "verify_link_invalid")
    newest = link_in(smtp.confirmation_for("ann@example.com", count=3), "verify")
    assert api.db.sql("SELECT count(*) FROM account_tokens WHERE purpose = 'verify_email' "
                      "AND used_at IS NULL") == [(1,)]
    done = api.client.post("/api/auth/verify", json={"token": newest}, headers=ann)
    assert done.status_code == 200


def test_a_link_for_an_address_the_account_no_longer_has_does_nothing(api: Api,
                                                                     smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    token = link_in(smtp.confirmation_for("ann@example.com"), "verify")
    api.db.sql("UPDATE users SET email = 'ann2@example.com' WHERE email = 'ann@example.com'")
    api.error(api.client.post("/api/auth/verify", json={"token": token}, headers=ann), 410,
              "verify_link_invalid")
    assert api.db.sql("SELECT email_verified_at FROM users") == [(None,)]


def test_only_the_account_signed_in_can_use_its_link(api: Api, smtp: Sink) -> None:
    """Someone registered ann's address; ann's honest click on "confirm" must not verify
    the squatter's account. The page offers ann the way to take it over instead."""
    api.signup("ann@example.com", name="Not Ann")  # the squatter
    token = link_in(smtp.confirmation_for("ann@example.com"), "verify")
    mallory = api.signup("mallory@example.com")
    api.error(api.client.post("/api/auth/verify", json={"token": token}), 401,
              "not_authenticated")
    refused = api.client.post("/api/auth/verify", json={"token": token}, headers=mallory)
    assert "Sign out, and sign in as that account" in api.error(
        refused, 403, "link_for_another_account")
    page = api.client.get(f"/verify/{token}")  # ann opens the link, not signed in
    assert page.status_code == 200 and "Sign in as ann@example.com" in page.text
    assert 'href="/password-reset"' in page.text and "Confirm my address" not in page.text
    assert page.headers["cache-control"] == "no-store"
    posted = api.client.post(f"/verify/{token}", data={"csrf_token": "x"},
                             follow_redirects=False)
    assert posted.status_code == 403  # no session, no matching form token: nothing happens
    assert api.db.sql("SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL") == [
        (0,)]
    assert api.db.sql("SELECT count(*) FROM account_tokens WHERE purpose = 'verify_email' "
                      "AND used_at IS NULL") == [(2,)]  # refusals did not use the link up


def test_a_reset_through_the_mailbox_takes_over_an_unverified_account(api: Api,
                                                                      smtp: Sink) -> None:
    """Someone registered ann's address first; ann resets the password from her mailbox."""
    squatter = api.signup("ann@example.com", name="Not Ann", password="squatter password")
    assert api.client.post("/api/auth/password-reset",
                           json={"email": "ann@example.com"}).status_code == 202
    (message,) = smtp.wait_for(1)
    token = link_in(message, "reset")
    assert api.client.post("/api/auth/password-reset/confirm", json={
        "token": token, "password": "ann's own password"}).status_code == 204
    api.error(api.client.get("/api/me", headers=squatter), 401, "invalid_token")
    api.error(api.client.post("/api/auth/login", json={
        "email": "ann@example.com", "password": "squatter password"}), 401,
        "invalid_credentials")
    login = api.client.post("/api/auth/login", json={"email": "ann@example.com",
                                                     "password": "ann's own password"})
    assert login.json()["user"]["email_verified_at"] is not None
    assert _events(api, "ann@example.com") == ["signed_up", "password_reset"]
    assert api.db.sql("SELECT detail FROM account_events WHERE action = 'password_reset'"
                      )[0][0] in ({"verified_now": True}, '{"verified_now": true}')


def test_an_invite_link_does_not_verify_the_address(api: Api, smtp: Sink) -> None:
    """Whoever created the invite saw the same link: it proves nothing about the mailbox."""
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann)
    token = api.invite_token(ann, slug, "bob@example.com")
    joined = api.client.post(f"/api/invites/{token}/accept",
                             json={"name": "Bob", "password": "bob's password"})
    assert joined.status_code == 200, joined.text
    bob = {"Authorization": f"Bearer {joined.json()['token']}"}
    assert _me(api, bob)["email_verified_at"] is None
    _verify(api, smtp, "bob@example.com", bob)  # a link of its own was mailed
    assert _me(api, bob)["email_verified_at"] is not None


def _for_me(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = api.client.get("/api/me/invites", headers=headers)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


def test_invitations_for_you_need_a_verified_address(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann)
    invite = api.invite(ann, slug, "bob@example.com", role="admin")
    bob = api.signup("bob@example.com")
    refused = api.client.get("/api/me/invites", headers=bob)
    assert "Confirm your address" in api.error(refused, 403, "email_unverified")
    api.error(api.client.post(f"/api/me/invites/{invite['id']}/accept", headers=bob), 403,
              "email_unverified")
    api.error(api.client.post(f"/api/me/invites/{invite['id']}/decline", headers=bob), 403,
              "email_unverified")
    _verify(api, smtp, "bob@example.com", bob)
    (listed,) = _for_me(api, bob)
    assert listed["id"] == invite["id"]
    assert {k: listed[k] for k in ("workspace_name", "workspace_slug", "role",
                                   "inviter_name", "inviter_email")} == {
        "workspace_name": "Acme", "workspace_slug": slug, "role": "admin",
        "inviter_name": "ann", "inviter_email": "ann@example.com"}
    accepted = api.client.post(f"/api/me/invites/{invite['id']}/accept", headers=bob)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["member"]["role"] == "admin"
    assert _for_me(api, bob) == []
    api.error(api.client.post(f"/api/me/invites/{invite['id']}/accept", headers=bob), 410,
              "invite_used")
    assert api.db.sql("SELECT status FROM workspace_invites") == [("accepted",)]
    assert ("accepted",) in api.db.sql("SELECT action FROM audit_events")


def test_only_open_invites_to_my_address_are_listed(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    _verify(api, smtp, "ann@example.com", ann)
    bob = api.signup("bob@example.com")
    slugs = [api.workspace(bob, name) for name in ("Open", "Revoked", "Expired", "Other")]
    open_, revoked, expired, _ = slugs
    mine = api.invite(bob, open_, "ann@example.com")
    gone = api.invite(bob, revoked, "ann@example.com")
    api.client.post(f"/api/workspaces/{revoked}/invites/{gone['id']}/revoke", headers=bob)
    api.invite(bob, expired, "ann@example.com")
    api.db.sql("UPDATE workspace_invites SET expires_at = created_at "
               f"WHERE workspace_id = (SELECT id FROM workspaces WHERE slug = '{expired}')")
    others = api.invite(bob, slugs[3], "carol@example.com")
    assert [i["id"] for i in _for_me(api, ann)] == [mine["id"]]
    # Someone else's invite is not found by id, the same as one that does not exist.
    for invite_id in (others["id"], "00000000-0000-0000-0000-000000000000"):
        api.error(api.client.post(f"/api/me/invites/{invite_id}/accept", headers=ann), 404,
                  "invite_not_found")
        api.error(api.client.post(f"/api/me/invites/{invite_id}/decline", headers=ann), 404,
                  "invite_not_found")
    api.error(api.client.post(f"/api/me/invites/{gone['id']}/accept", headers=ann), 410,
              "invite_revoked")
    assert api.client.get("/api/me/invites").status_code == 401


def test_declining_from_the_list(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    _verify(api, smtp, "ann@example.com", ann)
    bob = api.signup("bob@example.com")
    slug = api.workspace(bob)
    invite = api.invite(bob, slug, "ann@example.com")
    declined = api.client.post(f"/api/me/invites/{invite['id']}/decline", headers=ann)
    assert declined.status_code == 204, declined.text
    assert _for_me(api, ann) == []
    assert api.db.sql("SELECT status FROM workspace_invites") == [("declined",)]
    api.error(api.client.post(f"/api/me/invites/{invite['id']}/accept", headers=ann), 410,
              "invite_used")
    api.error(api.client.get(f"/api/invites/{token_of(invite)}/accept"), 405,
              "method_not_allowed")


def test_accepting_from_the_list_and_through_the_link_at_once(api: Api, smtp: Sink) -> None:
    """Both ways claim the same row: one joins, the other is told the invite is used."""
    ann = api.signup("ann@example.com")
    _verify(api, smtp, "ann@example.com", ann)
    bob = api.signup("bob@example.com")
    for trial in range(3):
        slug = api.workspace(bob, f"Race {trial}")
        invite = api.invite(bob, slug, "ann@example.com")
        results = at_once(
            lambda i=invite: api.client.post(f"/api/me/invites/{i['id']}/accept", headers=ann),
            lambda i=invite: api.client.post(f"/api/invites/{token_of(i)}/accept",
                                             headers=ann))
        codes = sorted(r.status_code for r in results)
        assert codes in ([200, 409], [200, 410]), [r.text for r in results]
        assert api.db.sql("SELECT count(*) FROM workspace_members JOIN workspaces ON "
                          "workspaces.id = workspace_id JOIN users ON users.id = user_id "
                          f"WHERE slug = '{slug}' AND email = 'ann@example.com'") == [(1,)]
