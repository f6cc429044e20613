from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from workspaces.roles import Role
from workspaces.web.schemas import ReadModel


class WorkspaceCreate(BaseModel):
    name: str = Field(max_length=200)


class WorkspaceUpdate(BaseModel):
    name: str = Field(max_length=200, description="The new name; the slug does not change.")


class WorkspaceRead(ReadModel):
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: Role


class MemberRead(ReadModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class RoleChange(BaseModel):
    role: Role


class OwnershipTransfer(BaseModel):
    user_id: uuid.UUID = Field(description="A current member who is not an owner yet.")
    step_down: bool = Field(False, description="Become an admin yourself once they own it.")


class TransferRead(ReadModel):
    workspace: WorkspaceRead = Field(description="The workspace, with your role afterwards.")
    new_owner: MemberRead
