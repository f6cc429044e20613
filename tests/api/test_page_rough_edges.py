"""Pages as people see them: an icon, the session in the header of every page (error pages
too), and a schema problem told without operator details."""

from __future__ import annotations

from tests.api.conftest import Api


def _sign_in_page(api: Api, email: str) -> None:
    """A browser session in the client's cookies."""
    api.signup(email)
    form = api.client.get("/signin").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    signed = api.client.post("/signin", data={"csrf_token": csrf, "email": email,
                                              "password": "correct horse battery"})
    assert signed.status_code == 200 and "Sign out" in signed.text


def test_the_icon_is_served_by_the_app(api: Api) -> None:
    page = api.client.get("/signin").text
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    for path in ("/favicon.ico", "/static/favicon.svg"):
        icon = api.client.get(path)
        assert icon.status_code == 200 and icon.headers["content-type"].startswith(
            "image/svg+xml") and icon.content.startswith(b"<svg")


def test_404_and_405_pages_show_who_is_signed_in(api: Api) -> None:
    anonymous = api.client.get("/no/such/page")
    assert anonymous.status_code == 404 and 'href="/signin"' in anonymous.text
    _sign_in_page(api, "ann@example.com")
    for response in (api.client.get("/no/such/page"), api.client.delete("/signin")):
        assert response.status_code in (404, 405)
        assert "ann@example.com" in response.text and "Sign out" in response.text
        assert 'href="/signin">Sign in' not in response.text


def test_a_schema_error_page_names_no_table_and_no_command(api: Api) -> None:
    _sign_in_page(api, "ann@example.com")
    bob = api.signup("bob@example.com")
    slug = api.workspace(bob, "Acme")
    api.db.sql("DROP TABLE workspace_invites" + (" CASCADE" if api.db.is_pg else ""))
    page = api.client.get(f"/invites/{'x' * 43}")
    assert page.status_code == 503
    assert "unavailable until the people who run it fix a problem" in page.text
    assert "workspace_invites" not in page.text and "workspaces db" not in page.text
    data = api.client.get(f"/api/workspaces/{slug}/invites", headers=bob)
    assert data.status_code == 503  # the API keeps the operator's details
    assert data.json()["error"]["table"] == "workspace_invites"
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and "workspace_invites" in ready.text


def test_reloading_where_a_form_was_posted_goes_back_to_its_page(api: Api) -> None:
    """A refused form is shown at the address it was posted to; reloading that address is a
    GET, which leads back to the form's page instead of 405."""
    _sign_in_page(api, "ann@example.com")
    for posted, page in (("/w/acme/invites", "/w/acme"), ("/workspaces", "/"),
                         ("/w/acme/invites/123/revoke", "/w/acme"),
                         ("/w/acme/members/123/role", "/w/acme"),
                         ("/invites/abc/accept", "/invites/abc"), ("/signout", "/")):
        reloaded = api.client.get(posted, follow_redirects=False)
        assert (reloaded.status_code, reloaded.headers["location"]) == (303, page), posted


def test_revoke_and_remove_ask_first_and_change_nothing_until_confirmed(api: Api) -> None:
    _sign_in_page(api, "ann@example.com")
    ann = api.client.post("/api/auth/login", json={"email": "ann@example.com",
                                                   "password": "correct horse battery"})
    owner = {"Authorization": f"Bearer {ann.json()['token']}"}
    slug = api.workspace(owner, "Acme")
    invite = api.invite(owner, slug, "carol@example.com")
    tab = api.client.get(f"/w/{slug}").text
    csrf = tab.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    path = f"/w/{slug}/invites/{invite['id']}"
    asked = api.client.post(f"{path}/revoke", data={"csrf_token": csrf})
    assert asked.status_code == 200 and "Revoke the invite to carol@example.com?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert api.db.sql("SELECT status FROM workspace_invites") == [("pending",)]
    done = api.client.post(f"{path}/revoke", data={"csrf_token": csrf, "confirmed": "yes"},
                           follow_redirects=False)
    assert done.status_code == 303
    assert api.db.sql("SELECT status FROM workspace_invites") == [("revoked",)]


def test_a_member_can_leave_after_confirming_and_the_sole_owner_cannot(api: Api) -> None:
    owner = api.signup("owner@example.com")
    slug = api.workspace(owner, "Acme")
    token = api.invite_token(owner, slug, "ann@example.com")
    _sign_in_page(api, "ann@example.com")
    tab = api.client.get(f"/invites/{token}").text
    csrf = tab.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert api.client.post(f"/invites/{token}/accept", data={"csrf_token": csrf}).status_code \
        == 200
    page = api.client.get(f"/w/{slug}").text
    assert "Leave Acme" in page
    ann_id = api.db.sql("SELECT id FROM users WHERE email = 'ann@example.com'")[0][0]
    leave = f"/w/{slug}/members/{ann_id}/remove"
    asked = api.client.post(leave, data={"csrf_token": csrf})
    assert asked.status_code == 200 and "Leave Acme?" in asked.text
    assert len(api.client.get(f"/api/workspaces/{slug}/members", headers=owner).json()) == 2
    left = api.client.post(leave, data={"csrf_token": csrf, "confirmed": "yes"},
                           follow_redirects=False)
    assert left.status_code == 303 and left.headers["location"] == "/"
    assert [m["email"] for m in api.client.get(f"/api/workspaces/{slug}/members",
                                               headers=owner).json()] == ["owner@example.com"]


def test_the_sole_owner_is_told_to_hand_over_instead_of_a_leave_button(api: Api) -> None:
    _sign_in_page(api, "ann@example.com")
    form = api.client.get("/").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    created = api.client.post("/workspaces", data={"csrf_token": csrf, "name": "Solo"},
                              follow_redirects=True)
    assert created.status_code == 200
    assert "make someone else an owner before you can leave" in created.text
    assert "Leave Solo" not in created.text
