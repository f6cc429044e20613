"""Response shapes shared by every router: the error body and the documented error statuses."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel, ConfigDict, TypeAdapter


class ReadModel(BaseModel):
    """A response shape read from a service's dataclass by attribute (`Model.model_validate(x)`):
    no `asdict`, whose deep copy of every value cost more than the query on list endpoints."""

    model_config = ConfigDict(from_attributes=True)


def json_response(adapter: TypeAdapter[Any], value: Any, *, exclude: Any = None) -> Response:
    """Serialise in one pydantic-core pass, for list endpoints.

    The route keeps `response_model` for the OpenAPI document; returning a Response skips
    FastAPI's validate-then-serialise of every item, which cost more than the query. The
    adapter is built over the documented model, or over the service dataclass that model
    mirrors field for field (`exclude` drops the dataclass's extra fields).
    """
    return Response(adapter.dump_json(value, exclude=exclude), media_type="application/json")


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
        410: "The link (invite, password reset, address change) is expired, revoked or used",
        422: "Invalid input",
        429: "Rate limited; see Retry-After",
        503: "Schema out of date or database unavailable",
    }
    return {s: {"model": ErrorBody, "description": described[s]} for s in statuses}
