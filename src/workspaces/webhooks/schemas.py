"""The webhook endpoints API's bodies and answers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from workspaces.events.catalogue import PUBLISHED
from workspaces.web.schemas import ReadModel
from workspaces.webhooks.addresses import URL_MAX
from workspaces.webhooks.service import DESCRIPTION_MAX, DeliveryStatus

_EVENTS = ("The event types to deliver (" + ", ".join(PUBLISHED) + "); "
           "left out (or null): every type, including those added later.")


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2 * URL_MAX, description=(
        "Where to POST each event: https, resolving to public addresses only."))
    events: list[str] | None = Field(default=None, max_length=len(PUBLISHED) * 2,
                                     description=_EVENTS)
    description: str = Field(default="", max_length=2 * DESCRIPTION_MAX)


class WebhookUpdate(BaseModel):
    """Only what is given changes; `"events": null` means every type."""

    url: str | None = Field(default=None, max_length=2 * URL_MAX)
    events: list[str] | None = Field(default=None, max_length=len(PUBLISHED) * 2,
                                     description=_EVENTS)
    description: str | None = Field(default=None, max_length=2 * DESCRIPTION_MAX)


class WebhookRead(ReadModel):
    id: uuid.UUID
    url: str
    description: str
    events: list[str] | None = Field(description="null: every type.")
    enabled: bool
    disabled_reason: str | None = Field(description=(
        "Why it is disabled: by whom, or that deliveries failed for 5 days or the receiver "
        "answered 410 Gone."))
    disabled_at: datetime | None
    failing_since: datetime | None = Field(description=(
        "The first failed attempt since the last success (null: not failing)."))
    previous_secret_until: datetime | None = Field(description=(
        "After a rotation, the previous secret signs beside the new one until then."))
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookRead):
    secret: str = Field(description=(
        "The signing secret (whsec_...). Shown only in this response: store it where your "
        "receiver verifies signatures."))


class AttemptRead(ReadModel):
    attempted_at: datetime
    status_code: int | None = Field(description="null: no answer (refused, timed out).")
    duration_ms: int
    response_excerpt: str | None = Field(description="The first bytes of the answer.")
    error: str | None


class DeliveryRead(ReadModel):
    id: uuid.UUID
    message_id: str = Field(description=(
        "The webhook-id header: the event's id (msg_... for a test message); the same for "
        "every delivery of one event, so receivers can drop duplicates."))
    event_type: str
    status: DeliveryStatus = Field(description=(
        "pending (waiting, or being retried), delivered (a 2xx answer) or failed (the retry "
        "schedule ran out)."))
    attempt_count: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[AttemptRead] = Field(description="Newest first.")


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


class QueuedMessage(BaseModel):
    delivery_id: uuid.UUID
    message_id: str


class ReplayBody(BaseModel):
    since: datetime = Field(description=(
        "Send again every event since this time (of the endpoint's scope and types, as far "
        "back as events are kept)."))


class ReplayResult(BaseModel):
    queued: int = Field(description="How many deliveries were queued.")
    since: datetime

