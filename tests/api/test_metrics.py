"""GET /metrics on a real app and database: every metric there, the schema gauges following a
dropped table and its repair, the outbox through an SMTP outage, requests by route template,
who may read it, and `db status --format prometheus` agreeing with it."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Api
from tests.conftest import ALL, Cli, Sink, free_port
from workspaces import __version__
from workspaces.app import create_app
from workspaces.settings import Settings
from workspaces.web import metrics as web_metrics

LOCAL = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.9", 50000)
TOKEN = "a-metrics-token-long-enough"

EVERY_METRIC = {
    "workspaces_http_requests", "workspaces_http_request_duration_seconds",
    "workspaces_rate_limited", "workspaces_email_delivery_attempts",
    "workspaces_email_delivery_failures", "workspaces_db_connections_in_use",
    "workspaces_db_pool_size", "workspaces_db_waiting_requests", "workspaces_database_up",
    "workspaces_schema_ok", "workspaces_schema_pending_migrations",
    "workspaces_schema_failed_migrations", "workspaces_schema_drift_objects",
    "workspaces_schema_diverged_migrations", "workspaces_ready", "workspaces_outbox_emails",
    "workspaces_outbox_oldest_pending_age_seconds", "workspaces_build_info",
}
SCHEMA_GAUGES = {"workspaces_database_up", "workspaces_schema_ok",
                 "workspaces_schema_pending_migrations", "workspaces_schema_failed_migrations",
                 "workspaces_schema_drift_objects", "workspaces_schema_diverged_migrations"}


@dataclass
class Scrape:
    """One parsed exposition: its families, and values summed over the samples that carry
    the given labels."""

    text: str

    def __post_init__(self) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}

    def value(self, sample: str, **labels: str) -> float:
        return sum(s.value for f in self.families.values() for s in f.samples
                   if s.name == sample and labels.items() <= s.labels.items())

    def samples(self, names: set[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in self.families.values() for s in f.samples if s.name in names}


def scrape(client: TestClient, **headers: str) -> Scrape:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scrape reads the database again (no 10 s cache)."""
    monkeypatch.setattr(web_metrics, "CACHE_SECONDS", 0.0)


@pytest.fixture
def local_api(settings: Settings, fresh: None) -> Iterator[Api]:
    """The app as seen from this machine (the scraper's usual place)."""
    with TestClient(create_app(settings), client=LOCAL) as client:
        yield Api(client, Cli(settings.database_url, {}))


def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_metrics_has_every_metric_and_stays_out_of_the_api_schema(local_api: Api) -> None:
    local_api.client.get("/healthz")
    got = scrape(local_api.client)
    assert set(got.families) >= EVERY_METRIC, EVERY_METRIC - set(got.families)
    assert got.value("workspaces_build_info", version=__version__, head_migration=ALL[-1]) == 1
    for gauge, expected in [("workspaces_database_up", 1), ("workspaces_schema_ok", 1),
                            ("workspaces_ready", 1), ("workspaces_schema_pending_migrations", 0),
                            ("workspaces_schema_drift_objects", 0),
                            ("workspaces_db_waiting_requests", 0)]:
        assert got.value(gauge) == expected, gauge
    assert got.value("workspaces_db_pool_size") >= 8  # this app's pool (others may be alive)
    assert got.value("workspaces_outbox_emails", status="pending") >= 0
    assert "/metrics" not in local_api.client.get("/openapi.json").json()["paths"]


def test_schema_gauges_follow_a_dropped_table_and_its_repair(local_api: Api) -> None:
    local_api.db.sql("DROP TABLE workspace_invites" + (" CASCADE" if local_api.db.is_pg else ""))
    broken = scrape(local_api.client)
    assert broken.value("workspaces_database_up") == 1
    assert broken.value("workspaces_schema_ok") == 0
    assert broken.value("workspaces_ready") == 0
    assert broken.value("workspaces_schema_drift_objects") >= 1
    assert broken.value("workspaces_schema_pending_migrations") == 0
    assert _cli_gauges(local_api.db, exit_code=5) == broken.samples(SCHEMA_GAUGES)

    assert local_api.db("db", "repair").exit_code == 0
    repaired = scrape(local_api.client)
    assert repaired.value("workspaces_schema_ok") == 1
    assert repaired.value("workspaces_ready") == 1
    assert repaired.value("workspaces_schema_drift_objects") == 0
    assert _cli_gauges(local_api.db, exit_code=0) == repaired.samples(SCHEMA_GAUGES)

    assert local_api.db("db", "rollback", "--yes").exit_code == 0  # the newest one, pending
    behind = scrape(local_api.client)
    assert behind.value("workspaces_schema_pending_migrations") == 1
    assert behind.value("workspaces_schema_ok") == 0
    assert _cli_gauges(local_api.db, exit_code=2) == behind.samples(SCHEMA_GAUGES)
    assert local_api.db("db", "deploy").exit_code == 0
    assert scrape(local_api.client).value("workspaces_schema_pending_migrations") == 0


def _cli_gauges(db: Cli, *, exit_code: int) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                     float]:
    """`db status --format prometheus`, parsed: the same gauges as /metrics."""
    run = db("db", "status", "--format", "prometheus")
    assert run.exit_code == exit_code, run.output
    parsed = Scrape(run.stdout)
    assert set(parsed.families) == SCHEMA_GAUGES
    return parsed.samples(SCHEMA_GAUGES)


def test_a_cached_reading_serves_scrapes_for_a_few_seconds(settings: Settings) -> None:
    with TestClient(create_app(settings), client=LOCAL) as client:
        assert scrape(client).value("workspaces_schema_ok") == 1
        Cli(settings.database_url, {}).sql(
            "DROP TABLE workspace_invites" + (" CASCADE" if "postgres" in settings.database_url
                                               else ""))
        assert scrape(client).value("workspaces_schema_ok") == 1  # within CACHE_SECONDS
        client.app.state.metrics_probe._last = None  # type: ignore[attr-defined]
        assert scrape(client).value("workspaces_schema_ok") == 0


def test_a_database_that_does_not_answer_in_time_is_reported_down_not_a_500(
        local_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from workspaces.metrics import database

    release, finished = threading.Event(), threading.Event()

    async def stuck(status: object) -> database.Reading:
        # The database answers only when the test lets it.
        await asyncio.to_thread(release.wait, timeout=60)
        finished.set()
        return database.Reading(None, [])

    monkeypatch.setattr(web_metrics, "WAIT_SECONDS", 0.1)
    monkeypatch.setattr(database, "read", stuck)
    try:
        got = scrape(local_api.client)
        # The scrape answered while the read was still stuck: it did not wait for it.
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(timeout=60)  # the read ends before the app does
    assert got.value("workspaces_database_up") == 0
    assert got.value("workspaces_schema_ok") == 0 and got.value("workspaces_ready") == 0
    assert "workspaces_schema_pending_migrations" not in got.families  # unknown: not said
    assert "workspaces_http_requests" in got.families


@pytest.fixture
def down_api(settings: Settings, fresh: None) -> Iterator[tuple[Api, Sink]]:
    """An app whose SMTP server is not running yet (start it with `controller.start()`)."""
    port = free_port()
    outage = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}",
                                         "email_max_attempts": 50})
    with TestClient(create_app(outage), client=LOCAL) as client:
        yield Api(client, Cli(settings.database_url, {})), Sink(port)


def test_outbox_gauges_move_through_an_smtp_outage_and_recover(
        down_api: tuple[Api, Sink]) -> None:
    api, sink = down_api
    before = scrape(api.client)
    owner = api.signup("ann@example.com")  # its confirmation email waits too
    slug = api.workspace(owner)
    for n in range(3):
        api.invite(owner, slug, f"p{n}@example.com")
    retry = ("workspaces_email_delivery_failures_total", {"outcome": "retry"})
    _until(lambda: scrape(api.client).value(retry[0], **retry[1])
           >= before.value(retry[0], **retry[1]) + 4)  # attempts failed, to be retried
    during = scrape(api.client)
    assert during.value("workspaces_outbox_emails", status="pending") == 4
    assert during.value("workspaces_outbox_oldest_pending_age_seconds") > 0
    assert (during.value("workspaces_email_delivery_attempts_total")
            >= before.value("workspaces_email_delivery_attempts_total") + 4)

    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        _until(lambda: scrape(api.client).value("workspaces_outbox_emails",
                                                status="pending") == 0, timeout=30)
    finally:
        controller.stop()
    after = scrape(api.client)
    assert after.value("workspaces_outbox_emails", status="sent") == 4
    assert after.value("workspaces_outbox_oldest_pending_age_seconds") == 0
    assert after.value("workspaces_email_delivery_failures_total", outcome="failed") == \
        before.value("workspaces_email_delivery_failures_total", outcome="failed")


def test_requests_are_counted_by_route_template_never_by_path(local_api: Api) -> None:
    api = local_api
    owner = api.signup("ann@example.com")
    slug = api.workspace(owner)
    token = api.invite_token(owner, slug, "bob@example.com")
    route = "/api/invites/{token}"
    before = scrape(api.client).value("workspaces_http_requests_total", route=route)
    assert api.client.get(f"/api/invites/{token}").status_code == 200
    assert api.client.get("/api/invites/not-a-real-token").status_code == 404
    assert api.client.get(f"/invites/{token}").status_code == 200  # the page
    api.client.get("/no/such/page")
    api.client.request("BREW", "/healthz")
    got = scrape(api.client)
    assert got.value("workspaces_http_requests_total", route=route) == before + 2
    assert got.value("workspaces_http_requests_total", route=route, status="404") >= 1
    assert got.value("workspaces_http_requests_total", route="/invites/{token}") >= 1
    assert got.value("workspaces_http_requests_total", route="<unmatched>", status="404") >= 1
    assert got.value("workspaces_http_requests_total", method="other") >= 1  # not "BREW"
    assert got.value("workspaces_http_request_duration_seconds_count", route=route) >= 2
    assert token not in got.text and "not-a-real-token" not in got.text
    assert slug not in got.text


def test_rate_limit_refusals_are_counted_by_the_limit_s_setting(settings: Settings,
                                                                 fresh: None) -> None:
    strict = settings.model_copy(update={"signup_limit_per_client_per_hour": 1})
    with TestClient(create_app(strict), client=LOCAL) as client:
        api = Api(client, Cli(settings.database_url, {}))
        name = {"limit": "signup_limit_per_client_per_hour"}
        before = scrape(client).value("workspaces_rate_limited_total", **name)
        api.signup("ann@example.com")
        refused = client.post("/api/auth/signup", json={
            "email": "bob@example.com", "password": "correct horse battery", "name": "Bob"})
        api.error(refused, 429, "rate_limited")
        assert scrape(client).value("workspaces_rate_limited_total", **name) == before + 1


def test_pool_gauges_count_connections_held_and_requests_waiting(settings: Settings) -> None:
    tiny = settings.model_copy(update={"database_pool_size": 2, "database_pool_timeout": 10,
                                       "email_poll_seconds": 600})  # no polls meanwhile
    with TestClient(create_app(tiny), client=LOCAL) as client:
        engine: Any = client.app.state.engine  # type: ignore[attr-defined]
        slots: Any = client.app.state.db_slots  # type: ignore[attr-defined]
        assert client.portal is not None

        def in_use() -> float:
            return scrape(client).value("workspaces_db_connections_in_use")

        _until(lambda: in_use() == 0)  # the email loop's first pass is over

        async def take() -> Any:
            return await engine.connect()

        held = client.portal.call(take)
        try:  # waited for: the hourly sweep may hold one a moment at start, on a busy machine
            _until(lambda: in_use() == 1)
        finally:
            client.portal.call(held.close)
        _until(lambda: in_use() == 0)

        client.portal.call(slots.acquire)  # the one request slot of a pool of 2, taken
        answered: list[int] = []
        thread = threading.Thread(target=lambda: answered.append(client.get(
            "/api/workspaces/x/members", headers={"Authorization": "Bearer x"}).status_code))
        thread.start()
        try:
            _until(lambda: scrape(client).value("workspaces_db_waiting_requests") == 1)
        finally:
            client.portal.call(slots.release)
            thread.join(10)
        assert answered == [401]  # it got the slot once freed
        assert scrape(client).value("workspaces_db_waiting_requests") == 0


@pytest.fixture
def app_from(sqlite_template: str, tmp_path: Path, fresh: None) -> Callable[..., TestClient]:
    """Apps that differ in their settings and in where their client is (who may read /metrics
    depends on no database: SQLite only)."""
    target = tmp_path / "app.db"
    shutil.copy(sqlite_template, target)
    base = Settings(database_url=f"sqlite:///{target}", email_backend="console",
                    secret_key="test-secret-key-of-enough-length",
                    _env_file=None)  # type: ignore[call-arg]

    def make(client: tuple[str, int] = REMOTE, **changes: object) -> TestClient:
        return TestClient(create_app(base.model_copy(update=changes)), client=client)

    return make


@pytest.mark.parametrize(("peer", "headers", "changes", "admitted"), [
    (LOCAL, {}, {}, True),
    (("::1", 5), {}, {}, True),
    (("::ffff:127.0.0.1", 5), {}, {}, True),  # IPv4 through a dual-stack socket
    (REMOTE, {}, {}, False),
    (("10.1.2.3", 5), {}, {"metrics_allowed_networks": "10.0.0.0/8"}, True),
    # A trusted proxy on this machine names the client: judged by the client.
    (LOCAL, {"X-Forwarded-For": "203.0.113.9"}, {"trusted_proxies": "127.0.0.1"}, False),
    (LOCAL, {"X-Forwarded-For": "127.0.0.1"}, {"trusted_proxies": "127.0.0.1"}, True),
    # ...and naming something that is no address: unknown, never the proxy's loopback.
    (LOCAL, {"X-Forwarded-For": "unknown"}, {"trusted_proxies": "127.0.0.1"}, False),
    # A proxy on this machine that is not trusted: whoever it forwards is unknown, refused.
    (LOCAL, {"X-Forwarded-For": "127.0.0.1"}, {}, False),
    (LOCAL, {"Forwarded": "for=203.0.113.9"}, {}, False),
    (LOCAL, {"X-Real-IP": "203.0.113.9"}, {}, False),
    # Trusted, but naming the client in a header it does not read: unknown, refused.
    (LOCAL, {"X-Real-IP": "203.0.113.9"}, {"trusted_proxies": "127.0.0.1"}, False),
    (REMOTE, {"Authorization": f"Bearer {TOKEN}"}, {"metrics_token": TOKEN}, True),
    (REMOTE, {"Authorization": "Bearer wrong-token-of-some-length"}, {"metrics_token": TOKEN},
     False),
    (REMOTE, {}, {"metrics_token": TOKEN}, False),
    (REMOTE, {"Authorization": f"Bearer {TOKEN}"}, {}, False),  # no token set: none works
    (LOCAL, {"X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {TOKEN}"},
     {"metrics_token": TOKEN}, True),
])
def test_who_may_read_metrics(app_from: Callable[..., TestClient], peer: tuple[str, int],
                              headers: dict[str, str], changes: dict[str, str],
                              admitted: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with app_from(peer, **changes) as client:
        response = client.get("/metrics", headers=headers)
    if admitted:
        assert response.status_code == 200, response.text
        assert "workspaces_ready" in response.text
    else:
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["error"]["code"] == "metrics_forbidden"
        assert "METRICS_ALLOWED_NETWORKS" in body["error"]["message"] or \
            "TRUSTED_PROXIES" in body["error"]["message"] or \
            "METRICS_TOKEN" in body["error"]["message"]
    assert TOKEN not in response.text and TOKEN not in caplog.text
