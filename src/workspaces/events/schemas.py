"""The event as the feed serves it and a webhook delivers it (the envelope; what each type
puts in `data` is described per type in the OpenAPI document's `webhooks` section)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


class EventWorkspace(BaseModel):
    id: str
    slug: str


class EventActor(BaseModel):
    type: Literal["user", "operator", "system", "anonymous"] = Field(
        description="user: a signed-in user; operator: an operator's command (acting as the "
                    "user named, if any); system: Workspaces itself (the expiry sweep); "
                    "anonymous: someone holding an invite's link without signing in.")
    id: str | None = Field(description="The acting user's id.")
    email: str | None = Field(description="The acting user's address at that moment.")


class ClientActor(BaseModel):
    type: Literal["client"] = Field(
        description="client: a service client (a product's backend) with its own credential.")
    id: str = Field(description="The client's `client_id` (wsc_...).")
    name: str = Field(description="The client's name at that moment.")


class Event(BaseModel):
    id: str = Field(description="Unique and stable: the key to drop a duplicate by (it is "
                                "also the webhook-id of its deliveries).")
    type: str
    version: int = Field(description="Of the payload's shape; a change that could break a "
                                     "consumer comes as a new version.")
    occurred_at: datetime
    workspace: EventWorkspace | None = Field(
        description="The workspace it happened in; null for user.* events.")
    actor: Annotated[EventActor | ClientActor, Field(discriminator="type")]
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(
        description="Pass as `after` to read on; never null once any event was read. Store "
                    "it with what you did with the items, and poll with it.")
    has_more: bool = Field(description="More events are ready now: read on without waiting.")
