"""The feed: events oldest first, read on from a stored cursor.

The invariant: **a consumer that stores its cursor and polls never misses an event and never
sees one twice.** A cursor is a point in the feed's order, so every event the consumer has not
seen yet must come after that point, also one whose transaction commits later.

Ordering by `position` alone breaks that. Positions are taken when a row is written, not when
its transaction commits: T1 takes position 1 and stays open, T2 takes position 2 and commits; a
reader sees 2, stores it, and never sees 1 when T1 commits. So events are ordered by
(`txid`, `position`), `txid` being the writing transaction's id, and on PostgreSQL the feed
shows only events of transactions older than the snapshot's xmin (the oldest transaction still
running): every transaction below it has settled (committed, or rolled back and gone), and any
transaction still to write an event gets an id at least as large, so it sorts after every
cursor handed out. The price is a lag: an event shows once every transaction older than its
own has ended (in the whole PostgreSQL cluster, whose transaction ids are shared), so a long
transaction anywhere holds the feed back, never makes it skip. The xmin and the rows are read
in one statement, from one snapshot.

On SQLite writers take turns (a write holds the database's lock until it commits), so
positions are taken in commit order, `txid` is 0, and every committed event is shown.

A cursor is a point in that order, valid in either scope and with any `type` filter (it names
no workspace and reveals nothing but how far a reader got). The retention sweep deletes a
prefix of the order and records its end, `event_horizon`; a cursor before it may have missed
deleted events and is refused (410 `cursor_expired`) rather than read on silently.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import ColumnElement, select, text, true, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces.errors import Gone, InvalidInput
from workspaces.events.catalogue import INSTANCE_ONLY, PUBLISHED
from workspaces.models import event_horizon, events
from workspaces.pagination import check_limit

if TYPE_CHECKING:
    from workspaces.workspaces.service import Access

CURSOR_VERSION = "1"
_MAX = 2**63 - 1  # bigint


@dataclass(frozen=True, order=True)
class Point:
    """A point in the feed's order: the (txid, position) of an event."""

    txid: int
    position: int

    def encode(self) -> str:
        raw = f"{CURSOR_VERSION}:{self.txid}:{self.position}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Point:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            version, txid, position = raw.split(":")
            point = cls(int(txid), int(position))
            if version != CURSOR_VERSION or not (0 <= point.txid <= _MAX
                                                 and 0 <= point.position <= _MAX):
                raise ValueError(raw)
            return point
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise InvalidInput("The cursor is not one this server gave out: pass `after` "
                               "exactly as the last page's `next_cursor`, or leave it out "
                               "to read from the oldest event kept.",
                               code="invalid_cursor", field="after") from None


class FeedPage(NamedTuple):
    items: list[dict[str, Any]]  # each event as `tell.payload` made it
    next_cursor: str | None
    has_more: bool


def settled(dialect: str) -> ColumnElement[bool]:
    """Events whose transaction has settled, and every one before them in the feed's order
    (see the module's docstring); the feed shows and the sweep deletes only these."""
    if dialect == "postgresql":
        return events.c.txid < text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return true()


def check_types(types: Sequence[str] | None, *, instance: bool) -> list[str] | None:
    """`types` if each is a published type (and, for a workspace, one a workspace has); 422
    `invalid_event_type` otherwise."""
    if not types:
        return None
    unknown = [t for t in types if t not in PUBLISHED]
    if unknown:
        raise InvalidInput(f"Unknown event type {unknown[0]!r}; the types are: "
                           f"{', '.join(PUBLISHED)}.", code="invalid_event_type", field="type")
    if not instance and (elsewhere := [t for t in types if t in INSTANCE_ONLY]):
        raise InvalidInput(f"{elsewhere[0]} events belong to no workspace: they are only in "
                           "the instance feed.", code="invalid_event_type", field="type")
    return list(dict.fromkeys(types))


def expired(retention_days: int) -> Gone:
    """410 for a cursor before the retention horizon (the CLI adds its own next step)."""
    return Gone(f"Events after this cursor were deleted: events are kept {retention_days} "
                "days. Start over: read from the oldest event kept (leave out `after`) and "
                "resync what you keep from the API.", code="cursor_expired")


async def horizon(conn: AsyncConnection) -> Point | None:
    """The last point the retention sweep deleted, if it deleted any."""
    row = (await conn.execute(select(event_horizon.c.txid, event_horizon.c.position))).first()
    return Point(row.txid, row.position) if row else None


async def frontier(conn: AsyncConnection) -> Point | None:
    """The last settled event of the whole feed, as the statement's snapshot sees it."""
    row = (await conn.execute(
        select(events.c.txid, events.c.position).where(settled(conn.dialect.name))
        .order_by(events.c.txid.desc(), events.c.position.desc()).limit(1))).first()
    return Point(row.txid, row.position) if row else None


async def read(conn: AsyncConnection, *, workspace_id: uuid.UUID | None, after: str | None,
               limit: int, types: Sequence[str] | None, retention_days: int) -> FeedPage:
    """Settled events after the cursor `after`, oldest first: a workspace's, or the
    instance's (every event, `user.*` too) when `workspace_id` is None.

    The last page's `next_cursor` is the furthest point read: past the last item to the
    last settled event of the whole feed, which the page's scope and filter had nothing
    after. So a consumer of a quiet workspace (or of a rare type) that keeps polling keeps a
    fresh cursor, which the retention sweep does not overtake.
    """
    check_limit(limit)
    wanted = check_types(types, instance=workspace_id is None)
    start = Point.decode(after) if after else None
    # Before the rows, from an earlier snapshot: every event up to it is settled in the
    # rows' snapshot too, so the rows hold every one of them in this scope.
    furthest = await frontier(conn)
    query = (select(events.c.txid, events.c.position, events.c.payload)
             .where(settled(conn.dialect.name))
             .order_by(events.c.txid, events.c.position).limit(limit + 1))
    if workspace_id is not None:
        query = query.where(events.c.workspace_id == workspace_id)
    if wanted is not None:
        query = query.where(events.c.type.in_(wanted))
    if start is not None:
        query = query.where(tuple_(events.c.txid, events.c.position)
                            > tuple_(start.txid, start.position))
    rows = (await conn.execute(query)).all()
    # Read after the rows: a sweep that deleted past the cursor before they were read has
    # raised the horizon by now (one that came later took nothing this page needed).
    if start is not None and (swept := await horizon(conn)) is not None and start < swept:
        raise expired(retention_days)
    page, has_more = rows[:limit], len(rows) > limit
    points = [Point(r.txid, r.position) for r in page[-1:]]
    if not has_more:
        points += [p for p in (furthest, start) if p is not None]
    return FeedPage([dict(r.payload) for r in page],
                    max(points).encode() if points else None, has_more)


async def read_workspace(conn: AsyncConnection, *, access: Access, after: str | None,
                         limit: int, types: Sequence[str] | None,
                         retention_days: int) -> FeedPage:
    """A workspace's feed, for its owners and admins."""
    access.require("admin", "read the workspace's events")
    return await read(conn, workspace_id=access.workspace.id, after=after, limit=limit,
                      types=types, retention_days=retention_days)
