"""/api/workspaces/{slug}/audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from workspaces.audit import service
from workspaces.web.deps import Conn, Scoped
from workspaces.web.routing import Route
from workspaces.web.schemas import ReadModel, errors
from workspaces.workspaces.service import Access

router = APIRouter(route_class=Route, tags=["audit"], responses=errors(401, 403, 404, 422, 503))


class AuditRead(ReadModel):
    id: uuid.UUID
    action: str
    actor_user_id: uuid.UUID | None
    actor_email: str | None
    actor_client_id: str | None = Field(description="A service client that acted (its "
                                                    "client_id); null for a person.")
    actor_client_name: str | None = Field(description="That client's name when it acted.")
    target_type: str
    target_id: str
    target_email: str | None
    detail: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None


@router.get("/api/workspaces/{slug}/audit", response_model=AuditPage)
async def list_audit(
    conn: Conn, access: Annotated[Access, Scoped("events:read")],
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=32, description=(
        "Only this action: " + ", ".join(service.ACTIONS)))] = None,
) -> AuditPage:
    """Invite, membership and workspace changes, newest first (owners and admins). With
    `action`, only those; pass the same `action` with `cursor` for the next page."""
    page, next_cursor = await service.list_events(conn, access=access, limit=limit,
                                                  cursor=cursor, action=action)
    return AuditPage(items=[AuditRead.model_validate(e) for e in page], next_cursor=next_cursor)
