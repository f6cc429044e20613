from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workspaces.invites.statuses import Status
from workspaces.roles import Role
from workspaces.web.schemas import ReadModel
from workspaces.workspaces.schemas import MemberRead


class InviteCreate(BaseModel):
    email: str = Field(max_length=320)
    role: Role = "member"
    expires_in_days: int | None = Field(default=None, ge=1, le=30)


class InviteRead(ReadModel):
    id: uuid.UUID
    email: str
    role: Role
    status: Status
    expires_at: datetime
    created_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    declined_at: datetime | None
    created_by_user_id: uuid.UUID | None
    created_by_name: str | None
    email_status: Literal["pending", "sent", "logged", "failed"] | None = Field(
        description="Delivery of the latest invite email: pending (waiting or being retried), "
                    "sent (the mail server accepted it), logged (EMAIL_BACKEND=console, "
                    "development: written to the server log, sent to nobody) or failed.")
    email_error: str | None = Field(
        description="Why the latest delivery attempt failed: the mail server's reply (\"550 5.1.1 "
                    "No such mailbox\") or that it could not be reached. With email_status "
                    "pending the email will be retried; with failed it will not.")


class IssuedInviteRead(InviteRead):
    accept_url: str = Field(description="The invite link. Shown only in this response.")


class InvitePage(BaseModel):
    items: list[InviteRead]
    next_cursor: str | None


class InvitePreview(ReadModel):
    workspace_name: str
    inviter_name: str | None
    inviter_email: str | None  # shown next to the name: a name cannot pose as an address
    email: str
    role: Role
    status: Status
    expires_at: datetime


class AcceptBody(BaseModel):
    """Only for someone without an account: sign up with the invited address and join."""

    name: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class AcceptResult(BaseModel):
    member: MemberRead
    token: str | None = Field(default=None, description="A bearer token, when signing up.")


class InvitationForYou(ReadModel):
    """A pending invite addressed to you ("Invitations for you")."""

    id: uuid.UUID
    workspace_name: str
    workspace_slug: str
    role: Role
    inviter_name: str | None
    inviter_email: str | None
    expires_at: datetime
