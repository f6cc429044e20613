"""Each published event as a consumer receives it: the envelope (`schemas.Event`) specialised
per type, with its `data` described field by field.

`changes.py` is the one home of the shapes; these models describe them for the OpenAPI
document's `webhooks` section and docs/events.md, and tests/api/test_event_catalogue.py checks
every event the code tells against them (strictly: a key missing or extra fails).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from workspaces.events.catalogue import INSTANCE_ONLY, PUBLISHED, SUMMARIES, TEST_MESSAGE
from workspaces.events.changes import RemovedHow, RoleChangedHow
from workspaces.events.schemas import ClientActor, Event, EventActor, EventWorkspace
from workspaces.invites.statuses import Status
from workspaces.roles import Role

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
AT = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"  # ISO 8601 in UTC, as `changes._at` writes


class Strict(BaseModel):
    """A shape whose keys are all known: a key more or less is a change of contract."""

    model_config = ConfigDict(extra="forbid")


def _id(description: str) -> Any:
    return Field(description=description, pattern=UUID)


def _at(description: str) -> Any:
    return Field(description=description, pattern=AT)


# The subjects events name (each as `changes.py` makes it).

class WorkspaceData(Strict):
    id: str = _id("The workspace's id (stable).")
    slug: str = Field(description="The workspace's slug (stable: a rename keeps it).")
    name: str = Field(description="Its name, after the change.")


class MemberData(Strict):
    user_id: str = _id("The member's account.")
    email: str = Field(description="The member's address at that moment.")
    name: str = Field(description="The member's name at that moment.")
    role: Role = Field(description="Their role: after the change, or, when they were "
                                   "removed, the role they had.")


class InviteData(Strict):
    id: str = _id("The invite's id.")
    email: str = Field(description="The address invited.")
    role: Role = Field(description="The role it grants.")
    status: Status = Field(description="Its status after the change.")
    expires_at: str = _at("When it expires (or expired), UTC.")


class UserData(Strict):
    id: str = _id("The account's id (stable).")
    email: str = Field(description="Its address, after the change.")
    name: str = Field(description="Its name, after the change.")


class NameValue(Strict):
    name: str


class RoleValue(Strict):
    role: Role


class EmailValue(Strict):
    email: str


class ExpiryValue(Strict):
    expires_at: str = _at("UTC.")


# What each type puts in `data`.

class WorkspaceCreatedData(Strict):
    workspace: WorkspaceData


class WorkspaceUpdatedData(Strict):
    workspace: WorkspaceData
    before: NameValue = Field(description="The name it had.")
    after: NameValue = Field(description="The name it has.")


class WorkspaceDeletedData(Strict):
    workspace: WorkspaceData = Field(description="As it was when deleted; every membership "
                                                 "and invite ended with it (no member.removed "
                                                 "events are told for them).")


class WorkspaceOwnershipTransferredData(Strict):
    to: MemberData = Field(description="The member made an owner (role: owner).")
    by: MemberData = Field(description="The owner who handed it over, with the role they "
                                       "have afterwards (admin if they stepped down).")
    step_down: bool = Field(description="Whether the previous owner became an admin.")


class MemberAddedByInvite(Strict):
    member: MemberData
    how: Literal["invite"] = Field(description="They accepted an invitation.")
    invite_id: str = _id("The invite accepted (an invite.accepted comes just before).")


class MemberAddedByCreating(Strict):
    member: MemberData
    how: Literal["created"] = Field(description="They created the workspace (its first "
                                                "owner; a workspace.created comes just "
                                                "before).")


MemberAddedData = Annotated[MemberAddedByInvite | MemberAddedByCreating,
                            Field(discriminator="how")]


class MemberRoleChangedData(Strict):
    member: MemberData = Field(description="The member, with the new role.")
    before: RoleValue
    after: RoleValue
    how: RoleChangedHow = Field(description="changed: an owner or admin changed it; "
                                            "transfer: part of an ownership transfer (a "
                                            "workspace.ownership_transferred follows).")


class MemberRemovedData(Strict):
    member: MemberData = Field(description="The former member, with the role they had.")
    how: RemovedHow = Field(description="removed: by an owner or admin; left: by themselves; "
                                        "account_deleted: their account was deleted (a "
                                        "user.deleted follows).")


class InviteCreatedData(Strict):
    invite: InviteData


class InviteResentData(Strict):
    invite: InviteData
    before: ExpiryValue = Field(description="The expiry it had.")
    after: ExpiryValue = Field(description="The new expiry (the old link stops working).")


class InviteRevokedData(Strict):
    invite: InviteData
    reason: Literal["revoked", "replaced"] = Field(
        description="revoked: withdrawn by an owner or admin; replaced: it had expired and a "
                    "new invite to the same address was made (an invite.created follows).")


class InviteAcceptedData(Strict):
    invite: InviteData
    user_id: str = _id("The account that accepted (a member.added follows).")


class InviteDeclinedData(Strict):
    invite: InviteData


class InviteExpiredData(Strict):
    invite: InviteData


class UserCreatedData(Strict):
    user: UserData


class UserUpdatedData(Strict):
    user: UserData
    before: NameValue
    after: NameValue


class UserEmailChangedData(Strict):
    user: UserData
    before: EmailValue = Field(description="The address it had.")
    after: EmailValue = Field(description="The address it has (confirmed through a link "
                                          "mailed to it).")


class UserDeletedData(Strict):
    user: UserData = Field(description="As it was when deleted (its memberships ended just "
                                       "before, each told as member.removed).")


class WebhookTestData(Strict):
    endpoint_id: str = _id("The endpoint this test was sent to.")
    message: str = Field(description="A sentence saying it is a test.")


DATA: dict[str, Any] = {  # a model, or a union of models told apart by a field
    "workspace.created": WorkspaceCreatedData,
    "workspace.updated": WorkspaceUpdatedData,
    "workspace.deleted": WorkspaceDeletedData,
    "workspace.ownership_transferred": WorkspaceOwnershipTransferredData,
    "member.added": MemberAddedData,
    "member.role_changed": MemberRoleChangedData,
    "member.removed": MemberRemovedData,
    "invite.created": InviteCreatedData,
    "invite.resent": InviteResentData,
    "invite.revoked": InviteRevokedData,
    "invite.accepted": InviteAcceptedData,
    "invite.declined": InviteDeclinedData,
    "invite.expired": InviteExpiredData,
    "user.created": UserCreatedData,
    "user.updated": UserUpdatedData,
    "user.email_changed": UserEmailChangedData,
    "user.deleted": UserDeletedData,
}


# The envelope, strict, with the parts a type fixes.

class WorkspaceOfEvent(EventWorkspace, Strict):
    id: str = _id("The workspace's id.")


class ActorOfEvent(EventActor, Strict):
    pass


class ClientActorOfEvent(ClientActor, Strict):
    pass


class Envelope(Event, Strict):
    id: str = Field(pattern=r"^evt_[0-9a-f]{32}$",
                    description="Unique and stable: the key to drop a duplicate by (also the "
                                "webhook-id header of its deliveries).")
    version: Literal[1] = Field(description="Of the payload's shape; a change that could "
                                            "break a consumer comes as a new version.")
    occurred_at: datetime = Field(description="When the change was made (its transaction's "
                                              "time), UTC.")
    actor: Annotated[ActorOfEvent | ClientActorOfEvent, Field(discriminator="type")]
    data: Any  # each type's model


def _name(kind: str) -> str:
    return "".join(part.title() for part in kind.replace(".", "_").split("_")) + "Event"


def _envelope(kind: str, data: Any) -> type[Envelope]:
    """The envelope of `kind`: it names its workspace, or, for an account's events, none."""
    workspace: Any = (None, Field(description="Always null: an account belongs to no "
                                              "workspace.")) if kind in INSTANCE_ONLY else (
        WorkspaceOfEvent, Field(description="The workspace it happened in."))
    literal: Any = Literal[kind]
    return create_model(_name(kind), __base__=Envelope, __doc__=SUMMARIES[kind],
                        type=(literal, ...), data=(data, ...), workspace=workspace)


ENVELOPES: dict[str, type[Envelope]] = {
    kind: _envelope(kind, DATA[kind]) for kind in PUBLISHED
}


class WebhookTestEvent(Envelope):
    """Sent by "send a test event" to one endpoint only; never in the feed."""

    id: str = Field(description="The message's id (also its webhook-id header).")
    type: Literal["webhook.test"]
    workspace: WorkspaceOfEvent | None = Field(
        description="The endpoint's workspace; null for an instance endpoint.")
    data: WebhookTestData


# Everything a webhook endpoint may receive, by type.
DELIVERED: dict[str, type[Envelope]] = {**ENVELOPES, TEST_MESSAGE: WebhookTestEvent}
