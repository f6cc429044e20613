from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workspaces.web.schemas import ReadModel


class SignUp(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    name: str = Field(max_length=200)


class SignIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class PasswordResetRequest(BaseModel):
    email: str = Field(max_length=320)


class PasswordResetAccepted(BaseModel):
    message: str = ("If the address has an account, a link to choose a new password is on its "
                    "way. It works once, for one hour.")


class PasswordResetConfirm(BaseModel):
    token: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class VerifyEmail(BaseModel):
    token: str = Field(max_length=200)


class Verified(BaseModel):
    email: str


class VerificationSent(BaseModel):
    email: str
    message: str = "A new confirmation link is on its way. It works once, for two days."


class UserRead(ReadModel):
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime
    email_verified_at: datetime | None  # null until a link mailed to the address is used


class TokenRead(BaseModel):
    token: str
    user: UserRead


class NameChange(BaseModel):
    name: str = Field(max_length=200)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class PasswordChanged(BaseModel):
    signed_out: int = Field(description="Other sessions and API tokens signed out")


class EmailChangeRequest(BaseModel):
    email: str = Field(max_length=320)
    current_password: str = Field(max_length=1024)


class EmailChangeRequested(BaseModel):
    email: str
    message: str


class EmailChangeConfirm(BaseModel):
    token: str = Field(max_length=200)


class SessionRead(ReadModel):
    id: uuid.UUID
    kind: str = Field(description="`browser` (a signed-in browser) or `api` (a bearer token)")
    created_at: datetime
    expires_at: datetime
    current: bool = Field(description="The session or token this request was made with")
    device: str = Field(description="The browser and system it was issued to, in words, from "
                                    "the User-Agent header (\"Firefox 133 on Windows 10\"); an "
                                    "agent the parser does not know as sent")
    address: str | None = Field(description="The client address it was issued to, as the limits "
                                            "see it (TRUSTED_PROXIES); null if issued before "
                                            "addresses were kept")
    last_used_at: datetime = Field(description="Its latest use, to within a few minutes")


class AccountEventRead(ReadModel):
    id: uuid.UUID
    action: str
    words: str = Field(description="The action in words, as the account page shows it")
    detail: dict[str, Any]
    created_at: datetime
