"""/api/workspaces/{slug}/invites and the public /api/invites/{token}."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import TypeAdapter

from workspaces.errors import NotAuthenticated
from workspaces.invites import service
from workspaces.invites.schemas import (
    AcceptBody,
    AcceptResult,
    InvitationForYou,
    InviteCreate,
    InvitePage,
    InvitePreview,
    InviteRead,
    IssuedInviteRead,
)
from workspaces.invites.service import InviteInfo, IssuedInvite
from workspaces.invites.statuses import Status
from workspaces.web.deps import (
    AppSettings,
    Conn,
    CurrentUser,
    OptionalUser,
    OwnCredentials,
    PasswordHashing,
    Scoped,
    Tx,
    api_session,
    bearer_user,
)
from workspaces.web.routing import Route
from workspaces.web.schemas import errors, json_response
from workspaces.workspaces.schemas import MemberRead
from workspaces.workspaces.service import Access

router = APIRouter(route_class=Route, tags=["invites"], responses=errors(400, 422, 503))
Managing = Annotated[Access, Scoped("invites:write")]


def _read(invite: InviteInfo) -> InviteRead:
    return InviteRead.model_validate(invite)


def _issued(issued: IssuedInvite) -> IssuedInviteRead:
    return IssuedInviteRead(**dict(_read(issued.invite)), accept_url=issued.accept_url)


@router.post("/api/workspaces/{slug}/invites", status_code=201, response_model=IssuedInviteRead,
             responses=errors(401, 403, 404, 409, 429))
async def create_invite(body: InviteCreate, conn: Conn, access: Managing,
                        settings: AppSettings) -> IssuedInviteRead:
    """Invite an email address with a role (owners and admins). The email goes out shortly."""
    issued = await service.create_invite(conn, access=access, email=body.email, role=body.role,
                                         expires_in_days=body.expires_in_days,
                                         settings=settings)
    return _issued(issued)


@dataclass(frozen=True)
class _Page:
    """InvitePage as the service returns it: serialised straight from its dataclasses."""

    items: list[InviteInfo]
    next_cursor: str | None


_PAGE_JSON = TypeAdapter(_Page)
# The service's Preview is InvitePreview field for field, in its order, and the slug.
_PREVIEW_JSON = TypeAdapter(service.Preview)
_PREVIEW_EXCLUDE = {"workspace_slug"}
# InviteRead is InviteInfo without the workspace (the path names it).
_PAGE_EXCLUDE = {"items": {"__all__": {"workspace_id"}}}


@router.get("/api/workspaces/{slug}/invites", response_model=InvitePage,
            responses=errors(401, 403, 404))
async def list_invites(
    conn: Conn, access: Managing,
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Newest first; pass `next_cursor` back as `cursor` for the next page."""
    items, next_cursor = await service.list_invites(conn, access=access, status=status,
                                                    limit=limit, cursor=cursor)
    return json_response(_PAGE_JSON, _Page(items, next_cursor), exclude=_PAGE_EXCLUDE)


@router.post("/api/workspaces/{slug}/invites/{invite_id}/resend",
             response_model=IssuedInviteRead, responses=errors(401, 403, 404, 409))
async def resend_invite(invite_id: uuid.UUID, conn: Conn, access: Managing,
                        settings: AppSettings) -> IssuedInviteRead:
    """New link (the old one stops working), new expiry, new email."""
    return _issued(await service.resend_invite(conn, access=access, invite_id=invite_id,
                                               settings=settings))


@router.post("/api/workspaces/{slug}/invites/{invite_id}/revoke", response_model=InviteRead,
             responses=errors(401, 403, 404, 409))
async def revoke_invite(invite_id: uuid.UUID, conn: Conn, access: Managing) -> InviteRead:
    return _read(await service.revoke_invite(conn, access=access, invite_id=invite_id))


@router.get("/api/invites/{token}", response_model=InvitePreview, responses=errors(404))
async def preview_invite(token: str, conn: Conn) -> Response:
    """Public: what the invite is for. Reading it changes nothing."""
    # (the model leaves out the workspace's slug: nothing beyond what the invitee needs)
    return json_response(_PREVIEW_JSON, await service.preview(conn, token=token),
                         exclude=_PREVIEW_EXCLUDE)


@router.post("/api/invites/{token}/accept", response_model=AcceptResult,
             responses=errors(401, 403, 404, 409, 410))
async def accept_invite(
    request: Request, token: str, tx: Tx, credentials: OwnCredentials, passwords: PasswordHashing,
    settings: AppSettings, body: Annotated[AcceptBody | None, Body()] = None,
) -> AcceptResult:
    """Join the workspace. Signed in: as yourself (the email must match). Without an account:
    send `name` and `password` to sign up with the invited address and join in one step."""
    if credentials is not None:
        async with tx.write() as conn:
            user = await bearer_user(conn, credentials)
            joined = await service.accept_invite(conn, token=token, user=user)
        return AcceptResult(member=MemberRead.model_validate(joined.member))
    if body is None:
        raise NotAuthenticated("Sign in to accept, or send name and password to sign up with "
                               "the invited address.", code="sign_in_required")
    _, joined, api_token = await service.join(tx, passwords, token=token, name=body.name,
                                              password=body.password,
                                              session=api_session(request),
                                              settings=settings)
    return AcceptResult(member=MemberRead.model_validate(joined.member), token=api_token)


@router.post("/api/invites/{token}/decline", status_code=204,
             responses=errors(403, 404, 410))
async def decline_invite(token: str, conn: Conn, user: OptionalUser) -> Response:
    await service.decline_invite(conn, token=token, user=user)
    return Response(status_code=204)


@router.get("/api/me/invites", response_model=list[InvitationForYou], responses=errors(401, 403))
async def invitations_for_me(conn: Conn, user: CurrentUser) -> list[InvitationForYou]:
    """Pending invites addressed to your address, in workspaces you are not in yet (soonest to
    expire first). Your address must be verified: 403 `email_unverified` else."""
    return [InvitationForYou.model_validate(i) for i in await service.invites_for(conn, user=user)]


@router.post("/api/me/invites/{invite_id}/accept", response_model=AcceptResult,
             responses=errors(401, 403, 404, 409, 410))
async def accept_invitation_for_me(invite_id: uuid.UUID, conn: Conn,
                                   user: CurrentUser) -> AcceptResult:
    """Accept an invite addressed to your verified address, without its link."""
    joined = await service.accept_for_user(conn, invite_id=invite_id, user=user)
    return AcceptResult(member=MemberRead.model_validate(joined.member))


@router.post("/api/me/invites/{invite_id}/decline", status_code=204,
             responses=errors(401, 403, 404, 410))
async def decline_invitation_for_me(invite_id: uuid.UUID, conn: Conn,
                                    user: CurrentUser) -> Response:
    """Decline an invite addressed to your verified address, without its link."""
    await service.decline_for_user(conn, invite_id=invite_id, user=user)
    return Response(status_code=204)
