from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Role = Literal["owner", "admin", "member"]


class WorkspaceCreate(BaseModel):
    name: str = Field(max_length=200)


class WorkspaceRead(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    role: Role


class MemberRead(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class RoleChange(BaseModel):
    role: Role
