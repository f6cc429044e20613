"""Workspace settings -> Audit log tab: the trail in words, newest first, filtered by action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from workspaces.audit.service import ACTIONS, AuditEntry, list_events
from workspaces.web.deps import Conn
from workspaces.web.html import SignedIn, render
from workspaces.web.routing import Route
from workspaces.workspaces.service import load_access

router = APIRouter(route_class=Route, include_in_schema=False)
PAGE_SIZE = 50
DELETED_ACCOUNT = "someone whose account was deleted"
LINK_HOLDER = "someone with the invite link"
FORMER_MEMBER = "a former member"  # an event from before addresses were kept with it
OPERATOR = "an operator"


@dataclass(frozen=True)
class Row:
    when: datetime
    who: str
    action: str
    detail: str
    target: str


def _who(entry: AuditEntry) -> str:
    if entry.actor_client_id:  # a product's backend, named as it was when it acted
        return f"{entry.actor_client_name or entry.actor_client_id} (service client)"
    if entry.actor_email:  # as it was when they acted, kept when the account is deleted
        return entry.actor_email + (" (account since deleted)"
                                    if entry.actor_user_id is None else "")
    if entry.actor_user_id is not None:
        return FORMER_MEMBER
    if entry.detail.get("by_operator"):  # an operator's command that named no account
        return OPERATOR
    if entry.action == "declined":  # declined without signing in: whoever held the link
        return LINK_HOLDER
    return DELETED_ACCOUNT


def _detail(entry: AuditEntry) -> str:
    d = entry.detail
    match entry.action:
        case "role_changed" | "renamed" if "from" in d and "to" in d:
            quote = "“{}”" if entry.action == "renamed" else "{}"
            return f"{quote.format(d['from'])} → {quote.format(d['to'])}"
        case "workspace_created" if "name" in d:
            return f"named “{d['name']}”" + (", by an operator's command"
                                            if d.get("by_operator") else "")
        case "ownership_transferred":
            return ("the previous owner stepped down to admin" if d.get("step_down")
                    else "the previous owner stays an owner")
        case "removed" | "left" if "role" in d:
            return f"was {d['role']}"
        case "created" | "accepted" if "role" in d:
            return f"as {d['role']}"
        case "revoked" if "reason" in d:
            return str(d["reason"])
        case "webhook_created" | "webhook_updated" | "webhook_deleted" | \
                "webhook_secret_rotated" if "url" in d:
            return f"{d['url']}{_webhook_change(d)}"
    return ""


def _webhook_change(d: dict[str, Any]) -> str:
    """What a change to a webhook endpoint did, after its origin (the audit keeps no more of
    its URL)."""
    if "enabled" in d:
        why = f" ({d['reason']})" if d.get("reason") else ""
        return ": enabled" if d["enabled"] else f": disabled{why}"
    if d.get("changed"):
        return ": changed " + ", ".join(str(c) for c in d["changed"])
    if d.get("events"):
        events = d["events"]
        return ", all events" if events == "all" else ", " + ", ".join(str(e) for e in events)
    if d.get("previous_valid_until"):
        until = datetime.fromisoformat(str(d["previous_valid_until"]))
        return f"; the previous secret signs until {until:%d %b %Y %H:%M} UTC"
    return ""


def row_of(entry: AuditEntry) -> Row:
    """One entry as the tab shows it: who did what to whom, in words."""
    target = entry.target_email or {"workspace": "the workspace",
                                    "webhook": "webhook endpoint"}.get(entry.target_type,
                                                                       entry.target_type)
    return Row(entry.created_at, _who(entry), ACTIONS.get(entry.action, entry.action),
               _detail(entry), target)


@router.get("/w/{slug}/audit")
async def audit_tab(request: Request, slug: str, conn: Conn, user: SignedIn,
                    action: Annotated[str, Query(max_length=32)] = "",
                    cursor: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """Owners and admins (members get 403, as from the API)."""
    access = await load_access(conn, slug=slug, user=user)
    entries, next_cursor = await list_events(conn, access=access, limit=PAGE_SIZE,
                                             cursor=cursor, action=action or None)
    older = None
    if next_cursor:
        older = f"/w/{slug}/audit?" + urlencode(
            {**({"action": action} if action else {}), "cursor": next_cursor})
    return render(request, "workspace_audit.html", access=access, tab="audit",
                  rows=[row_of(e) for e in entries], actions=ACTIONS, action=action,
                  older=older, first_page=cursor is None)
