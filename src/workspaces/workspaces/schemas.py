from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from workspaces.roles import Role
from workspaces.web.schemas import ReadModel


class WorkspaceCreate(BaseModel):
    name: str = Field(max_length=200)


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
