"""The published events in the OpenAPI document's `webhooks` section: one entry per type (the
message a webhook endpoint receives, with its signature headers), and the test message.
`app.py` calls `describe_webhooks` once."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from workspaces.events.catalogue import SUMMARIES, TEST_MESSAGE
from workspaces.events.documented import DELIVERED

HEADERS = {
    "webhook_id": "The message's id: the event's `id` (the same on every retry of it). Drop "
                  "a message whose id you have seen.",
    "webhook_timestamp": "When this attempt was signed, in integer seconds since the Unix "
                         "epoch. Refuse one far from your clock (the libraries allow five "
                         "minutes).",
    "webhook_signature": "Space-separated signatures `v1,<base64>`: HMAC-SHA256, keyed with "
                         "the endpoint's secret (the bytes after `whsec_`, base64-decoded), over "
                         "`{webhook-id}.{webhook-timestamp}.{body}`. Two while a rotated secret "
                         "is in its grace period: accept the message if any one verifies.",
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "Refused (a signature that does not verify, say): a failure, "
                           "retried on the schedule like a 5xx, a 3xx or a timeout."},
    410: {"description": "Gone: the endpoint is disabled and no more messages are sent to "
                         "it until it is enabled again."},
    429: {"description": "Too many: retried after `Retry-After` (seconds or an HTTP date) "
                         "when given; 503 the same."},
}

TEST_DESCRIPTION = ("Sent by “send a test event” to the one endpoint it names, in the same "
                    "envelope and signed the same way; never in the feed. Acknowledge it like "
                    "any other message (ignore types you do not handle).")


def describe_webhooks(webhooks: APIRouter) -> None:
    """Add an entry per delivered message type to the app's `webhooks` router."""
    for kind, model in DELIVERED.items():
        test = kind == TEST_MESSAGE
        webhooks.post(kind, summary="A test message" if test else SUMMARIES[kind],
                      description=(TEST_DESCRIPTION if test else SUMMARIES[kind])
                      + "\n\nThe request body is the event, exactly as the feed serves it "
                        "(docs/events.md describes every type).",
                      response_description="Any 2xx: received (the body of the answer is "
                                           "ignored).",
                      responses=RESPONSES, response_class=Response, tags=["webhooks"],
                      operation_id=f"webhook_{kind.replace('.', '_')}")(_receiver(model))


def _receiver(model: type[Any]) -> Callable[..., Awaitable[None]]:
    """What a receiver of `model` is given, as a signature FastAPI documents (never called:
    webhooks are requests we send, not routes we serve)."""

    async def receive(**_: Any) -> None:
        return None

    headers = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                 annotation=Annotated[str, Header(description=text)])
               for name, text in HEADERS.items()]
    signature = inspect.Signature([
        inspect.Parameter("event", inspect.Parameter.KEYWORD_ONLY, annotation=model), *headers])
    receive.__signature__ = signature  # type: ignore[attr-defined]
    return receive
