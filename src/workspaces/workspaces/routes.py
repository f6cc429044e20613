"""/api/workspaces: create, list, read, rename, transfer, delete (members: members/routes.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from workspaces.oauth.bearer import OWN_TOKEN
from workspaces.web.deps import (
    AppSettings,
    Conn,
    CurrentUser,
    Scoped,
    ScopedUser,
    TokenUser,
    client_address,
)
from workspaces.web.routing import Route
from workspaces.web.schemas import errors
from workspaces.workspaces import ownership, service
from workspaces.workspaces.schemas import (
    OwnershipTransfer,
    TransferRead,
    WorkspaceCreate,
    WorkspaceRead,
    WorkspaceUpdate,
)
from workspaces.workspaces.service import Access

router = APIRouter(route_class=Route, prefix="/api/workspaces", tags=["workspaces"],
                   responses=errors(400, 401, 403, 422, 503))


@router.post("", status_code=201, response_model=WorkspaceRead, responses=errors(429))
async def create_workspace(body: WorkspaceCreate, request: Request, conn: Conn, user: CurrentUser,
                           settings: AppSettings) -> WorkspaceRead:
    """Create a workspace; you become its owner. The slug is derived from the name."""
    created = await service.create_workspace(
        conn, name=body.name, owner=user,
        limit=service.creation_limit(client_address(request), settings))
    return WorkspaceRead.model_validate(created)


@router.get("", response_model=list[WorkspaceRead])
async def list_workspaces(conn: Conn, caller: Annotated[TokenUser, ScopedUser("workspaces:read")]
                          ) -> list[WorkspaceRead]:
    """The workspaces you belong to, with your role in each (an app's token issued for one
    workspace: that one)."""
    found = await service.list_workspaces(conn, user=caller.user, only=caller.reach)
    return [WorkspaceRead.model_validate(w) for w in found]


@router.get("/{slug}", response_model=WorkspaceRead, responses=errors(404))
async def get_workspace(access: Annotated[Access, Scoped("workspaces:read")]) -> WorkspaceRead:
    return WorkspaceRead.model_validate(access.workspace)


@router.patch("/{slug}", response_model=WorkspaceRead, responses=errors(403, 404))
async def rename_workspace(body: WorkspaceUpdate, conn: Conn,
                           access: Annotated[Access, Scoped(OWN_TOKEN)]) -> WorkspaceRead:
    """Rename the workspace (owners and admins). The slug stays, so links keep working."""
    renamed = await service.rename_workspace(conn, access=access, name=body.name)
    return WorkspaceRead.model_validate(renamed)


@router.post("/{slug}/transfer", response_model=TransferRead, responses=errors(403, 404, 409))
async def transfer_ownership(body: OwnershipTransfer, conn: Conn,
                             access: Annotated[Access, Scoped(OWN_TOKEN)]) -> TransferRead:
    """Make another member an owner (owners only); with `step_down`, become an admin yourself.
    422 `transfer_to_self` for your own id, 404 `member_not_found` for someone who is not a
    member, 409 `already_owner` for an owner."""
    done = await ownership.transfer_ownership(conn, access=access, user_id=body.user_id,
                                              step_down=body.step_down)
    return TransferRead.model_validate(done)


@router.delete("/{slug}", status_code=204, responses=errors(403, 404))
async def delete_workspace(conn: Conn, access: Annotated[Access, Scoped(OWN_TOKEN)]
                           ) -> Response:
    """Delete the workspace with its members, invites and audit trail (owners only)."""
    await service.delete_workspace(conn, access=access)
    return Response(status_code=204)
