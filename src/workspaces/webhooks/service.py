"""Webhook endpoints, the rules: where events go, at two scopes.

A workspace's endpoints are managed by its owners and admins (through `Access`; an id of
another workspace's endpoint is not found); the instance's (workspace_id NULL: every
workspace's events and the `user.*` ones) by an operator's commands (`OPERATOR`), which may
also act on any endpoint of either scope by its id, and by a service client reaching every
workspace (`ClientRef`: the instance's endpoints only). A signing secret is shown once, when made,
and stored only sealed. Sending is webhooks/delivery.py's: this module queues (a test message,
a retry, a replay) and reads the delivery log.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Literal

from sqlalchemy import and_, delete, exists, func, insert, literal, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock, ratelimit
from workspaces.errors import Conflict, InvalidInput, NotFound
from workspaces.events import changes
from workspaces.events.catalogue import (
    INSTANCE_ENDPOINTS_ONLY,
    INSTANCE_ONLY,
    PUBLISHED,
    TEST_MESSAGE,
)
from workspaces.events.tell import (
    WEBHOOKS_QUEUED,
    Actor,
    Change,
    WorkspaceRef,
    new_uuid,
    payload,
    tell,
)
from workspaces.models import (
    DELIVERY_STATUSES,
    events,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    workspaces,
)
from workspaces.pagination import Cursor, check_limit, keyset, page_of
from workspaces.security import seal, secret_key
from workspaces.settings import Settings
from workspaces.validation import check_all, clean_name
from workspaces.webhooks import parking
from workspaces.webhooks.addresses import check_url, origin, parse, resolve
from workspaces.workspaces.service import Access, ClientRef, hold_role

log = logging.getLogger("workspaces.webhooks")

MAX_ENDPOINTS = 20  # of one workspace, and of the instance
SECRET_BYTES = 32
DESCRIPTION_MAX = 500
DeliveryStatus = Literal["pending", "delivered", "failed"]


class Operator(Enum):
    """An operator's command: the instance's endpoints, and any endpoint by its id."""

    OPERATOR = "operator"


OPERATOR = Operator.OPERATOR
Owner = Access | Operator | ClientRef  # whose endpoints a call may touch


class Keep(Enum):
    """An update's "leave this as it is" (where None means something: every event type)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class EndpointInfo:
    id: uuid.UUID
    workspace_id: uuid.UUID | None  # None: the instance's
    workspace_slug: str | None
    url: str
    description: str
    events: list[str] | None  # None: every type
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_until: datetime | None  # the old secret still signs until then
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and its signing secret: the only time the secret is shown."""

    endpoint: EndpointInfo
    secret: str


@dataclass(frozen=True)
class AttemptInfo:
    attempted_at: datetime
    status_code: int | None  # None: no answer (refused, timed out)
    duration_ms: int
    response_excerpt: str | None
    error: str | None


@dataclass(frozen=True)
class DeliveryInfo:
    id: uuid.UUID
    message_id: str  # webhook-id: the event's id (msg_... for a test message)
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[AttemptInfo]  # newest first


@dataclass(frozen=True)
class Replayed:
    queued: int
    since: datetime


# Words


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: whsec_ and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def offered(*, instance: bool) -> tuple[str, ...]:
    """The types an endpoint of this scope can receive: `user.*` and `workspace.deleted`
    only the instance's (a workspace's endpoints end with the workspace)."""
    return PUBLISHED if instance else tuple(
        t for t in PUBLISHED if t not in INSTANCE_ENDPOINTS_ONLY)


def _why_not(kind: str) -> str:
    if kind in INSTANCE_ONLY:
        return ("it concerns an account, not a workspace: only the instance's endpoints "
                "receive it")
    if kind in INSTANCE_ENDPOINTS_ONLY:
        return ("a workspace's endpoints are deleted with the workspace, so they never "
                "receive it: only the instance's endpoints do")
    return "it is not an event type"


def check_events(types: list[str] | None, *, instance: bool) -> str | None:
    """The stored form of an endpoint's types (",a,b,"; None: every type); 422
    `invalid_event_type` for a type the catalogue does not publish, or that never reaches
    an endpoint of this scope."""
    if types is None:
        return None
    choices = offered(instance=instance)
    unknown = [t for t in types if t not in choices]
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} cannot be chosen: {_why_not(unknown[0])}. Choose "
                           f"among {', '.join(choices)}, or leave `events` out for all of "
                           "them.", code="invalid_event_type", field="events")
    if not types:
        raise InvalidInput(f"Choose at least one event type ({', '.join(choices)}), or leave "
                           "`events` out for all of them.", code="invalid_event_type",
                           field="events")
    wanted = [t for t in PUBLISHED if t in set(types)]  # the catalogue's order, once each
    return "," + ",".join(wanted) + ","


def _types(stored: str | None) -> list[str] | None:
    return None if stored is None else [t for t in stored.split(",") if t]


def check_description(raw: str) -> str:
    """Optional: empty, or a name's rules (no control or invisible characters)."""
    if not raw.strip():
        return ""
    return clean_name(raw, field="description", max_length=DESCRIPTION_MAX)


def _not_found(endpoint_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"No webhook endpoint {endpoint_id} here.", code="webhook_not_found")


def _disabled() -> Conflict:
    return Conflict("This endpoint is disabled; enable it first, then try again.",
                    code="webhook_disabled")


# Reading endpoints

_COLUMNS = [c for c in webhook_endpoints.c if c.name not in (
    "sealed_secret", "sealed_previous_secret")]


def _selected() -> Any:
    return select(*_COLUMNS, workspaces.c.slug).select_from(webhook_endpoints.outerjoin(
        workspaces, workspaces.c.id == webhook_endpoints.c.workspace_id))


def _info(row: Any) -> EndpointInfo:
    def at(value: datetime | None) -> datetime | None:
        return clock.aware(value) if value is not None else None

    return EndpointInfo(row.id, row.workspace_id, row.slug, row.url, row.description,
                        _types(row.event_types), bool(row.enabled), row.disabled_reason,
                        at(row.disabled_at), at(row.failing_since),
                        at(row.previous_secret_until), clock.aware(row.created_at),
                        clock.aware(row.updated_at))


def _scope(owner: Owner) -> Any:
    """The endpoints `owner` may list: a workspace's own, the instance's (a service client),
    or (operator) every one."""
    if isinstance(owner, Access):
        return webhook_endpoints.c.workspace_id == owner.workspace.id
    if isinstance(owner, ClientRef):
        return webhook_endpoints.c.workspace_id.is_(None)
    return true()


async def _checked(conn: AsyncConnection, owner: Owner, doing: str, *, write: bool) -> Owner:
    """The caller may manage this workspace's endpoints (owners and admins), their role read
    under a share lock for a change (`hold_role`); an operator always may, and so may a
    service client the instance's (its credential's scope was checked where it was read)."""
    if isinstance(owner, Access):
        if write:
            owner = await hold_role(conn, owner)
        owner.require("admin", doing)
    return owner


async def _endpoint(conn: AsyncConnection, owner: Owner, endpoint_id: uuid.UUID, *,
                    lock: bool = False) -> EndpointInfo:
    """One endpoint `owner` may touch; 404 `webhook_not_found` for any other (another
    workspace's id reads exactly as an unknown one)."""
    query = _selected().where(webhook_endpoints.c.id == endpoint_id, _scope(owner))
    if lock:
        query = query.with_for_update(of=webhook_endpoints)
    row = (await conn.execute(query)).first()
    if row is None:
        raise _not_found(endpoint_id)
    return _info(row)


async def list_endpoints(conn: AsyncConnection, *, owner: Owner) -> list[EndpointInfo]:
    """Oldest first; an operator's: the instance's, then each workspace's."""
    await _checked(conn, owner, "see webhook endpoints", write=False)
    query = _selected().where(_scope(owner)).order_by(
        webhook_endpoints.c.workspace_id.is_not(None), webhook_endpoints.c.created_at,
        webhook_endpoints.c.id)
    return [_info(row) for row in await conn.execute(query)]


async def get_endpoint(conn: AsyncConnection, *, owner: Owner,
                       endpoint_id: uuid.UUID) -> EndpointInfo:
    await _checked(conn, owner, "see webhook endpoints", write=False)
    return await _endpoint(conn, owner, endpoint_id)


# Changing endpoints


def _ref(endpoint: EndpointInfo) -> WorkspaceRef | None:
    if endpoint.workspace_id is None or endpoint.workspace_slug is None:
        return None
    return WorkspaceRef(endpoint.workspace_id, endpoint.workspace_slug)


def _actor(owner: Owner) -> Actor:
    if isinstance(owner, Access):
        return owner.actor
    if isinstance(owner, ClientRef):
        return Actor.client(owner.id, owner.name)
    return Actor("operator")


def _who(owner: Owner, *, log: bool = False) -> str:
    """The caller as a disabled endpoint's reason names them; for the log, by id (no
    address in the log)."""
    who = owner.principal if isinstance(owner, Access) else owner
    if isinstance(who, Operator):
        return "an operator"
    if isinstance(who, ClientRef):
        return f"client {who.id}" if log else f"the service client {who.name}"
    return str(who.id) if log else who.email


async def _told(conn: AsyncConnection, owner: Owner,
                action: Literal["created", "updated", "deleted", "secret_rotated"],
                endpoint: EndpointInfo, **detail: Any) -> None:
    """A change to a workspace's endpoint goes to that workspace's audit trail, and every
    change to the log; never the secret, and of the URL only its origin."""
    where = origin(endpoint.url)
    if isinstance(owner, Access) and endpoint.workspace_id is not None:
        await tell(conn, changes.webhook_changed(owner.ref, action, endpoint.id, where,
                                                 owner.actor, detail))
    elif (ref := _ref(endpoint)) is not None:  # an operator acting on a workspace's endpoint
        await tell(conn, changes.webhook_changed(ref, action, endpoint.id, where,
                                                 Actor("operator"),
                                                 {**detail, "by_operator": True}))
    log.info("webhook endpoint %s %s (%s, %s) by %s", endpoint.id, action.replace("_", " "),
             where, endpoint.workspace_slug or "instance", _who(owner, log=True))


def _operator_networks(owner: Owner, workspace_id: uuid.UUID | None) -> bool:
    """Whether WEBHOOK_ALLOWED_NETWORKS admits the receiver of a URL `owner` sets: only an
    operator's, on an instance endpoint. A service client manages the instance's endpoints
    too, but its URLs are judged as a workspace admin's: the operator's internal hosts are
    not a product's to reach (nor to read the answers of, in the delivery log)."""
    return isinstance(owner, Operator) and workspace_id is None


async def _serialise_scope(conn: AsyncConnection, workspace_id: uuid.UUID | None) -> None:
    """Creations in one scope take turns (PostgreSQL: a transaction-level advisory lock on
    the scope), so two at once cannot both pass the limit. SQLite's writers already do."""
    if conn.dialect.name == "postgresql":
        key = f"webhook_endpoints:{workspace_id or 'instance'}"
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                           {"key": key})


async def create_endpoint(conn: AsyncConnection, *, owner: Owner, url: str,
                          events: list[str] | None, description: str,
                          settings: Settings) -> WithSecret:
    """A new endpoint, enabled, with its signing secret (returned once, stored sealed). An
    `Access` makes one of its workspace; `OPERATOR`, one of the instance."""
    owner = await _checked(conn, owner, "add webhook endpoints", write=True)
    workspace_id = owner.workspace.id if isinstance(owner, Access) else None
    target, stored_types, clean_description = check_all(
        lambda: parse(url), lambda: check_events(events, instance=workspace_id is None),
        lambda: check_description(description))
    operator_networks = _operator_networks(owner, workspace_id)
    await resolve(target, settings, operator_networks=operator_networks)
    await _serialise_scope(conn, workspace_id)
    count = (await conn.execute(select(func.count()).select_from(webhook_endpoints).where(
        webhook_endpoints.c.workspace_id == workspace_id if workspace_id is not None
        else webhook_endpoints.c.workspace_id.is_(None)))).scalar_one()
    if count >= MAX_ENDPOINTS:
        where = "this workspace" if workspace_id is not None else "the instance"
        raise Conflict(f"{where.capitalize()} already has {MAX_ENDPOINTS} webhook endpoints, "
                       "the most it may have; delete one you no longer use first.",
                       code="webhook_limit_reached")
    secret, now, endpoint_id = new_secret(), clock.now(), uuid.uuid4()
    await conn.execute(insert(webhook_endpoints).values(
        id=endpoint_id, workspace_id=workspace_id, url=target.url,
        description=clean_description, event_types=stored_types,
        sealed_secret=seal(secret_key(settings), secret), enabled=True, created_at=now,
        updated_at=now, operator_networks=operator_networks,
        created_by_user_id=owner.user.id if isinstance(owner, Access) and owner.user
        else None))
    endpoint = await _endpoint(conn, owner, endpoint_id)
    await _told(conn, owner, "created", endpoint,
                events=_types(stored_types) or "all")
    return WithSecret(endpoint, secret)


async def update_endpoint(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                          settings: Settings, url: str | None = None,
                          events: list[str] | Keep | None = KEEP,
                          description: str | None = None) -> EndpointInfo:
    """Change the URL (checked again), the types or the description; what is not given stays.
    Audited as `webhook_updated` naming what changed (nothing changed: nothing told)."""
    owner = await _checked(conn, owner, "change webhook endpoints", write=True)
    current = await _endpoint(conn, owner, endpoint_id, lock=True)
    values: dict[str, Any] = {}
    operator_networks = _operator_networks(owner, current.workspace_id)
    if url is not None and url.strip() != current.url:
        values["url"] = (await check_url(
            url, settings, operator_networks=operator_networks)).url
    if not isinstance(events, Keep):
        stored = check_events(events, instance=current.workspace_id is None)
        if _types(stored) != current.events:
            values["event_types"] = stored
    if description is not None:
        clean = check_description(description)
        if clean != current.description:
            values["description"] = clean
    if not values:
        return current
    # Whoever sets the URL decides which networks its receiver may be on from now on.
    who = {"operator_networks": operator_networks} if "url" in values else {}
    await conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == current.id)
                       .values(**values, **who, updated_at=clock.now()))
    changed = await _endpoint(conn, owner, endpoint_id)
    await _told(conn, owner, "updated", changed, changed=sorted(
        {"url": "url", "event_types": "events", "description": "description"}[k]
        for k in values))
    return changed


async def set_enabled(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                      enabled: bool) -> EndpointInfo:
    """Enable (as new: not failing) or disable an endpoint. A disabled endpoint gets no new
    deliveries; those already queued are parked until it is enabled again, then due at once."""
    owner = await _checked(conn, owner, "enable or disable webhook endpoints", write=True)
    current = await _endpoint(conn, owner, endpoint_id, lock=True)
    if current.enabled == enabled:
        return current
    now = clock.now()
    if enabled:
        values: dict[str, Any] = {"enabled": True, "disabled_reason": None,
                                  "disabled_at": None, "failing_since": None}
    else:
        values = {"enabled": False, "disabled_reason": f"Disabled by {_who(owner)}.",
                  "disabled_at": now}
    await conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == current.id)
                       .values(**values, updated_at=now))
    if enabled:
        await parking.resume(conn, current.id)
    else:
        await parking.park(conn, [current.id])
    changed = await _endpoint(conn, owner, endpoint_id)
    await _told(conn, owner, "updated", changed, enabled=enabled)
    return changed


async def delete_endpoint(conn: AsyncConnection, *, owner: Owner,
                          endpoint_id: uuid.UUID) -> EndpointInfo:
    """Its queued deliveries and their log go with it."""
    owner = await _checked(conn, owner, "delete webhook endpoints", write=True)
    current = await _endpoint(conn, owner, endpoint_id, lock=True)
    await conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == current.id))
    await _told(conn, owner, "deleted", current)
    return current


async def rotate_secret(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                        settings: Settings) -> WithSecret:
    """A new signing secret (returned once); the previous one keeps signing beside it for
    WEBHOOK_SECRET_GRACE_HOURS, so a receiver can switch without dropping a message."""
    owner = await _checked(conn, owner, "rotate webhook secrets", write=True)
    current = await _endpoint(conn, owner, endpoint_id, lock=True)
    sealed_now = (await conn.execute(select(webhook_endpoints.c.sealed_secret).where(
        webhook_endpoints.c.id == current.id))).scalar_one()
    secret, now = new_secret(), clock.now()
    grace = timedelta(hours=settings.webhook_secret_grace_hours)
    await conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == current.id)
                       .values(sealed_secret=seal(secret_key(settings), secret),
                               sealed_previous_secret=sealed_now if grace else None,
                               previous_secret_until=now + grace if grace else None,
                               updated_at=now))
    rotated = await _endpoint(conn, owner, endpoint_id)
    until = rotated.previous_secret_until
    await _told(conn, owner, "secret_rotated", rotated,
                previous_valid_until=until.isoformat() if until else None)
    return WithSecret(rotated, secret)


# Queueing


async def _count(conn: AsyncConnection, owner: Owner, endpoint: EndpointInfo,
                 kind: Literal["test", "replay"], settings: Settings) -> None:
    """Test messages and replays a workspace (or a service client, of the instance's
    endpoints) asks for an hour: each queues work that every endpoint's deliveries then wait
    behind (429 `rate_limited` beyond). An operator's are not counted."""
    if isinstance(owner, Operator) or (isinstance(owner, Access)
                                       and endpoint.workspace_id is None):
        return
    scope, where = ((endpoint.workspace_id, "this workspace") if endpoint.workspace_id
                    else ("instance", "the instance"))
    hour = timedelta(hours=1)
    limit = (ratelimit.Limit(f"webhooks:test:{scope}",
                             settings.webhook_test_limit_per_workspace_per_hour, hour,
                             f"webhook test messages in {where}",
                             name="webhook_test_limit_per_workspace_per_hour")
             if kind == "test" else
             ratelimit.Limit(f"webhooks:replay:{scope}",
                             settings.webhook_replay_limit_per_workspace_per_hour, hour,
                             f"webhook replays in {where}",
                             name="webhook_replay_limit_per_workspace_per_hour"))
    await ratelimit.hit(conn, limit)


async def send_test(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                    settings: Settings) -> DeliveryInfo:
    """Queue a `webhook.test` message (an event envelope that is in no feed) for the
    endpoint; the delivery loop sends it like any event. A workspace's are counted against
    WEBHOOK_TEST_LIMIT_PER_WORKSPACE_PER_HOUR."""
    owner = await _checked(conn, owner, "send test messages", write=True)
    endpoint = await _endpoint(conn, owner, endpoint_id)
    if not endpoint.enabled:
        raise _disabled()
    await _count(conn, owner, endpoint, "test", settings)
    message_id, now, delivery_id = f"msg_{uuid.uuid4().hex}", clock.now(), uuid.uuid4()
    change = Change(TEST_MESSAGE, _actor(owner),  # type: ignore[arg-type]
                    {"endpoint_id": str(endpoint.id),
                     "message": "A test event from Workspaces: this endpoint receives and "
                                "verifies messages."}, _ref(endpoint))
    await conn.execute(insert(webhook_deliveries).values(
        id=delivery_id, endpoint_id=endpoint.id, event_position=None, message_id=message_id,
        payload=payload(message_id, change, now), status="pending", attempts=0,
        next_attempt_at=now, created_at=now))
    conn.info[WEBHOOKS_QUEUED] = True  # the request boundary wakes the loop on commit
    return (await _deliveries(conn, endpoint.id, ids=[delivery_id]))[0]


async def retry_delivery(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                         delivery_id: uuid.UUID) -> DeliveryInfo:
    """Send one delivery again now (whatever its state); its attempts so far stay logged."""
    owner = await _checked(conn, owner, "retry webhook deliveries", write=True)
    endpoint = await _endpoint(conn, owner, endpoint_id)
    if not endpoint.enabled:
        raise _disabled()
    done = await conn.execute(update(webhook_deliveries).where(
        webhook_deliveries.c.id == delivery_id,
        webhook_deliveries.c.endpoint_id == endpoint.id,
    ).values(status="pending", next_attempt_at=clock.now(), delivered_at=None))
    if done.rowcount == 0:
        raise NotFound(f"No delivery {delivery_id} of this endpoint.",
                       code="delivery_not_found")
    conn.info[WEBHOOKS_QUEUED] = True
    return (await _deliveries(conn, endpoint.id, ids=[delivery_id]))[0]


async def replay(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                 since: datetime, settings: Settings) -> Replayed:
    """Queue again every event the endpoint would have received since `since` (of its scope
    and types, still retained), as new deliveries with the events' own ids (receivers
    deduplicate on webhook-id); an event already waiting for this endpoint is not queued
    twice. Returns how many were queued. A workspace's replays are counted against
    WEBHOOK_REPLAY_LIMIT_PER_WORKSPACE_PER_HOUR."""
    owner = await _checked(conn, owner, "replay webhook deliveries", write=True)
    endpoint = await _endpoint(conn, owner, endpoint_id)
    if not endpoint.enabled:
        raise _disabled()
    now = clock.now()
    try:
        since = clock.aware(since).astimezone(UTC)
    except OverflowError:  # before year 1 in UTC: every event kept is later
        since = datetime.min.replace(tzinfo=UTC)
    if since > now:
        raise InvalidInput("`since` is in the future: give the time from which to send "
                           "events again.", code="invalid_since", field="since")
    await _count(conn, owner, endpoint, "replay", settings)
    waiting = exists().where(webhook_deliveries.c.endpoint_id == endpoint.id,
                             webhook_deliveries.c.event_position == events.c.position,
                             webhook_deliveries.c.status == "pending")
    wanted = [events.c.occurred_at >= since, ~waiting]
    if endpoint.workspace_id is not None:
        wanted.append(events.c.workspace_id == endpoint.workspace_id)
    if endpoint.events is not None:
        wanted.append(events.c.type.in_(endpoint.events))
    chosen = select(new_uuid(conn.dialect.name), literal(endpoint.id), events.c.position,
                    events.c.id, literal("pending"), literal(0), literal(now), literal(now)
                    ).where(and_(*wanted)).order_by(events.c.position)
    done = await conn.execute(insert(webhook_deliveries).from_select(
        ["id", "endpoint_id", "event_position", "message_id", "status", "attempts",
         "next_attempt_at", "created_at"], chosen))
    queued = max(done.rowcount, 0)
    if queued:
        conn.info[WEBHOOKS_QUEUED] = True
    log.info("webhook endpoint %s: %d events since %s queued again", endpoint.id, queued,
             since.isoformat())
    return Replayed(queued, since)


# The delivery log


def check_status(status: str | None) -> str | None:
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(DELIVERY_STATUSES)}.",
                           code="invalid_status", field="status")
    return status


async def _deliveries(conn: AsyncConnection, endpoint_id: uuid.UUID, *,
                      ids: list[uuid.UUID] | None = None, status: str | None = None,
                      after: Cursor | None = None, limit: int = 50) -> list[DeliveryInfo]:
    d = webhook_deliveries
    query = (select(d, events.c.type.label("event_type"))
             .select_from(d.outerjoin(events, events.c.position == d.c.event_position))
             .where(d.c.endpoint_id == endpoint_id))
    if ids is not None:
        query = query.where(d.c.id.in_(ids))
    if status is not None:
        query = query.where(d.c.status == status)
    rows = list(await conn.execute(keyset(query, d.c.created_at, d.c.id, after, limit)))
    tries: dict[uuid.UUID, list[AttemptInfo]] = {}
    if rows:
        a = webhook_attempts
        for t in await conn.execute(
                select(a).where(a.c.delivery_id.in_([r.id for r in rows]))
                .order_by(a.c.attempted_at.desc(), a.c.id.desc())):
            tries.setdefault(t.delivery_id, []).append(AttemptInfo(
                clock.aware(t.attempted_at), t.status_code, t.duration_ms,
                t.response_excerpt, t.error))
    return [DeliveryInfo(
        r.id, r.message_id,
        r.event_type or (r.payload or {}).get("type", TEST_MESSAGE), r.status, r.attempts,
        clock.aware(r.next_attempt_at), r.last_status_code, r.last_error,
        clock.aware(r.created_at), clock.aware(r.delivered_at) if r.delivered_at else None,
        tries.get(r.id, [])) for r in rows]


async def list_deliveries(conn: AsyncConnection, *, owner: Owner, endpoint_id: uuid.UUID,
                          limit: int, cursor: str | None, status: str | None = None
                          ) -> tuple[list[DeliveryInfo], str | None]:
    """Newest first, each with its attempts (newest first); keyset paged as the audit trail."""
    await _checked(conn, owner, "see webhook deliveries", write=False)
    endpoint = await _endpoint(conn, owner, endpoint_id)
    check_limit(limit)
    items = await _deliveries(conn, endpoint.id, status=check_status(status),
                              after=Cursor.decode(cursor), limit=limit)
    return page_of(items, limit, lambda d: Cursor(d.created_at, d.id))

