"""The audit trail keeps each actor's address as it was when the event was written (found by
attacking: it showed a former member's current address, so the workspace learned where the
account had moved), and records the workspace's creation."""

from __future__ import annotations

import re
from typing import Any

from tests.api.conftest import Api
from tests.api.test_profile import change_link, confirm
from tests.conftest import Sink


def _events(api: Api, headers: dict[str, str], slug: str) -> list[dict[str, Any]]:
    listed = api.client.get(f"/api/workspaces/{slug}/audit", headers=headers)
    assert listed.status_code == 200, listed.text
    return list(reversed(listed.json()["items"]))  # oldest first


def test_a_former_members_later_address_is_not_shown(api: Api, smtp: Sink) -> None:
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann, "Acme")
    token = api.invite_token(ann, slug, "bob@example.com")
    bob = api.signup("bob@example.com")
    assert api.client.post(f"/api/invites/{token}/accept", headers=bob).status_code == 200
    bob_id = api.client.get("/api/me", headers=bob).json()["id"]
    assert api.client.delete(f"/api/workspaces/{slug}/members/{bob_id}",
                             headers=bob).status_code == 204
    assert confirm(api, change_link(api, smtp, bob, "bob@new-employer.example"),
                   bob).status_code == 200

    events = _events(api, ann, slug)
    assert [(e["action"], e["actor_email"]) for e in events] == [
        ("workspace_created", "ann@example.com"), ("created", "ann@example.com"),
        ("accepted", "bob@example.com"), ("left", "bob@example.com")]
    assert events[0]["detail"] == {"name": "Acme"}
    assert events[0]["target_type"] == "workspace"
    assert "new-employer" not in str(events)

    page = api.client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    assert api.client.post("/signin", data={"csrf_token": csrf[1], "email": "ann@example.com",
                                            "password": "correct horse battery"}
                           ).status_code == 200
    tab = api.client.get(f"/w/{slug}/audit")
    assert tab.status_code == 200, tab.text
    assert "new-employer" not in tab.text and "bob@example.com" in tab.text
    assert "Workspace created" in tab.text and "named “Acme”" in tab.text
