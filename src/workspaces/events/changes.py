"""Every change, made once: what the event says (its `data`), and what the audit trail and the
account's trail keep of it. The one home of each event's shape (docs/events.md describes it;
a test checks each one the code tells against that description).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from workspaces.events.catalogue import AccountOnly, AuditOnly
from workspaces.events.tell import AccountLine, Actor, AuditLine, Change, WorkspaceRef

AddedHow = Literal["invite", "created"]
RoleChangedHow = Literal["changed", "transfer"]
RemovedHow = Literal["removed", "left", "account_deleted"]


def _at(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def member(user_id: uuid.UUID, email: str, name: str, role: str) -> dict[str, Any]:
    return {"user_id": str(user_id), "email": email, "name": name, "role": role}


def invite(invite_id: uuid.UUID, email: str, role: str, status: str,
           expires_at: datetime) -> dict[str, Any]:
    return {"id": str(invite_id), "email": email, "role": role, "status": status,
            "expires_at": _at(expires_at)}


def user(user_id: uuid.UUID, email: str, name: str) -> dict[str, Any]:
    return {"id": str(user_id), "email": email, "name": name}


def _workspace(ref: WorkspaceRef, name: str) -> dict[str, Any]:
    return {"id": str(ref.id), "slug": ref.slug, "name": name}


# Workspaces

def workspace_created(ws: WorkspaceRef, name: str, actor: Actor) -> Change:
    detail: dict[str, Any] = {"name": name}
    if actor.kind == "operator":
        detail["by_operator"] = True
    return Change("workspace.created", actor, {"workspace": _workspace(ws, name)}, ws,
                  AuditLine("workspace_created", "workspace", ws.id, detail=detail))


def workspace_renamed(ws: WorkspaceRef, old: str, new: str, actor: Actor) -> Change:
    return Change("workspace.updated", actor,
                  {"workspace": _workspace(ws, new), "before": {"name": old},
                   "after": {"name": new}}, ws,
                  AuditLine("renamed", "workspace", ws.id, detail={"from": old, "to": new}))


def workspace_deleted(ws: WorkspaceRef, name: str, actor: Actor) -> Change:
    """No audit line: the workspace's trail goes with it."""
    return Change("workspace.deleted", actor, {"workspace": _workspace(ws, name)}, ws)


def ownership_transferred(ws: WorkspaceRef, *, to: dict[str, Any], previous_role: str,
                          by: dict[str, Any], step_down: bool, actor: Actor) -> Change:
    """`to` and `by` as `member(...)`, with their roles afterwards."""
    return Change("workspace.ownership_transferred", actor,
                  {"to": to, "by": by, "step_down": step_down}, ws,
                  AuditLine("ownership_transferred", "member", to["user_id"], to["email"],
                            {"step_down": step_down, "from": previous_role}))


# Members

def member_added(ws: WorkspaceRef, subject: dict[str, Any], how: AddedHow, actor: Actor,
                 invite_id: uuid.UUID | None = None) -> Change:
    """No audit line: `workspace_created` or `accepted` says it there."""
    data: dict[str, Any] = {"member": subject, "how": how}
    if invite_id is not None:
        data["invite_id"] = str(invite_id)
    return Change("member.added", actor, data, ws)


def role_changed(ws: WorkspaceRef, subject: dict[str, Any], old: str, how: RoleChangedHow,
                 actor: Actor) -> Change:
    """`subject` with its new role. A transfer is audited as one `ownership_transferred`."""
    audit = None if how == "transfer" else AuditLine(
        "role_changed", "member", subject["user_id"], subject["email"],
        {"from": old, "to": subject["role"]})
    return Change("member.role_changed", actor,
                  {"member": subject, "before": {"role": old},
                   "after": {"role": subject["role"]}, "how": how}, ws, audit)


def member_removed(ws: WorkspaceRef, subject: dict[str, Any], how: RemovedHow,
                   actor: Actor) -> Change:
    """`subject` with the role they had."""
    action = {"removed": "removed", "left": "left", "account_deleted": "account_deleted"}[how]
    return Change("member.removed", actor, {"member": subject, "how": how}, ws,
                  AuditLine(action, "member", subject["user_id"], subject["email"],
                            {"role": subject["role"]}))


# Invites

def invite_created(ws: WorkspaceRef, subject: dict[str, Any], actor: Actor) -> Change:
    return Change("invite.created", actor, {"invite": subject}, ws,
                  AuditLine("created", "invite", subject["id"], subject["email"],
                            {"role": subject["role"], "expires_at": subject["expires_at"]}))


def invite_resent(ws: WorkspaceRef, subject: dict[str, Any], old_expiry: datetime,
                  actor: Actor) -> Change:
    return Change("invite.resent", actor,
                  {"invite": subject, "before": {"expires_at": _at(old_expiry)},
                   "after": {"expires_at": subject["expires_at"]}}, ws,
                  AuditLine("resent", "invite", subject["id"], subject["email"],
                            {"expires_at": subject["expires_at"]}))


def invite_revoked(ws: WorkspaceRef, subject: dict[str, Any], actor: Actor, *,
                   replaced: bool = False) -> Change:
    """`replaced`: an expired invite withdrawn because a new one to the address was made."""
    reason = "replaced" if replaced else "revoked"
    detail = {"reason": "expired; replaced by a new invite"} if replaced else {}
    return Change("invite.revoked", actor, {"invite": subject, "reason": reason}, ws,
                  AuditLine("revoked", "invite", subject["id"], subject["email"], detail))


def invite_accepted(ws: WorkspaceRef, subject: dict[str, Any], user_id: uuid.UUID,
                    actor: Actor) -> Change:
    return Change("invite.accepted", actor, {"invite": subject, "user_id": str(user_id)}, ws,
                  AuditLine("accepted", "invite", subject["id"], subject["email"],
                            {"role": subject["role"]}))


def invite_declined(ws: WorkspaceRef, subject: dict[str, Any], actor: Actor) -> Change:
    return Change("invite.declined", actor, {"invite": subject}, ws,
                  AuditLine("declined", "invite", subject["id"], subject["email"]))


def invite_expired(ws: WorkspaceRef, subject: dict[str, Any], actor: Actor) -> Change:
    return Change("invite.expired", actor, {"invite": subject}, ws,
                  AuditLine("expired", "invite", subject["id"], subject["email"],
                            {"role": subject["role"]}))


# Accounts

def user_created(subject: dict[str, Any], *, verified: bool, actor: Actor) -> Change:
    return Change("user.created", actor, {"user": subject},
                  account=AccountLine(uuid.UUID(subject["id"]), "signed_up",
                                      {"verified": verified}))


def user_renamed(subject: dict[str, Any], old: str, actor: Actor) -> Change:
    return Change("user.updated", actor,
                  {"user": subject, "before": {"name": old}, "after": {"name": subject["name"]}},
                  account=AccountLine(uuid.UUID(subject["id"]), "name_changed"))


def email_changed(subject: dict[str, Any], old: str, actor: Actor) -> Change:
    return Change("user.email_changed", actor,
                  {"user": subject, "before": {"email": old},
                   "after": {"email": subject["email"]}},
                  account=AccountLine(uuid.UUID(subject["id"]), "email_changed",
                                      {"from": old, "to": subject["email"]}))


def user_deleted(subject: dict[str, Any], actor: Actor) -> Change:
    """No account line: the account's trail goes with it."""
    return Change("user.deleted", actor, {"user": subject})


AccountOnlyAction = Literal["email_verified", "password_reset", "password_changed",
                            "email_change_requested", "session_revoked", "sessions_revoked",
                            "app_revoked"]
_ACCOUNT_KINDS: dict[AccountOnlyAction, AccountOnly] = {
    "email_verified": "account.email_verified",
    "password_reset": "account.password_reset",
    "password_changed": "account.password_changed",
    "email_change_requested": "account.email_change_requested",
    "session_revoked": "account.session_revoked",
    "sessions_revoked": "account.sessions_revoked",
    "app_revoked": "account.app_revoked",  # a connected app's access ended (oauth.consents)
}


def account_only(user_id: uuid.UUID, action: AccountOnlyAction, actor: Actor,
                 detail: dict[str, Any] | None = None) -> Change:
    """A security change only the account's own trail keeps (`accounts.events.ACTIONS`)."""
    return Change(_ACCOUNT_KINDS[action], actor, {},
                  account=AccountLine(user_id, action, detail or {}))


# Webhook endpoints of a workspace (audited only)

_WEBHOOK_KINDS: dict[str, AuditOnly] = {
    "created": "webhook.created", "updated": "webhook.updated", "deleted": "webhook.deleted",
    "secret_rotated": "webhook.secret_rotated"}


def webhook_changed(ws: WorkspaceRef, action: Literal["created", "updated", "deleted",
                                                      "secret_rotated"],
                    endpoint_id: uuid.UUID, url: str, actor: Actor,
                    detail: dict[str, Any] | None = None) -> Change:
    return Change(_WEBHOOK_KINDS[action], actor, {}, ws,
                  AuditLine(f"webhook_{action}", "webhook", endpoint_id, None,
                            {"url": url, **(detail or {})}))
