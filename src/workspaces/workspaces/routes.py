"""/api/workspaces and their members."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter

from workspaces.members import service as members
from workspaces.web.deps import AppSettings, Conn, CurrentUser, WorkspaceAccess, client_address
from workspaces.web.schemas import errors, json_response
from workspaces.workspaces import service
from workspaces.workspaces.schemas import MemberRead, RoleChange, WorkspaceCreate, WorkspaceRead

router = APIRouter(prefix="/api/workspaces", tags=["workspaces"],
                   responses=errors(400, 401, 422, 503))


@router.post("", status_code=201, response_model=WorkspaceRead, responses=errors(429))
async def create_workspace(body: WorkspaceCreate, request: Request, conn: Conn, user: CurrentUser,
                           settings: AppSettings) -> WorkspaceRead:
    """Create a workspace; you become its owner. The slug is derived from the name."""
    created = await service.create_workspace(
        conn, name=body.name, owner=user,
        limit=service.creation_limit(client_address(request), settings))
    return WorkspaceRead.model_validate(created)


@router.get("", response_model=list[WorkspaceRead])
async def list_workspaces(conn: Conn, user: CurrentUser) -> list[WorkspaceRead]:
    """The workspaces you belong to, with your role in each."""
    return [WorkspaceRead.model_validate(w) for w in await service.list_workspaces(conn, user=user)]


@router.get("/{slug}", response_model=WorkspaceRead, responses=errors(404))
async def get_workspace(access: WorkspaceAccess) -> WorkspaceRead:
    return WorkspaceRead.model_validate(access.workspace)


@router.delete("/{slug}", status_code=204, responses=errors(403, 404))
async def delete_workspace(conn: Conn, access: WorkspaceAccess) -> Response:
    """Delete the workspace with its members, invites and audit trail (owners only)."""
    await service.delete_workspace(conn, access=access)
    return Response(status_code=204)


_MEMBERS_JSON = TypeAdapter(list[members.MemberInfo])


@router.get("/{slug}/members", response_model=list[MemberRead], responses=errors(404))
async def list_members(conn: Conn, access: WorkspaceAccess) -> Response:
    found = await members.list_members(conn, workspace_id=access.workspace.id)
    return json_response(_MEMBERS_JSON, found)


@router.patch("/{slug}/members/{user_id}", response_model=MemberRead,
              responses=errors(403, 404, 409))
async def change_role(user_id: uuid.UUID, body: RoleChange, conn: Conn,
                      access: WorkspaceAccess) -> MemberRead:
    """Change a member's role (owners and admins; only owners grant or take away owner)."""
    member = await members.change_role(conn, access=access, user_id=user_id, role=body.role)
    return MemberRead.model_validate(member)


@router.delete("/{slug}/members/{user_id}", status_code=204, responses=errors(403, 404, 409))
async def remove_member(user_id: uuid.UUID, conn: Conn, access: WorkspaceAccess) -> Response:
    """Remove a member, or leave when `user_id` is your own. The last owner cannot go."""
    await members.remove_member(conn, access=access, user_id=user_id)
    return Response(status_code=204)
