from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from workspaces.web.schemas import ReadModel


class SignUp(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(max_length=200)


class SignIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class UserRead(ReadModel):
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


class TokenRead(BaseModel):
    token: str
    user: UserRead
