"""/api/workspaces/{slug}/members: list, change a role, remove or leave."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import TypeAdapter

from workspaces.members import service as members
from workspaces.web.deps import Conn, Scoped
from workspaces.web.routing import Route
from workspaces.web.schemas import errors, json_response
from workspaces.workspaces.schemas import MemberRead, RoleChange
from workspaces.workspaces.service import Access

router = APIRouter(route_class=Route, prefix="/api/workspaces", tags=["members"],
                   responses=errors(400, 401, 403, 422, 503))


_MEMBERS_JSON = TypeAdapter(list[members.MemberRow])


@router.get("/{slug}/members", response_model=list[MemberRead], responses=errors(404))
async def list_members(conn: Conn, access: Annotated[Access, Scoped("members:read")]
                       ) -> Response:
    found = await members.list_member_rows(conn, workspace_id=access.workspace.id)
    return json_response(_MEMBERS_JSON, found)


@router.patch("/{slug}/members/{user_id}", response_model=MemberRead,
              responses=errors(403, 404, 409))
async def change_role(user_id: uuid.UUID, body: RoleChange, conn: Conn,
                      access: Annotated[Access, Scoped("members:write")]) -> MemberRead:
    """Change a member's role (owners and admins; only owners grant or take away owner)."""
    member = await members.change_role(conn, access=access, user_id=user_id, role=body.role)
    return MemberRead.model_validate(member)


@router.delete("/{slug}/members/{user_id}", status_code=204, responses=errors(403, 404, 409))
async def remove_member(user_id: uuid.UUID, conn: Conn,
                        access: Annotated[Access, Scoped("members:write")]) -> Response:
    """Remove a member, or leave when `user_id` is your own. The last owner cannot go."""
    await members.remove_member(conn, access=access, user_id=user_id)
    return Response(status_code=204)
