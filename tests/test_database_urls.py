"""libpq's query parameters in a PostgreSQL URL work on every path: the CLI (psycopg), the
server's engine and the pooler probe (asyncpg)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from tests.conftest import Cli
from workspaces.db import asyncpg_target, create_app_engine, parse_url
from workspaces.schema.pooler import transaction_pooler

QUERY = "sslmode=prefer&connect_timeout=5&sslpassword=unused&target_session_attrs=any"


def test_query_parameters_go_to_asyncpg_as_libpq_reads_them() -> None:
    url, extra = asyncpg_target(parse_url(f"postgresql://u@db.example:5433/app?{QUERY}"))
    assert (url.host, url.port, url.database, dict(url.query)) == ("db.example", 5433, "app", {})
    assert extra == {"timeout": 5, "dsn": "postgresql://?sslmode=prefer&sslpassword=unused"
                                          "&target_session_attrs=any"}


def test_a_url_with_libpq_parameters_deploys_and_serves(pg_url: str) -> None:
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}{QUERY}"
    # `db deploy` runs the pooler probe over asyncpg: once a TypeError for `sslmode`.
    deploy = Cli(url, {})("db", "deploy")
    assert deploy.exit_code == 0, deploy.output
    assert transaction_pooler(parse_url(url)) is None

    async def query() -> int:
        engine = create_app_engine(parse_url(url), pool_size=1)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM users"))).scalar_one())
        finally:
            await engine.dispose()

    assert asyncio.run(query()) == 0
