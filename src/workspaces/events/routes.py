"""/api/workspaces/{slug}/events (a workspace's feed) and /api/events (the instance's)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from workspaces.events import feed
from workspaces.events.catalogue import PUBLISHED
from workspaces.events.schemas import EventPage
from workspaces.web.deps import AppSettings, Conn, InstanceReader, Scoped
from workspaces.web.routing import Route
from workspaces.web.schemas import ErrorBody, errors
from workspaces.workspaces.service import Access

router = APIRouter(route_class=Route, tags=["events"], responses={
    **errors(401, 403, 422, 503),
    410: {"model": ErrorBody, "description": (
        "`cursor_expired`: events after the cursor were deleted (older than the retention "
        "period); read without `after` and resync")},
})

After = Annotated[str | None, Query(max_length=200, description=(
    "The `next_cursor` of the last page read; leave out to start from the oldest event "
    "kept. A cursor is a point in the instance's order of events: it may be passed to "
    "either feed, with any `type`."))]
Limit = Annotated[int, Query(ge=1, le=100, description="Events per page.")]
Types = Annotated[list[str] | None, Query(alias="type", description=(
    "Only these types (repeat the parameter for several): " + ", ".join(PUBLISHED)))]


def _page(found: feed.FeedPage) -> Response:
    """The events exactly as stored, which is also the body their webhooks carry."""
    body: dict[str, Any] = {"items": found.items, "next_cursor": found.next_cursor,
                            "has_more": found.has_more}
    return Response(json.dumps(body), media_type="application/json")


@router.get("/api/workspaces/{slug}/events", response_model=EventPage, responses=errors(404))
async def workspace_events(conn: Conn, access: Annotated[Access, Scoped("events:read")],
                           settings: AppSettings,
                           after: After = None, limit: Limit = 50,
                           types: Types = None) -> Response:
    """The workspace's events, oldest first (owners and admins). Store `next_cursor` with
    what you did with the items, and poll with it: no event is missed or repeated, even when
    transactions commit out of order."""
    return _page(await feed.read_workspace(conn, access=access, after=after, limit=limit,
                                           types=types,
                                           retention_days=settings.event_retention_days))


@router.get("/api/events", response_model=EventPage)
async def instance_events(reader: InstanceReader, conn: Conn, settings: AppSettings,
                          after: After = None, limit: Limit = 50,
                          types: Types = None) -> Response:
    """Every workspace's events and the `user.*` events, oldest first: for the product's
    backend, with a service credential (a client_credentials token with `events:read`, of a
    client not limited to some workspaces); 403 `service_credential_required` for a person's
    token. On the server, `workspaces events list` reads the same."""
    return _page(await feed.read(conn, workspace_id=None, after=after, limit=limit,
                                 types=types, retention_days=settings.event_retention_days))
