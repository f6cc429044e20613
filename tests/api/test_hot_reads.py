"""The hot reads (`workspaces.rows`): straight through asyncpg on PostgreSQL's autocommit
connections, SQLAlchemy's `execute` everywhere else, with the same rows and the same errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, TypeDecorator, event, literal_column, select, text, type_coerce

from tests.api.conftest import Api
from tests.conftest import Cli
from workspaces import clock, rows
from workspaces.app import create_app
from workspaces.db import create_sync_engine, parse_url
from workspaces.invites.service import _BY_TOKEN, _PREVIEW
from workspaces.members.service import _MEMBERS
from workspaces.security import hash_token
from workspaces.settings import Settings
from workspaces.workspaces.service import _ACCESS_BY_TOKEN


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Api, Any]]:
    with TestClient(create_app(settings)) as client:
        yield Api(client, Cli(settings.database_url, {})), client


def _statements(conn: Any) -> list[str]:
    """What goes through SQLAlchemy's cursor on this connection from now on."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(conn.sync_connection, "before_cursor_execute", note)
    return seen


def _plain(values: Any) -> list[tuple[Any, ...]]:
    """Rows as tuples of plain values with their types: asyncpg's UUID compared as uuid.UUID."""
    return [tuple((str(v) if isinstance(v, uuid.UUID) else v, uuid.UUID
                   if isinstance(v, uuid.UUID) else type(v)) for v in row) for row in values]


def test_hot_reads_go_to_the_driver_on_postgresql_and_return_what_sqlalchemy_returns(
        served: tuple[Api, Any]) -> None:
    api, client = served
    ann = api.signup("ann@example.com", "Ann")
    slug = api.workspace(ann)
    token = api.invite_token(ann, slug, "bob@example.com")
    workspace = client.get(f"/api/workspaces/{slug}", headers=ann).json()
    engine = client.app.state.engine
    postgresql = engine.dialect.name == "postgresql"
    reads: list[tuple[Any, dict[str, Any]]] = [
        (_MEMBERS, {"workspace_id": uuid.UUID(workspace["id"])}),
        (_BY_TOKEN, {"token_hash": hash_token(token)}),
        (_PREVIEW, {"token_hash": hash_token(token)}),
        (_ACCESS_BY_TOKEN, {"token_hash": hash_token(ann["Authorization"].split()[1]),
                            "kind": "api", "slug": slug,
                            "now": clock.now()}),
    ]

    async def compare() -> None:
        async with client.app.state.reader.connect() as conn:
            seen = _statements(conn)
            for statement, params in reads:
                fast = await rows.fetch(conn, statement, params)
                through = (await conn.execute(statement, params)).all()
                assert fast, statement
                assert _plain(fast) == _plain(through)
                # read by attribute, as SQLAlchemy's rows are
                assert [getattr(row, key) for row in fast for key in through[0]._fields] == \
                    [getattr(row, key) for row in through for key in through[0]._fields]
            # SQLAlchemy's cursor saw only its own executions on PostgreSQL, both on SQLite
            assert len(seen) == len(reads) * (1 if postgresql else 2)
        async with engine.begin() as conn:  # a transaction: always SQLAlchemy's way
            seen = _statements(conn)
            await rows.fetch(conn, _MEMBERS, reads[0][1])
            assert len(seen) == 1

    assert client.portal is not None
    client.portal.call(compare)


class _Shout(TypeDecorator[str]):
    """A type that converts what the database returns."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> str:
        return str(value).upper()


def test_a_statement_whose_types_convert_values_goes_through_sqlalchemy(
        served: tuple[Api, Any]) -> None:
    _, client = served
    statement = select(type_coerce(literal_column("'quiet'"), _Shout).label("word"))

    async def check() -> None:
        async with client.app.state.reader.connect() as conn:
            seen = _statements(conn)
            assert [row.word for row in await rows.fetch(conn, statement, {})] == ["QUIET"]
            assert len(seen) == 1  # the type's processor runs: SQLAlchemy's way

    assert client.portal is not None
    client.portal.call(check)


@pytest.mark.parametrize("app_db", ["postgresql"], indirect=True)  # the driver path's
def test_a_dead_connection_on_the_driver_path_answers_503_and_the_next_read_works(
        held_email_loop: None, held_webhook_loop: None, held_housekeeping: None,
        served: tuple[Api, Any], settings: Settings) -> None:
    api, client = served
    ann = api.signup("ann@example.com")
    slug = api.workspace(ann)
    assert client.get(f"/api/workspaces/{slug}/members", headers=ann).status_code == 200

    outside = create_sync_engine(parse_url(settings.database_url))
    try:
        with outside.connect() as conn:  # every connection of the server's pool ends, and is
            conn.execute(text(  # gone before the read (the wait: PostgreSQL 14 and on)
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        outside.dispose()
    # The read finds its connection dead: the driver raises, SQLAlchemy raises it again as
    # for any statement (the pool invalidated) and the request answers 503; the next connects.
    # (The delivery loops are held: a poll of theirs would meet a dead connection first.)
    api.error(client.get(f"/api/workspaces/{slug}/members", headers=ann), 503,
              "database_unavailable")
    assert client.get(f"/api/workspaces/{slug}/members", headers=ann).status_code == 200


def test_the_capture_sees_the_reads_sent_straight_through_the_driver(api: Api) -> None:
    """On PostgreSQL the hot reads skip SQLAlchemy (`workspaces.rows`); the capture must still
    see them, or pgbench and the floor would send less than the application."""
    from bench.statements import capture

    ann = api.signup("ann@example.com")
    slug = api.workspace(ann)

    def members(client: TestClient, _n: int) -> Any:
        answer = client.get(f"/api/workspaces/{slug}/members", headers=ann)
        # The email loop polls every 0.2 s here, each poll a statement of its own while the
        # capture listens: it must not count as the request's (CI once saw one).
        time.sleep(0.5)
        return answer

    runs = capture(api.client, members)
    for sent in runs:
        assert len(sent) == 2, sent  # the caller's token and membership, then the members
        assert "auth_tokens.token_hash" in sent[0][0] and sent[0][1]
        assert "FROM workspace_members" in sent[1][0] and sent[1][1]
