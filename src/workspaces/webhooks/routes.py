"""Webhook endpoints and their delivery log, at two scopes with the same routes:
/api/workspaces/{slug}/webhooks, a workspace's (its owners and admins), and /api/webhooks, the
instance's (every workspace's events and the `user.*` ones: a service client reaching every
workspace, with `webhooks:write`). Whose endpoints a call touches is the `owner` dependency's
answer (`webhooks.service.Owner`)."""

# No `from __future__ import annotations`: the routes are made once per scope, and FastAPI
# reads each one's `owner` annotation as the object it is when the route is made.

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from workspaces.web.deps import AppSettings, Conn, Scoped, ServiceClient
from workspaces.web.html import NO_STORE
from workspaces.web.routing import Route
from workspaces.web.schemas import errors
from workspaces.webhooks import service
from workspaces.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    QueuedMessage,
    ReplayBody,
    ReplayResult,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
)
from workspaces.webhooks.service import DeliveryStatus, WithSecret

ONE = "/{endpoint_id}"


def _with_secret(made: WithSecret, response: Response) -> WebhookWithSecret:
    """An answer carrying a signing secret: kept by no cache."""
    response.headers.update(NO_STORE)
    return WebhookWithSecret(**dict(WebhookRead.model_validate(made.endpoint)),
                             secret=made.secret)


def _routes(prefix: str, whose: Any, *, tag: str) -> APIRouter:
    """The endpoints' routes below `prefix`, whose caller the dependency `whose` resolves to
    a `service.Owner`."""
    Owner = Annotated[service.Owner, whose]
    router = APIRouter(route_class=Route, prefix=prefix, tags=[tag],
                       responses=errors(401, 403, 404, 422, 503))

    @router.post("", status_code=201, response_model=WebhookWithSecret,
                 responses=errors(400, 409))
    async def create_webhook(body: WebhookCreate, conn: Conn, owner: Owner,
                             settings: AppSettings, response: Response) -> WebhookWithSecret:
        """Add an endpoint; the answer carries its signing `secret`, shown only here. 422
        `webhook_url_not_allowed` for a URL that is not https or resolves to a private address,
        `invalid_event_type` for a type not in the catalogue; 409 `webhook_limit_reached` at 20
        endpoints."""
        return _with_secret(await service.create_endpoint(
            conn, owner=owner, url=body.url, events=body.events, description=body.description,
            settings=settings), response)

    @router.get("", response_model=list[WebhookRead])
    async def list_webhooks(conn: Conn, owner: Owner) -> list[WebhookRead]:
        """The endpoints, oldest first (never their secrets)."""
        return [WebhookRead.model_validate(e)
                for e in await service.list_endpoints(conn, owner=owner)]

    @router.get(ONE, response_model=WebhookRead)
    async def get_webhook(endpoint_id: uuid.UUID, conn: Conn,
                          owner: Owner) -> WebhookRead:
        return WebhookRead.model_validate(
            await service.get_endpoint(conn, owner=owner, endpoint_id=endpoint_id))

    @router.patch(ONE, response_model=WebhookRead, responses=errors(400))
    async def update_webhook(endpoint_id: uuid.UUID, body: WebhookUpdate, conn: Conn,
                             owner: Owner, settings: AppSettings) -> WebhookRead:
        """Change `url` (checked as on create), `events` (null: every type) or `description`;
        what the body leaves out stays."""
        changed = await service.update_endpoint(
            conn, owner=owner, endpoint_id=endpoint_id, settings=settings, url=body.url,
            events=body.events if "events" in body.model_fields_set else service.KEEP,
            description=body.description)
        return WebhookRead.model_validate(changed)

    @router.delete(ONE, status_code=204)
    async def delete_webhook(endpoint_id: uuid.UUID, conn: Conn,
                             owner: Owner) -> Response:
        """Delete the endpoint with its queued deliveries and their log."""
        await service.delete_endpoint(conn, owner=owner, endpoint_id=endpoint_id)
        return Response(status_code=204)

    @router.post(ONE + "/enable", response_model=WebhookRead)
    async def enable_webhook(endpoint_id: uuid.UUID, conn: Conn,
                             owner: Owner) -> WebhookRead:
        """Deliver to it again (deliveries queued while it was disabled go out now)."""
        return WebhookRead.model_validate(await service.set_enabled(
            conn, owner=owner, endpoint_id=endpoint_id, enabled=True))

    @router.post(ONE + "/disable", response_model=WebhookRead)
    async def disable_webhook(endpoint_id: uuid.UUID, conn: Conn,
                              owner: Owner) -> WebhookRead:
        """Stop delivering to it; events meanwhile are not queued for it (replay them later)."""
        return WebhookRead.model_validate(await service.set_enabled(
            conn, owner=owner, endpoint_id=endpoint_id, enabled=False))

    @router.post(ONE + "/rotate-secret", response_model=WebhookWithSecret)
    async def rotate_webhook_secret(endpoint_id: uuid.UUID, conn: Conn, owner: Owner,
                                    settings: AppSettings, response: Response
                                    ) -> WebhookWithSecret:
        """A new signing `secret`, shown only here; messages are signed with both the new and the
        previous secret until `previous_secret_until` (WEBHOOK_SECRET_GRACE_HOURS)."""
        return _with_secret(await service.rotate_secret(
            conn, owner=owner, endpoint_id=endpoint_id, settings=settings), response)

    @router.post(ONE + "/test", status_code=202, response_model=QueuedMessage,
                 responses=errors(409, 429))
    async def test_webhook(endpoint_id: uuid.UUID, conn: Conn, owner: Owner,
                           settings: AppSettings) -> QueuedMessage:
        """Queue a `webhook.test` message for the endpoint; follow it in its deliveries. 409
        `webhook_disabled` while it is disabled; 429 `rate_limited` past
        WEBHOOK_TEST_LIMIT_PER_WORKSPACE_PER_HOUR (of the workspace, or of the instance)."""
        queued = await service.send_test(conn, owner=owner, endpoint_id=endpoint_id,
                                         settings=settings)
        return QueuedMessage(delivery_id=queued.id, message_id=queued.message_id)

    @router.get(ONE + "/deliveries", response_model=DeliveryPage)
    async def list_deliveries(
        endpoint_id: uuid.UUID, conn: Conn, owner: Owner,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> DeliveryPage:
        """Newest first, each with its attempts (status code, duration, first bytes of the
        answer); pass `next_cursor` back as `cursor` (with the same `status`) for the next
        page."""
        items, next_cursor = await service.list_deliveries(
            conn, owner=owner, endpoint_id=endpoint_id, limit=limit, cursor=cursor,
            status=status)
        return DeliveryPage(items=[DeliveryRead.model_validate(d) for d in items],
                            next_cursor=next_cursor)

    @router.post(ONE + "/deliveries/{delivery_id}/retry", response_model=DeliveryRead,
                 responses=errors(409))
    async def retry_delivery(endpoint_id: uuid.UUID, delivery_id: uuid.UUID, conn: Conn,
                             owner: Owner) -> DeliveryRead:
        """Send this delivery again now, whatever its status; its attempts so far stay in the
        log. 404 `delivery_not_found`, 409 `webhook_disabled`."""
        return DeliveryRead.model_validate(await service.retry_delivery(
            conn, owner=owner, endpoint_id=endpoint_id, delivery_id=delivery_id))

    @router.post(ONE + "/replay", status_code=202, response_model=ReplayResult,
                 responses=errors(400, 409, 429))
    async def replay_webhook(endpoint_id: uuid.UUID, body: ReplayBody, conn: Conn,
                             owner: Owner, settings: AppSettings) -> ReplayResult:
        """Queue again every event since `since` that the endpoint would receive (of its scope
        and types, as far back as events are kept), with their own ids; an event already
        waiting for it is not queued twice. 409 `webhook_disabled`; 429 `rate_limited` past
        WEBHOOK_REPLAY_LIMIT_PER_WORKSPACE_PER_HOUR (of the workspace, or of the instance)."""
        done = await service.replay(conn, owner=owner, endpoint_id=endpoint_id,
                                    since=body.since, settings=settings)
        return ReplayResult(queued=done.queued, since=done.since)

    return router


router = _routes("/api/workspaces/{slug}/webhooks", Scoped("webhooks:write"), tag="webhooks")
instance_router = _routes("/api/webhooks", ServiceClient("webhooks:write"),
                          tag="instance webhooks")
