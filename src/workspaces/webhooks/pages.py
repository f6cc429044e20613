"""Workspace settings -> Webhooks tab (owners and admins): the endpoints and the form that adds
one; each endpoint's page with its settings, its actions (test, enable or disable, rotate the
secret, delete, replay) and its delivery log. A new secret is shown once, after the redirect
that follows its creation (sealed in the flash cookie meanwhile)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.errors import AppError, InvalidInput
from workspaces.events.catalogue import SUMMARIES
from workspaces.web.deps import AppSettings, Conn
from workspaces.web.html import (
    NO_STORE,
    Confirmed,
    CsrfChecked,
    SignedIn,
    act,
    attempt,
    confirm_page,
    field_errors,
    redirect,
    render,
)
from workspaces.web.routing import Route
from workspaces.webhooks import service
from workspaces.webhooks.addresses import URL_MAX
from workspaces.webhooks.service import DESCRIPTION_MAX, EndpointInfo, WithSecret
from workspaces.workspaces.service import Access, load_access

router = APIRouter(route_class=Route, include_in_schema=False)
PAGE_SIZE = 25
Url = Annotated[str, Form(max_length=2 * URL_MAX)]
Description = Annotated[str, Form(max_length=2 * DESCRIPTION_MAX)]
Events = Annotated[list[str], Form(max_length=64)]
SHOWN_ONCE = "Copy the signing secret now: it is shown only on this page, only this once."


def _base(slug: str) -> str:
    return f"/w/{slug}/webhooks"


def _choices() -> list[tuple[str, str]]:
    return [(t, SUMMARIES[t]) for t in service.offered(instance=False)]


async def webhooks_tab(request: Request, conn: AsyncConnection, access: Access, *,
                       status: int = 200, values: dict[str, Any] | None = None,
                       errors: dict[str, str] | None = None) -> Response:
    """The endpoints and the add form (owners and admins; members get 403 as from the API)."""
    endpoints = await service.list_endpoints(conn, owner=access)
    return render(request, "workspace_webhooks.html", status, access=access, tab="webhooks",
                  endpoints=endpoints, choices=_choices(), values=values or {},
                  errors=errors or {}, limit=service.MAX_ENDPOINTS)


@router.get("/w/{slug}/webhooks")
async def webhooks_page(request: Request, slug: str, conn: Conn, user: SignedIn) -> Response:
    return await webhooks_tab(request, conn, await load_access(conn, slug=slug, user=user))


def _chosen(events: list[str]) -> list[str] | None:
    """The form's checkboxes: none ticked means every type (those added later too)."""
    return events or None


@router.post("/w/{slug}/webhooks", dependencies=[CsrfChecked])
async def create(request: Request, slug: str, conn: Conn, user: SignedIn,
                 settings: AppSettings, url: Url = "", description: Description = "",
                 events: Events = []) -> Response:  # noqa: B006 (FastAPI copies defaults)
    access = await load_access(conn, slug=slug, user=user)
    made = await attempt(conn, lambda: service.create_endpoint(
        conn, owner=access, url=url, events=_chosen(events), description=description,
        settings=settings))
    if isinstance(made, AppError):
        return await webhooks_tab(request, conn, access, status=made.status,
                                  values={"url": url, "description": description,
                                          "events": events},
                                  errors=field_errors(made))
    return _shown_once(request, slug, made, "Endpoint added.")


def _shown_once(request: Request, slug: str, made: WithSecret, said: str) -> Response:
    return redirect(request, f"{_base(slug)}/{made.endpoint.id}", f"{said} {SHOWN_ONCE}",
                    secret=made.secret)


async def endpoint_page(request: Request, conn: AsyncConnection, access: Access,
                        endpoint: EndpointInfo, *, cursor: str | None = None,
                        status: int = 200, values: dict[str, Any] | None = None,
                        errors: dict[str, str] | None = None) -> Response:
    """One endpoint: its settings form, its actions and its delivery log, newest first."""
    deliveries, next_cursor = await service.list_deliveries(
        conn, owner=access, endpoint_id=endpoint.id, limit=PAGE_SIZE, cursor=cursor)
    base = f"{_base(access.workspace.slug)}/{endpoint.id}"
    return render(request, "workspace_webhook.html", status, headers=NO_STORE, access=access,
                  tab="webhooks", endpoint=endpoint, base=base, deliveries=deliveries,
                  older=f"{base}?cursor={next_cursor}" if next_cursor else None,
                  first_page=cursor is None, choices=_choices(),
                  values=values or {}, errors=errors or {},
                  now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"))


async def _access_and_endpoint(conn: AsyncConnection, slug: str, user: Any,
                               endpoint_id: uuid.UUID) -> tuple[Access, EndpointInfo]:
    access = await load_access(conn, slug=slug, user=user)
    return access, await service.get_endpoint(conn, owner=access, endpoint_id=endpoint_id)


@router.get("/w/{slug}/webhooks/{endpoint_id}")
async def endpoint_view(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                        user: SignedIn,
                        cursor: Annotated[str | None, Query(max_length=200)] = None
                        ) -> Response:
    access, endpoint = await _access_and_endpoint(conn, slug, user, endpoint_id)
    return await endpoint_page(request, conn, access, endpoint, cursor=cursor)


@router.post("/w/{slug}/webhooks/{endpoint_id}", dependencies=[CsrfChecked])
async def edit(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
               user: SignedIn, settings: AppSettings, url: Url = "",
               description: Description = "",
               events: Events = []) -> Response:  # noqa: B006 (FastAPI copies defaults)
    """The settings form; refused, the page comes back with each problem by its field."""
    access, endpoint = await _access_and_endpoint(conn, slug, user, endpoint_id)
    changed = await attempt(conn, lambda: service.update_endpoint(
        conn, owner=access, endpoint_id=endpoint_id, settings=settings, url=url,
        events=_chosen(events), description=description))
    if isinstance(changed, AppError):
        return await endpoint_page(request, conn, access, endpoint, status=changed.status,
                                   values={"url": url, "description": description,
                                           "events": events},
                                   errors=field_errors(changed))
    said = "Saved." if changed.updated_at != endpoint.updated_at else "Nothing changed."
    return redirect(request, f"{_base(slug)}/{endpoint_id}", said)


def _back(slug: str, endpoint_id: uuid.UUID) -> str:
    return f"{_base(slug)}/{endpoint_id}"


@router.post("/w/{slug}/webhooks/{endpoint_id}/enable", dependencies=[CsrfChecked])
async def enable(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                 user: SignedIn) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    back = _back(slug, endpoint_id)
    return await act(request, conn, lambda: service.set_enabled(
        conn, owner=access, endpoint_id=endpoint_id, enabled=True), back=back,
        done=lambda _: redirect(request, back, "Enabled: events are delivered to it again."))


@router.post("/w/{slug}/webhooks/{endpoint_id}/disable", dependencies=[CsrfChecked])
async def disable(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                  user: SignedIn) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    back = _back(slug, endpoint_id)
    return await act(request, conn, lambda: service.set_enabled(
        conn, owner=access, endpoint_id=endpoint_id, enabled=False), back=back,
        done=lambda _: redirect(request, back, "Disabled: nothing is delivered to it until "
                                               "you enable it again."))


@router.post("/w/{slug}/webhooks/{endpoint_id}/test", dependencies=[CsrfChecked])
async def send_test(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                    user: SignedIn, settings: AppSettings) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    back = _back(slug, endpoint_id)
    return await act(request, conn, lambda: service.send_test(
        conn, owner=access, endpoint_id=endpoint_id, settings=settings), back=back,
        done=lambda _: redirect(request, back, "Test message queued: follow it in the "
                                               "delivery log below."))


@router.post("/w/{slug}/webhooks/{endpoint_id}/rotate", dependencies=[CsrfChecked])
async def rotate(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                 user: SignedIn, settings: AppSettings, confirmed: Confirmed = "") -> Response:
    access, endpoint = await _access_and_endpoint(conn, slug, user, endpoint_id)
    back = _back(slug, endpoint_id)
    if confirmed != "yes":
        hours = settings.webhook_secret_grace_hours
        return confirm_page(
            request, heading="Rotate the signing secret?", button="Rotate secret",
            text=f"A new secret is made and shown once. Messages are signed with both the new "
                 f"and the current secret for {hours:g} hours, then with the new one only: "
                 "give the new one to your receiver within that time.", cancel=back)
    return await act(request, conn, lambda: service.rotate_secret(
        conn, owner=access, endpoint_id=endpoint.id, settings=settings), back=back,
        done=lambda made: _shown_once(request, slug, made, "Secret rotated."))


@router.post("/w/{slug}/webhooks/{endpoint_id}/delete", dependencies=[CsrfChecked])
async def delete(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                 user: SignedIn, confirmed: Confirmed = "") -> Response:
    access, endpoint = await _access_and_endpoint(conn, slug, user, endpoint_id)
    if confirmed != "yes":
        return confirm_page(
            request, heading="Delete this webhook endpoint?", button="Delete endpoint",
            text=f"Nothing more is delivered to {endpoint.url}, and its delivery log is "
                 "deleted with it.", cancel=_back(slug, endpoint_id))
    return await act(request, conn, lambda: service.delete_endpoint(
        conn, owner=access, endpoint_id=endpoint_id), back=_back(slug, endpoint_id),
        done=lambda _: redirect(request, _base(slug), "Endpoint deleted."))


@router.post("/w/{slug}/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
             dependencies=[CsrfChecked])
async def retry(request: Request, slug: str, endpoint_id: uuid.UUID, delivery_id: uuid.UUID,
                conn: Conn, user: SignedIn) -> Response:
    access = await load_access(conn, slug=slug, user=user)
    back = _back(slug, endpoint_id)
    return await act(request, conn, lambda: service.retry_delivery(
        conn, owner=access, endpoint_id=endpoint_id, delivery_id=delivery_id), back=back,
        done=lambda _: redirect(request, back, "Queued to be sent again now."))


def _since(raw: str) -> datetime:
    """The replay form's time (an <input type="datetime-local">): UTC, unless it names its
    own offset (typed by hand: 2026-12-01T09:30+01:00)."""
    try:
        since = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput("Give the date and time (UTC) from which to send events again, "
                           "such as 2026-12-01T09:30.", code="invalid_since",
                           field="since") from None
    return since.replace(tzinfo=UTC) if since.tzinfo is None else since


@router.post("/w/{slug}/webhooks/{endpoint_id}/replay", dependencies=[CsrfChecked])
async def replay(request: Request, slug: str, endpoint_id: uuid.UUID, conn: Conn,
                 user: SignedIn, settings: AppSettings,
                 since: Annotated[str, Form(max_length=40)] = "") -> Response:
    access = await load_access(conn, slug=slug, user=user)
    back = _back(slug, endpoint_id)

    async def work() -> service.Replayed:
        return await service.replay(conn, owner=access, endpoint_id=endpoint_id,
                                    since=_since(since), settings=settings)

    def done(result: service.Replayed) -> Response:
        said = (f"{result.queued} event{'s' if result.queued != 1 else ''} queued to be sent "
                "again." if result.queued else "No events since then to send again.")
        return redirect(request, back, said)

    return await act(request, conn, work, back=back, done=done)
