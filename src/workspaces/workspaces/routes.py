"""/api/workspaces: create, list, read, delete (members: members/routes.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from workspaces.web.deps import AppSettings, Conn, CurrentUser, WorkspaceAccess, client_address
from workspaces.web.schemas import errors
from workspaces.workspaces import service
from workspaces.workspaces.schemas import WorkspaceCreate, WorkspaceRead

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
