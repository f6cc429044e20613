"""Run the long drills and print the table for docs/reliability.md.

    python -m tests.drills [--database-url postgresql://...] [--scale 1.0]

Without --database-url: TEST_DATABASE_URL, else an embedded PostgreSQL. Each drill gets a fresh
database on that server; the restart drill always uses a PostgreSQL of its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.engine import URL

from tests.conftest import Cli, pg_database
from tests.drills import scenarios as drills
from workspaces.db import parse_url


@contextmanager
def server(url: str | None) -> Iterator[URL]:
    raw = url or os.environ.get("TEST_DATABASE_URL")
    if raw:
        yield parse_url(raw)
        return
    with drills.own_postgres() as (admin, _, _):
        yield parse_url(admin)


def main() -> None:
    parser = argparse.ArgumentParser(description="Reliability drills")
    parser.add_argument("--database-url")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    options = parser.parse_args()
    n = max(2, int(100 * options.scale))
    outcomes: list[drills.Outcome] = []

    with server(options.database_url) as admin:
        def fresh(run: Callable[[str], drills.Outcome]) -> None:
            with pg_database(admin) as url:
                assert Cli(url, {})("db", "deploy").exit_code == 0
                started = time.monotonic()
                outcome = run(url)
                outcome.scenario += f" ({time.monotonic() - started:.1f} s)"
                outcomes.append(outcome)
                print(outcome.row(), flush=True)

        def races(url: str) -> drills.Outcome:
            with drills.running(url) as (base, _):
                return drills.run(drills.race_accepts(base, n))

        def invites(url: str) -> drills.Outcome:
            with drills.running(url) as (base, _):
                return drills.run(drills.race_invites(base, n))

        def owners(url: str) -> drills.Outcome:
            with drills.running(url) as (base, _):
                return drills.run(drills.race_owners(base, 6))

        def deletions(url: str) -> drills.Outcome:
            with drills.running(url) as (base, _):
                return drills.run(drills.race_account_deletions(base, 8))

        def deploys(url: str) -> drills.Outcome:
            with drills.running(url) as (base, _):
                return drills.run(drills.deploys_under_traffic(base, url, 8, 5.0))

        print("| scenario | requests | answers | lost writes | result |")
        print("|---|---|---|---|---|")
        fresh(races)
        fresh(invites)
        fresh(owners)
        fresh(deletions)
        fresh(deploys)
        fresh(lambda url: drills.run(drills.kill_mid_accepts(url, n)))
        fresh(lambda url: drills.run(drills.two_instances(url)))
        fresh(lambda url: drills.run(drills.smtp_outage(url, n, outage=3.0)))
        fresh(lambda url: drills.run(drills.webhook_outage(url, 10 * n)))
    with drills.own_postgres() as (admin_url, stop, start):
        assert Cli(admin_url, {})("db", "deploy").exit_code == 0
        outcome = drills.run(drills.database_restart(admin_url, stop, start, outage=3.0,
                                                     recover_within=10.0))
        outcomes.append(outcome)
        print(outcome.row(), flush=True)
    passed = sum(o.ok for o in outcomes)
    print(f"\n{passed} passed, {len(outcomes) - passed} failed "
          f"({platform.node()}, {os.cpu_count()} cores)")
    raise SystemExit(0 if passed == len(outcomes) else 1)


if __name__ == "__main__":
    main()
