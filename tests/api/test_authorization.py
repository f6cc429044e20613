"""Who may call what: every workspace operation as anonymous, outsider, member, admin, owner."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tests.api.conftest import Api

CALLERS = ("anonymous", "outsider", "member", "admin", "owner")


@dataclass(frozen=True)
class Op:
    name: str
    method: str
    path: str  # may contain {slug}, {member_id}, {invite_id}
    body: dict[str, Any] | None
    expected: tuple[int, int, int, int, int]  # in CALLERS order


MATRIX = (
    Op("read workspace", "GET", "/api/workspaces/{slug}", None, (401, 404, 200, 200, 200)),
    Op("list members", "GET", "/api/workspaces/{slug}/members", None, (401, 404, 200, 200, 200)),
    Op("change a role", "PATCH", "/api/workspaces/{slug}/members/{member_id}", {"role": "admin"},
       (401, 404, 403, 200, 200)),
    Op("remove a member", "DELETE", "/api/workspaces/{slug}/members/{member_id}", None,
       (401, 404, 403, 204, 204)),
    Op("invite", "POST", "/api/workspaces/{slug}/invites", {"email": "{fresh}"},
       (401, 404, 403, 201, 201)),
    Op("list invites", "GET", "/api/workspaces/{slug}/invites", None, (401, 404, 403, 200, 200)),
    Op("resend an invite", "POST", "/api/workspaces/{slug}/invites/{invite_id}/resend", None,
       (401, 404, 403, 200, 200)),
    Op("revoke an invite", "POST", "/api/workspaces/{slug}/invites/{invite_id}/revoke", None,
       (401, 404, 403, 200, 200)),
    Op("read the audit trail", "GET", "/api/workspaces/{slug}/audit", None,
       (401, 404, 403, 200, 200)),
    Op("delete the workspace", "DELETE", "/api/workspaces/{slug}", None,
       (401, 404, 403, 403, 204)),
)


class World:
    """A workspace with an owner, an admin and a member, and an outsider with their own."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.counter = itertools.count()
        self.headers: dict[str, dict[str, str]] = {"anonymous": {}}
        self.headers["owner"] = api.signup("owner@example.com")
        self.slug = api.workspace(self.headers["owner"], "Matrix")
        self.headers["admin"] = self.join("admin")[1]
        self.headers["member"] = self.join("member")[1]
        self.headers["outsider"] = api.signup("outsider@example.com")
        self.other_slug = api.workspace(self.headers["outsider"], "Elsewhere")

    def fresh(self) -> str:
        return f"person{next(self.counter)}@example.com"

    def join(self, role: str, slug: str | None = None, owner: str = "owner"
             ) -> tuple[str, dict[str, str]]:
        """Someone new joins with `role`; returns their user id and headers."""
        email = self.fresh()
        token = self.api.invite(self.headers[owner], slug or self.slug, email, role)[
            "accept_url"].rsplit("/", 1)[1]
        headers = self.api.signup(email)
        joined = self.api.client.post(f"/api/invites/{token}/accept", headers=headers)
        assert joined.status_code == 200, joined.text
        return str(joined.json()["member"]["user_id"]), headers

    def invite_id(self, slug: str | None = None, owner: str = "owner") -> str:
        return str(self.api.invite(self.headers[owner], slug or self.slug, self.fresh())["id"])

    def callers_of(self, slug: str) -> dict[str, dict[str, str]]:
        """Headers per kind of caller for `slug` (a new workspace gets its own admin/member)."""
        if slug == self.slug:
            return self.headers
        return {**self.headers, "admin": self.join("admin", slug)[1],
                "member": self.join("member", slug)[1]}

    def call(self, op: Op, headers: dict[str, str], values: dict[str, str]) -> int:
        body = ({k: v.format(**values) if isinstance(v, str) else v for k, v in op.body.items()}
                if op.body else None)
        response = self.api.client.request(op.method, op.path.format(**values), json=body,
                                           headers=headers)
        if response.status_code >= 400:
            assert response.json()["error"]["code"], response.text
        return int(response.status_code)


def test_every_operation_for_every_kind_of_caller(api: Api) -> None:
    world = World(api)
    failures = []
    for op in MATRIX:
        for caller, expected in zip(CALLERS, op.expected, strict=True):
            slug = world.slug
            if op.name == "delete the workspace":  # each cell deletes a workspace of its own
                slug = api.workspace(world.headers["owner"], f"Doomed {caller}")
            values = {"slug": slug, "fresh": world.fresh()}
            if "{member_id}" in op.path:  # each cell acts on a member of its own
                values["member_id"] = world.join("member", slug)[0]
            if "{invite_id}" in op.path:
                values["invite_id"] = world.invite_id(slug)
            got = world.call(op, world.callers_of(slug)[caller], values)
            if got != expected:
                failures.append(f"{op.name} as {caller}: {got}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_ids_from_another_workspace_are_not_found(api: Api) -> None:
    world = World(api)
    foreign_invite = world.invite_id(world.other_slug, owner="outsider")
    foreign_member = world.join("member", world.other_slug, owner="outsider")[0]
    owner = world.headers["owner"]
    for path, code in (
        (f"/api/workspaces/{world.slug}/invites/{foreign_invite}/revoke", "invite_not_found"),
        (f"/api/workspaces/{world.slug}/invites/{foreign_invite}/resend", "invite_not_found"),
    ):
        api.error(api.client.post(path, headers=owner), 404, code)
    api.error(api.client.patch(f"/api/workspaces/{world.slug}/members/{foreign_member}",
                               json={"role": "admin"}, headers=owner), 404, "member_not_found")
    api.error(api.client.delete(f"/api/workspaces/{world.slug}/members/{foreign_member}",
                                headers=owner), 404, "member_not_found")
    listed = api.client.get(f"/api/workspaces/{world.other_slug}/invites",
                            headers=world.headers["outsider"]).json()["items"]
    assert [i["status"] for i in listed] == ["accepted", "pending"]  # untouched
