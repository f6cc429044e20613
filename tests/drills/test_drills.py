"""The reliability drills, CI-sized, against real servers on PostgreSQL."""

from __future__ import annotations

from tests.conftest import Cli
from tests.drills import scenarios as drills


def _deployed(pg_url: str) -> str:
    assert Cli(pg_url, {})("db", "deploy").exit_code == 0
    return pg_url


def test_races_through_a_server_with_two_workers(pg_url: str) -> None:
    with drills.running(_deployed(pg_url)) as (base, _):
        for outcome in (drills.run(drills.race_accepts(base, 50)),
                        drills.run(drills.race_invites(base, 50)),
                        drills.run(drills.race_owners(base, 4))):
            assert outcome.ok, outcome.row()
            assert outcome.sent >= 12
            assert not any(key.startswith("5") for key in outcome.answers), outcome.row()
        deletions = drills.run(drills.race_account_deletions(base, 4))
        assert deletions.ok, deletions.row()
        assert deletions.answers == {"204": 4, "409 last_owner": 4}, deletions.row()


def test_eight_deploys_while_the_server_takes_traffic(pg_url: str) -> None:
    database = _deployed(pg_url)
    with drills.running(database) as (base, _):
        outcome = drills.run(drills.deploys_under_traffic(base, database, 8, 1.0))
    assert outcome.ok, outcome.row()


def test_sigkill_in_the_middle_of_accepts_leaves_no_half_accepted_invite(pg_url: str) -> None:
    outcome = drills.run(drills.kill_mid_accepts(_deployed(pg_url), 30))
    assert outcome.ok, outcome.row()
    assert outcome.sent == 30


def test_two_instances_share_sessions_and_the_rate_limit(pg_url: str) -> None:
    outcome = drills.run(drills.two_instances(_deployed(pg_url)))
    assert outcome.ok, outcome.row()


def test_a_database_restart_gives_503s_then_recovers_with_nothing_lost() -> None:
    with drills.own_postgres() as (admin_url, stop, start):
        database = admin_url
        assert Cli(database, {})("db", "deploy").exit_code == 0
        outcome = drills.run(drills.database_restart(database, stop, start, outage=2.0))
    assert outcome.ok, outcome.row()
    assert any(key.startswith("503 database_unavailable") for key in outcome.answers), \
        outcome.row()


def test_an_smtp_outage_delays_invite_emails_and_loses_or_repeats_none(pg_url: str) -> None:
    outcome = drills.run(drills.smtp_outage(_deployed(pg_url), 20, outage=3.0))
    assert outcome.ok, outcome.row()
    assert outcome.answers == {"201": 21}, outcome.row()


def test_a_webhook_receiver_outage_loses_no_event(pg_url: str) -> None:
    outcome = drills.run(drills.webhook_outage(_deployed(pg_url), 200))
    assert outcome.ok, outcome.row()
    assert outcome.answers == {"201": 200}, outcome.row()
