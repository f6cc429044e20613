"""The event types: the published ones are a contract with every consumer (never rename one);
the rest only feed a trail (the audit log, an account's security page) and never leave.

`PUBLISHED` is what docs/events.md and the OpenAPI document's `webhooks` section describe; a
test compares the three.
"""

from __future__ import annotations

from typing import Literal, get_args

VERSION = 1  # of the payload's shape: a change that could break a consumer makes it 2

EventType = Literal[
    "workspace.created",
    "workspace.updated",
    "workspace.deleted",
    "workspace.ownership_transferred",
    "member.added",
    "member.role_changed",
    "member.removed",
    "invite.created",
    "invite.resent",
    "invite.revoked",
    "invite.accepted",
    "invite.declined",
    "invite.expired",
    "user.created",
    "user.updated",
    "user.email_changed",
    "user.deleted",
]
PUBLISHED: tuple[str, ...] = get_args(EventType)

# Sent by "send a test event" to one webhook endpoint, in the same envelope; never told, so
# never in the feed (and not in PUBLISHED).
TEST_MESSAGE = "webhook.test"

# Told through the same step, kept only in the account's own trail: security changes a
# product has no use for, or must not learn (where an address change is heading).
AccountOnly = Literal[
    "account.email_verified",
    "account.password_reset",
    "account.password_changed",
    "account.email_change_requested",
    "account.session_revoked",
    "account.sessions_revoked",
    "account.app_revoked",
]
# Told through the same step, kept only in the workspace's audit trail.
AuditOnly = Literal[
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_rotated",
]
Kind = EventType | AccountOnly | AuditOnly

# How each published type reads, for docs and the API's description of it.
SUMMARIES: dict[str, str] = {
    "workspace.created": "A workspace was created; its creator is its first owner.",
    "workspace.updated": "A workspace was renamed (its slug stays).",
    "workspace.deleted": "A workspace was deleted, with its members and invites.",
    "workspace.ownership_transferred": "An owner made another member an owner.",
    "member.added": "Someone became a member (by accepting an invite, or by creating it).",
    "member.role_changed": "A member's role changed.",
    "member.removed": "Someone stopped being a member (removed, left, or deleted their account).",
    "invite.created": "An invitation was sent.",
    "invite.resent": "An invitation was sent again with a new link and expiry.",
    "invite.revoked": "An invitation was withdrawn (or replaced by a new one).",
    "invite.accepted": "An invitation was accepted.",
    "invite.declined": "An invitation was declined.",
    "invite.expired": "An invitation passed its expiry unanswered.",
    "user.created": "An account was created.",
    "user.updated": "An account's name changed.",
    "user.email_changed": "An account's address changed (after the new one was confirmed).",
    "user.deleted": "An account was deleted.",
}

# Whether a type belongs to a workspace (its feed and endpoints) or only to the instance.
INSTANCE_ONLY = frozenset(t for t in PUBLISHED if t.startswith("user."))
# Types only the instance's webhook endpoints receive: besides the accounts' own, the end of a
# workspace, whose endpoints (and their queued deliveries) end with it.
WORKSPACE_ENDING = "workspace.deleted"
INSTANCE_ENDPOINTS_ONLY = INSTANCE_ONLY | {WORKSPACE_ENDING}


def is_published(kind: str) -> bool:
    return kind in SUMMARIES
