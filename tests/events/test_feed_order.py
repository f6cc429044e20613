"""The feed's promise on PostgreSQL, where transactions commit out of order: a consumer that
stores its cursor and polls sees every event once, in order, never one before an event it could
still miss; and the retention sweep never deletes past an event still to commit.

PostgreSQL only by nature: SQLite writers take turns, so its commit order is its write order.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import time_machine
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.conftest import pg_database
from workspaces import housekeeping
from workspaces.db import create_app_engine, parse_url
from workspaces.events import feed
from workspaces.events.tell import SYSTEM, Change, WorkspaceRef, tell
from workspaces.models import event_horizon, events

T = TypeVar("T")
WORKSPACE = WorkspaceRef(uuid.uuid4(), "acme")


@pytest.fixture
def pg_app(pg_server: URL, pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database."""
    with pg_database(pg_server, template=pg_template) as url:
        yield url


def _change(label: str, **data: Any) -> Change:
    return Change("workspace.updated", SYSTEM, {"label": label, **data}, WORKSPACE)


def _on(url: str, work: Callable[[AsyncEngine], Awaitable[T]], timeout: float = 120) -> T:
    """Run `work` with an engine on `url`; a test that would hang fails instead."""
    async def run() -> T:
        engine = create_app_engine(parse_url(url), pool_size=10)
        try:
            return await asyncio.wait_for(work(engine), timeout)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@asynccontextmanager
async def _reader(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection as the API's reads get one: autocommit, a snapshot per statement."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def _read(engine: AsyncEngine, after: str | None, limit: int = 100) -> feed.FeedPage:
    async with _reader(engine) as conn:
        return await feed.read(conn, workspace_id=None, after=after, limit=limit, types=None,
                               retention_days=30)


async def _settled(engine: AsyncEngine) -> None:
    """Until every transaction that wrote an event has ended (other tests' transactions on
    the same server hold the snapshot's xmin back for a moment)."""
    query = text("SELECT coalesce(max(txid), 0) < "
                 "pg_snapshot_xmin(pg_current_snapshot())::text::bigint FROM events")
    while True:
        async with _reader(engine) as conn:
            if (await conn.execute(query)).scalar():
                return
        await asyncio.sleep(0.01)


def test_ordering_by_position_alone_would_miss_an_event_the_feed_waits_for_it(
        pg_app: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        async with engine.connect() as first, engine.connect() as second:
            one = await first.begin()
            await tell(first, _change("first"))  # takes position 1, stays open
            async with second.begin():
                await tell(second, _change("second"))  # position 2, committed

            async with _reader(engine) as naive:
                rows = (await naive.execute(select(events.c.position, events.c.payload)
                                            .order_by(events.c.position))).all()
            assert [r.payload["data"]["label"] for r in rows] == ["second"]
            naive_cursor = rows[-1].position
            # The feed shows neither: "first" may still commit before "second" in its order.
            held = await _read(engine, None)
            assert held.items == [] and held.next_cursor is None

            await one.commit()
        async with _reader(engine) as naive:
            after = (await naive.execute(select(events.c.payload)
                                         .where(events.c.position > naive_cursor))).all()
        assert after == []  # by position alone, "first" is behind the cursor: missed for good
        await _settled(engine)
        page = await _read(engine, None)
        assert [e["data"]["label"] for e in page.items] == ["first", "second"]

    _on(pg_app, work)


@dataclass
class Run:
    """What the writers did and what the consumer saw, in order."""

    commits: list[tuple[str, int]] = field(default_factory=list)  # (writer, tx) as committed
    seen: list[str] = field(default_factory=list)  # event ids, as the consumer got them
    # Per hold: the holder's event id, and the ids the consumer got while it was open.
    holds: list[tuple[str, list[str]]] = field(default_factory=list)
    polls: int = 0


WRITERS, TRANSACTIONS, HOLDS = 4, 50, 3


def test_a_polling_consumer_sees_every_event_once_while_writers_commit_out_of_order(
        pg_app: str) -> None:
    """Four writers, each with its own connection, write 1 to 3 events per transaction and
    hold it open for a random moment, so transactions commit in another order than they took
    their positions; a holder keeps a transaction open (its event written) while the others
    commit dozens of events after it, three times over. A consumer polls the feed with its
    stored cursor all along. At the end it has every event of the table once, in the feed's
    order, and it never got an event ordered after an open transaction's."""
    run = Run()
    done = asyncio.Event()

    async def writer(engine: AsyncEngine, name: str) -> None:
        rnd = random.Random(name)  # noqa: S311 (seeded: the same interleavings each run)
        for tx in range(TRANSACTIONS):
            async with engine.begin() as conn:
                for n in range(rnd.randint(1, 3)):
                    await tell(conn, _change(name, tx=tx, n=n))
                    await asyncio.sleep(rnd.uniform(0, 0.004))
            run.commits.append((name, tx))

    async def holder(engine: AsyncEngine) -> None:
        for hold in range(HOLDS):
            async with engine.begin() as conn:
                await tell(conn, _change("holder", tx=hold))
                held = (await conn.execute(select(events.c.id).where(
                    events.c.txid == text("pg_current_xact_id()::text::bigint")))).scalar_one()
                seen_before, commits_before = len(run.seen), len(run.commits)
                # Until the writers committed 20 transactions more and the consumer polled
                # after that (or the writers finished).
                while len(run.commits) < min(commits_before + 20, WRITERS * TRANSACTIONS):
                    await asyncio.sleep(0.002)
                polls = run.polls
                while run.polls < polls + 2:
                    await asyncio.sleep(0.002)
                run.holds.append((held, run.seen[seen_before:]))
            await asyncio.sleep(0.01)  # the writers go on meanwhile

    async def consumer(engine: AsyncEngine) -> None:
        cursor: str | None = None
        while True:
            finishing = done.is_set()
            if finishing:
                await _settled(engine)
            page = await _read(engine, cursor, limit=25)
            run.seen += [e["id"] for e in page.items]
            cursor = page.next_cursor or cursor
            run.polls += 1
            if finishing and not page.has_more:
                return
            if not page.has_more:
                await asyncio.sleep(0.003)

    async def work(engine: AsyncEngine) -> None:
        reading = asyncio.create_task(consumer(engine))
        holding = asyncio.create_task(holder(engine))
        await asyncio.sleep(0)  # the holder takes its transaction id first
        await asyncio.gather(holding, *(writer(engine, f"w{i}") for i in range(WRITERS)))
        done.set()
        await reading

    _on(pg_app, work)

    async def table(engine: AsyncEngine) -> list[Any]:
        async with _reader(engine) as conn:
            return list((await conn.execute(
                select(events.c.id, events.c.txid, events.c.position, events.c.payload)
                .order_by(events.c.txid, events.c.position))).all())

    rows = _on(pg_app, table)
    assert len(rows) > 300
    assert len(set(run.seen)) == len(run.seen), "an event was seen twice"
    assert run.seen == [r.id for r in rows], "the consumer missed events or saw them out of order"

    # Transactions did commit out of the order in which they took positions.
    first_position: dict[tuple[str, int], int] = {}
    for r in rows:
        key = (r.payload["data"]["label"], r.payload["data"]["tx"])
        first_position[key] = min(first_position.get(key, r.position), r.position)
    committed = [first_position[c] for c in run.commits]
    assert any(a > b for a, b in itertools.pairwise(committed))

    # While a holder was open, the consumer got nothing ordered after its event, though
    # dozens of later events had committed meanwhile.
    order = {r.id: (r.txid, r.position) for r in rows}
    assert len(run.holds) == HOLDS
    for held, seen_meanwhile in run.holds:
        assert all(order[e] < order[held] for e in seen_meanwhile)
        assert sum(1 for r in rows if order[r.id] > order[held]) >= 20


def test_the_sweep_never_deletes_past_an_event_still_to_commit(pg_app: str) -> None:
    """T1 writes an old event and stays open; T2 writes a later old event and commits. Deleting
    T2's event would put the horizon past T1's, which would then commit behind every cursor:
    the sweep waits until T1 has ended."""
    async def work(engine: AsyncEngine) -> None:
        now = datetime.now(UTC)
        async with engine.connect() as first:
            with time_machine.travel(now - timedelta(days=40), tick=True):
                one = await first.begin()
                await tell(first, _change("first"))
                async with engine.begin() as second:
                    await tell(second, _change("second"))
            cutoff = now - timedelta(days=30)
            assert await housekeeping.sweep_events(engine, cutoff) == 0
            await one.commit()
        await _settled(engine)
        assert await housekeeping.sweep_events(engine, cutoff) == 2
        async with _reader(engine) as conn:
            horizon = (await conn.execute(select(event_horizon))).one()
            assert (await conn.execute(select(events))).all() == []
            assert horizon.txid > 0 and horizon.position == 2

    _on(pg_app, work)
