"""Who may call what: every workspace operation as anonymous, outsider, member, admin, owner."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from tests.api.conftest import Api, token_of
from tests.factories import Factory, User, Workspace

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
    Op("rename the workspace", "PATCH", "/api/workspaces/{slug}", {"name": "Renamed"},
       (401, 404, 403, 200, 200)),
    Op("transfer ownership", "POST", "/api/workspaces/{slug}/transfer",
       {"user_id": "{member_id}"}, (401, 404, 403, 403, 200)),
    Op("filter the audit trail", "GET", "/api/workspaces/{slug}/audit?action=renamed", None,
       (401, 404, 403, 200, 200)),
    Op("delete the workspace", "DELETE", "/api/workspaces/{slug}", None,
       (401, 404, 403, 403, 204)),
)


class World:
    """A workspace with an owner, an admin and a member, and an outsider with their own
    (written straight into the database: tests/factories.py)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.make = Factory(api.db.url)
        self.counter = itertools.count()
        self.users = {"owner": self.make.user("owner@example.com"),
                      "outsider": self.make.user("outsider@example.com")}
        self.spaces: dict[str, Workspace] = {}
        self.slug = self.space(self.users["owner"], "Matrix")
        self.other_slug = self.space(self.users["outsider"], "Elsewhere")
        self.headers: dict[str, dict[str, str]] = {
            "anonymous": {}, "owner": self.users["owner"].headers,
            "outsider": self.users["outsider"].headers,
            "admin": self.join("admin")[1], "member": self.join("member")[1]}

    def space(self, owner: User, name: str) -> str:
        workspace = self.make.workspace(owner, name)
        self.spaces[workspace.slug] = workspace
        return workspace.slug

    def fresh(self) -> str:
        return f"person{next(self.counter)}@example.com"

    def join(self, role: str, slug: str | None = None) -> tuple[str, dict[str, str]]:
        """Someone new joins with `role`; returns their user id and headers."""
        user = self.make.member(self.spaces[slug or self.slug], self.fresh(), role)
        return str(user.id), user.headers

    def invite_id(self, slug: str | None = None, role: str = "member") -> str:
        return str(self.make.invite(self.spaces[slug or self.slug], self.fresh(), role).id)

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
                slug = world.space(world.users["owner"], f"Doomed {caller}")
            values = {"slug": slug, "fresh": world.fresh()}
            if "{member_id}" in f"{op.path}{op.body}":  # each cell acts on a member of its own
                values["member_id"] = world.join("member", slug)[0]
            if "{invite_id}" in op.path:
                values["invite_id"] = world.invite_id(slug)
            got = world.call(op, world.callers_of(slug)[caller], values)
            if got != expected:
                failures.append(f"{op.name} as {caller}: {got}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_ids_from_another_workspace_are_not_found(api: Api) -> None:
    world = World(api)
    foreign_invite = world.invite_id(world.other_slug)
    foreign_member = world.join("member", world.other_slug)[0]
    listed_before = api.client.get(f"/api/workspaces/{world.other_slug}/invites",
                                   headers=world.headers["outsider"]).json()["items"]
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
    assert listed == listed_before  # untouched


RANK = {"member": 1, "admin": 2, "owner": 3}
ROLES = ("member", "admin", "owner")


def _invite_cell(caller: str, invite_role: str, op: str) -> tuple[int, str | None]:
    """What (caller role x invite role x operation) must answer."""
    if caller == "member":
        return 403, "insufficient_role"
    if op == "list":
        return 200, None  # admins see every invite, owner invites too; acting is what is capped
    if RANK[invite_role] > RANK[caller]:
        return 403, "role_above_inviter"
    return (201 if op == "create" else 200), None


def test_every_invite_operation_for_every_caller_and_invite_role(api: Api) -> None:
    """The role ceiling holds on every verb that touches an invite, not only on create: an
    admin who could re-send an owner invite got a fresh owner link (the escalation found)."""
    world = World(api)
    failures = []
    for caller, invite_role, op in itertools.product(
            ("member", "admin", "owner"), ROLES, ("create", "resend", "revoke", "list")):
        headers = world.headers[caller]
        base = f"/api/workspaces/{world.slug}/invites"
        if op == "create":
            response = api.client.post(base, json={"email": world.fresh(), "role": invite_role},
                                       headers=headers)
        elif op == "list":
            response = api.client.get(f"{base}?status=pending", headers=headers)
        else:
            invite_id = world.invite_id(role=invite_role)
            response = api.client.post(f"{base}/{invite_id}/{op}", headers=headers)
        expected = _invite_cell(caller, invite_role, op)
        got = (response.status_code,
               response.json()["error"]["code"] if response.status_code >= 400 else None)
        if got != expected:
            failures.append(f"{op} a {invite_role} invite as {caller}: {got}, expected {expected}")
        if op == "resend" and got[0] != 200:
            assert "accept_url" not in response.text  # no link leaks with a refusal
    assert not failures, "\n".join(failures)


def test_a_refused_resend_leaves_the_owner_invite_and_its_link_as_they_were(api: Api) -> None:
    world = World(api)
    issued = api.invite(world.headers["owner"], world.slug, world.fresh(), "owner")
    state = ("SELECT token, expires_at, status FROM workspace_invites "
             "WHERE email LIKE 'person%' ORDER BY created_at DESC LIMIT 1")
    before = api.db.sql(state)
    path = f"/api/workspaces/{world.slug}/invites/{issued['id']}"
    api.error(api.client.post(f"{path}/resend", headers=world.headers["admin"]), 403,
              "role_above_inviter")
    api.error(api.client.post(f"{path}/revoke", headers=world.headers["admin"]), 403,
              "role_above_inviter")
    assert api.db.sql(state) == before
    token = token_of(issued)
    assert api.client.get(f"/api/invites/{token}").json()["status"] == "pending"


def _member_cell(caller: str, target: str, op: str) -> tuple[int, str | None]:
    """What (caller role x target role x member operation) must answer."""
    if caller == "member":
        return 403, "insufficient_role"
    if RANK[target] > RANK[caller] or (op == "promote to owner" and caller != "owner"):
        return 403, "owner_required"
    return (204 if op == "remove" else 200), None


def test_every_member_operation_for_every_caller_and_target_role(api: Api) -> None:
    world = World(api)
    failures = []
    for caller, target, op in itertools.product(
            ("member", "admin", "owner"), ROLES, ("remove", "change role", "promote to owner")):
        if op == "promote to owner" and target == "owner":
            continue
        member_id, _ = world.join(target)
        path = f"/api/workspaces/{world.slug}/members/{member_id}"
        headers = world.headers[caller]
        if op == "remove":
            response = api.client.delete(path, headers=headers)
        else:
            role = ("owner" if op == "promote to owner"
                    else "admin" if target == "member" else "member")
            response = api.client.patch(path, json={"role": role}, headers=headers)
        expected = _member_cell(caller, target, op)
        got = (response.status_code,
               response.json()["error"]["code"] if response.status_code >= 400 else None)
        if got != expected:
            failures.append(f"{op} a {target} as {caller}: {got}, expected {expected}")
    assert not failures, "\n".join(failures)


def _signed_in_page(api: Api, email: str, path: str) -> str:
    """`path` as a browser signed in as `email` (through the sign-in form) sees it."""
    form = api.client.get("/signin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    signed = api.client.post("/signin", data={"csrf_token": csrf.group(1), "email": email,
                                              "password": "correct horse battery"})
    assert signed.status_code == 200, signed.text
    return str(api.client.get(path).text)


def test_the_members_tab_offers_only_what_the_caller_may_do(api: Api) -> None:
    owner = api.signup("owner@example.com")
    slug = api.workspace(owner, "Tab")
    admin_email = "admin@example.com"
    token = api.invite_token(owner, slug, admin_email, "admin")
    admin = api.signup(admin_email)
    assert api.client.post(f"/api/invites/{token}/accept", headers=admin).status_code == 200
    api.invite(owner, slug, "future-owner@example.com", "owner")
    api.invite(owner, slug, "future-member@example.com", "member")

    as_admin = _signed_in_page(api, admin_email, f"/w/{slug}")
    assert "Resend invite to future-member@example.com" in as_admin
    assert "Revoke invite to future-member@example.com" in as_admin
    assert "future-owner@example.com" in as_admin  # listed, but not actionable
    assert "Resend invite to future-owner@example.com" not in as_admin
    assert "Revoke invite to future-owner@example.com" not in as_admin
    assert "Remove owner@example.com" not in as_admin
    assert '<option value="owner"' not in as_admin

    api.client.cookies.clear()
    as_owner = _signed_in_page(api, "owner@example.com", f"/w/{slug}")
    assert "Resend invite to future-owner@example.com" in as_owner
    assert "Remove admin@example.com" in as_owner
    # The sole owner is offered nothing on their own row: both would be refused (last owner).
    assert "Remove owner@example.com" not in as_owner
    assert "Change role of owner@example.com" not in as_owner
