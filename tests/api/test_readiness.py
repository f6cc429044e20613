"""/readyz answers "can this process serve its requests" (docs/deployment.md, "Readiness"), on
real databases with real objects dropped: 503 only for a table or column the code uses that is
missing; 200 "degraded" with the problems for drift it runs on, while /metrics carries it. The
503s (the body, the guard's log line) name the fix `db status` prints first, and the page a
person sees says "being upgraded" only while a deploy holds the lock."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.api.conftest import Api
from tests.api.test_metrics import LOCAL, scrape
from tests.conftest import ALL, INIT, INVITES, Cli
from workspaces.app import create_app
from workspaces.db import create_sync_engine, parse_url
from workspaces.schema.ledger import LEDGER_TABLE
from workspaces.schema.lock import LOCK_KEYS
from workspaces.settings import Settings
from workspaces.web import guard as web_guard
from workspaces.web import metrics as web_metrics
from workspaces.web.health import StatusRead

if TYPE_CHECKING:
    from workspaces.schema.serving import ServingStatus

# The migration these tests take back: it creates table account_events and column
# users.email_verified_at; "not run" rolls it back with every migration after it.
NEWEST = "20261130232952_verified_addresses_and_account_events"
assert NEWEST in ALL


@pytest.fixture
def local_api(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The app as the probe and the scraper see it; every scrape and every 503 reads the
    database again (no cache between the steps of a test)."""
    monkeypatch.setattr(web_metrics, "CACHE_SECONDS", 0.0)
    monkeypatch.setattr(web_guard, "DIAGNOSIS_SECONDS", 0.0)
    with TestClient(create_app(settings), client=LOCAL) as client:
        yield Api(client, Cli(settings.database_url, {}))


def first_next(db: Cli) -> str | None:
    """The first `next:` line `db status` prints, without the --database-url it adds; None
    when it prints only advice (`hint:`), as for a migration this code lacks."""
    lines = [line.strip() for line in db("db", "status").output.splitlines()]
    step = next((line for line in lines if line.startswith("next: ")), None)
    return None if step is None else re.sub(r" --database-url \S+", "",
                                             step.removeprefix("next: "))


def _drop_index(db: Cli) -> None:
    db.sql("DROP INDEX ix_email_outbox_invite_id")


def _forget_ledger_rows(db: Cli) -> None:
    db.sql(f"DELETE FROM {LEDGER_TABLE} WHERE migration_id = '{NEWEST}'")


def _extra_index(db: Cli) -> None:
    db.sql("CREATE INDEX ix_by_hand ON workspaces (name)")


def _edit_checksum(db: Cli) -> None:
    db.sql(f"UPDATE {LEDGER_TABLE} SET checksum = 'edited' WHERE migration_id = '{INIT}'")


def _record_unknown_migration(db: Cli) -> None:
    """What an older release meets after a newer one deployed: a migration it lacks."""
    columns = ("action, outcome, checksum, started_at, finished_at, applied_by, hostname, "
               "tool_version")
    db.sql(f"INSERT INTO {LEDGER_TABLE} (migration_id, {columns}) SELECT "
           f"'29990101000000_from_a_newer_release', {columns} FROM {LEDGER_TABLE} "
           f"WHERE migration_id = '{NEWEST}'")


def _retype_column(db: Cli) -> None:
    if not db.is_pg:
        pytest.skip("SQLite cannot change a column's type in place")
    db.sql("ALTER TABLE workspaces ALTER COLUMN name TYPE text")


def _fail_applied(db: Cli) -> None:
    db.sql(f"UPDATE {LEDGER_TABLE} SET outcome = 'failed', error = 'by hand' "
           f"WHERE migration_id = '{NEWEST}'")


@pytest.mark.parametrize(("break_it", "problem"), [
    (_drop_index, "drift_missing"),
    (_forget_ledger_rows, "objects_present"),
    (_extra_index, None),
    (_edit_checksum, "checksum_mismatch"),
    (_record_unknown_migration, "diverged"),
    (_retype_column, "drift_differs"),
    (_fail_applied, "failed"),
], ids=["dropped-index", "ledger-row-missing", "extra-index", "checksum-mismatch",
        "unknown-migration", "column-retyped", "failed-with-objects-present"])
def test_drift_the_code_runs_on_keeps_readyz_200_with_the_problem_in_the_body(
        local_api: Api, break_it: Callable[[Cli], None], problem: str | None) -> None:
    owner = local_api.signup("ann@example.com")
    slug = local_api.workspace(owner)
    break_it(local_api.db)

    ready = local_api.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    if problem is None:  # extra objects are no problem at all
        assert body["status"] == "ready"
    else:
        assert body["status"] == "degraded"
        assert problem in [p["code"] for p in body["problems"]]
        assert all(p["message"] for p in body["problems"])
        assert body["next_step"] == first_next(local_api.db)
    local_api.invite(owner, slug, "bob@example.com")  # and requests work
    gauges = scrape(local_api.client)
    assert gauges.value("workspaces_ready") == 1
    assert gauges.value("workspaces_schema_ok") == (1 if problem is None else 0)


def test_a_dropped_index_is_degraded_and_named_with_its_fix(local_api: Api) -> None:
    _drop_index(local_api.db)
    body = local_api.client.get("/readyz").json()
    (problem,) = body["problems"]
    assert "index ix_email_outbox_invite_id on email_outbox is missing" in problem["message"]
    assert problem["fix"] == body["next_step"] == "workspaces db repair"
    assert scrape(local_api.client).value("workspaces_schema_drift_objects") == 1


def _drop_table(db: Cli) -> None:
    db.sql("DROP TABLE workspace_invites" + (" CASCADE" if db.is_pg else ""))


def _drop_column(db: Cli) -> None:
    db.sql("ALTER TABLE users DROP COLUMN email_verified_at")


def _roll_back_newest(db: Cli) -> None:
    """What a new pod of a rolling deploy meets: its code's newest migrations have not run."""
    assert db("db", "rollback", NEWEST, "--yes").exit_code == 0


def _fail_rolled_back(db: Cli) -> None:
    _roll_back_newest(db)
    db.sql(f"UPDATE {LEDGER_TABLE} SET outcome = 'failed', error = 'by hand' "
           f"WHERE migration_id = '{NEWEST}'")


@pytest.mark.parametrize(("break_it", "missing", "fix"), [
    (_drop_table, "table workspace_invites", "workspaces db repair"),
    (_drop_column, "column users.email_verified_at", "workspaces db repair"),
    (_roll_back_newest, "table account_events", "workspaces db deploy"),
    (_fail_rolled_back, "table account_events", f"workspaces db resolve --rolled-back {NEWEST}"),
], ids=["dropped-table", "dropped-column", "migration-not-run", "failed-objects-absent"])
def test_a_missing_table_or_column_the_code_uses_makes_readyz_503(
        local_api: Api, break_it: Callable[[Cli], None], missing: str, fix: str) -> None:
    break_it(local_api.db)
    ready = local_api.client.get("/readyz")
    assert ready.status_code == 503, ready.text
    error = ready.json()["error"]
    assert error["code"] == "schema_out_of_date"
    assert missing in error["missing"] and missing in error["message"]
    assert error["next_step"].startswith(fix) and error["next_step"] == first_next(local_api.db)
    assert f"`{error['next_step']}`" in error["message"]
    assert error["problems"]
    gauges = scrape(local_api.client)
    assert (gauges.value("workspaces_ready"), gauges.value("workspaces_schema_ok")) == (0, 0)


def _drop_events(db: Cli) -> None:
    db.sql("DROP TABLE account_events")


def _partly_applied(db: Cli) -> None:
    """The newest migration rolled back, then half of it made again by hand."""
    _roll_back_newest(db)
    kind = "TIMESTAMP WITH TIME ZONE" if db.is_pg else "DATETIME"
    db.sql(f"ALTER TABLE users ADD COLUMN email_verified_at {kind}")


@pytest.mark.parametrize(("break_it", "missing", "fix"), [
    (_drop_events, "account_events is missing", "workspaces db repair"),
    (_roll_back_newest, "email_verified_at is missing", "workspaces db deploy"),
    # The request's first query reads its session, whose newer columns left with the rollback.
    (_partly_applied, "auth_tokens.last_used_at is missing", f"workspaces db complete {NEWEST}"),
    # A failed attempt recorded in the ledger, its objects absent: resolve, not deploy.
    (_fail_rolled_back, "email_verified_at is missing",
     f"workspaces db resolve --rolled-back {NEWEST}"),
], ids=["dropped", "pending", "partly-applied", "failed-objects-absent"])
def test_the_guard_s_503_and_log_line_name_the_fix_db_status_prints_first(
        local_api: Api, caplog: pytest.LogCaptureFixture, break_it: Callable[[Cli], None],
        missing: str, fix: str) -> None:
    caplog.set_level(logging.INFO, logger="workspaces.guard")
    owner = local_api.signup("ann@example.com")
    break_it(local_api.db)
    step = first_next(local_api.db)
    assert step is not None and step.startswith(fix)
    for _ in range(2):
        response = local_api.client.get("/api/me/events", headers=owner)
        message = local_api.error(response, 503, "schema_out_of_date")
        assert missing in message and f"`{step}`" in message
        assert "deploy` or" not in message  # one fix, not a choice of two
        assert response.json()["error"]["next_step"] == step
        assert response.json()["error"]["deploy_in_progress"] is False
    (logged,) = [r for r in caplog.records  # the delivery loops fail too, in their own logs
                 if r.levelno == logging.ERROR and r.name == "workspaces.guard"]
    assert missing in logged.getMessage()
    assert f"fix: {step}" in logged.getMessage()


def test_the_page_says_unavailable_for_a_problem_that_will_not_heal_by_itself(
        local_api: Api) -> None:
    local_api.signup("ann@example.com")
    _drop_table(local_api.db)
    page = local_api.client.get(f"/invites/{'x' * 43}")
    assert page.status_code == 503
    assert "<h1>Service unavailable</h1>" in page.text
    assert "unavailable until the people who run it fix a problem" in page.text
    assert "upgrad" not in page.text and "Try again in a few minutes" not in page.text
    for operator_word in ("workspace_invites", "workspaces db", "migration", INVITES):
        assert operator_word not in page.text
    api_answer = local_api.client.get(f"/api/invites/{'x' * 43}")
    assert api_answer.status_code == 503 and "workspace_invites" in api_answer.text


def test_the_page_says_being_upgraded_while_a_deploy_holds_the_lock(local_api: Api) -> None:
    if not local_api.db.is_pg:
        pytest.skip("SQLite has no deploy lock to see: a deploy there is never announced")
    _drop_table(local_api.db)
    engine = create_sync_engine(parse_url(local_api.db.url))
    try:
        with engine.connect() as deploy:  # holds the lock as `db deploy` does
            assert deploy.execute(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                  LOCK_KEYS).scalar()
            page = local_api.client.get(f"/invites/{'x' * 43}")
            assert page.status_code == 503
            assert "<h1>Service is being upgraded</h1>" in page.text
            assert "being upgraded. Try again in a few minutes." in page.text
            assert "workspace_invites" not in page.text and "workspaces db" not in page.text
            api_answer = local_api.client.get(f"/api/invites/{'x' * 43}").json()["error"]
            assert api_answer["deploy_in_progress"] is True
            assert api_answer["message"].startswith("A schema change is in progress")
            deploy.execute(text("SELECT pg_advisory_unlock(:a, :b)"), LOCK_KEYS)
        after = local_api.client.get(f"/invites/{'x' * 43}")
        assert "<h1>Service unavailable</h1>" in after.text  # the deploy ended, still missing
    finally:
        engine.dispose()


def test_probes_arriving_together_share_one_status_read() -> None:
    """Any number of /readyz calls cost one status read at a time (a client looping on it
    cannot pile reads on the database); one arriving after it ends reads afresh."""
    started, release = threading.Event(), threading.Event()
    reads: list[int] = []

    class Slow:
        async def report(self) -> str:
            reads.append(1)
            started.set()
            assert await asyncio.to_thread(release.wait, 60)
            return f"report {len(reads)}"

    async def scenario() -> tuple[list[object], object]:
        probe = StatusRead(cast("ServingStatus", Slow()))
        together = [asyncio.ensure_future(probe.report()) for _ in range(5)]
        await asyncio.sleep(0)  # each has asked before the read can end
        assert await asyncio.to_thread(started.wait, 60)
        release.set()
        return list(await asyncio.gather(*together)), await probe.report()

    shared, later = asyncio.run(scenario())
    assert shared == ["report 1"] * 5 and later == "report 2" and len(reads) == 2


def test_a_dropped_unique_index_an_insert_relies_on_answers_503_with_the_fix(
        local_api: Api) -> None:
    """Creating an invite is INSERT ... ON CONFLICT on the pending-invite index: without it
    the database refuses the statement. That is a 503 naming `db repair`, never a 500, while
    readiness stays up (every replica is alike: taking them out would help nobody)."""
    owner = local_api.signup("ann@example.com")
    slug = local_api.workspace(owner)
    local_api.db.sql("DROP INDEX uq_workspace_invites_pending_email")
    response = local_api.client.post(f"/api/workspaces/{slug}/invites", headers=owner,
                                     json={"email": "bob@example.com", "role": "member"})
    message = local_api.error(response, 503, "schema_out_of_date")
    assert "unique index" in message
    assert response.json()["error"]["next_step"] == first_next(local_api.db)
    assert str(response.json()["error"]["next_step"]).startswith("workspaces db repair")
    ready = local_api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
