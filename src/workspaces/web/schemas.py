"""Response shapes shared by every router: the error body and the documented error statuses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting the error body for these statuses."""
    described = {
        400: "The body is not valid JSON",
        401: "Not signed in, or the token is invalid",
        403: "Signed in, but not allowed",
        404: "Not found (also for workspaces you cannot see)",
        409: "Conflicts with the current state",
        410: "The invite is expired, revoked or used",
        422: "Invalid input",
        429: "Rate limited; see Retry-After",
        503: "Schema out of date or database unavailable",
    }
    return {s: {"model": ErrorBody, "description": described[s]} for s in statuses}
