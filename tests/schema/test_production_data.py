"""The runbook's recoveries on a database that holds data (rows in every table, invites in
every state, emails in every delivery state), on SQLite and PostgreSQL, following only the
commands the CLI prints, each run literally in a shell without DATABASE_URL, from a folder with
no database in it. The PostgreSQL URL carries a password (trust auth ignores it): no output may
contain it."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.conftest import ALL, INVITES, Cli
from tests.factories import production_like
from tests.schema.test_rollback_and_failures import FIXED, _add_revision
from workspaces.app import create_app
from workspaces.models import Base
from workspaces.schema.ledger import LEDGER_TABLE
from workspaces.settings import Settings

# Fails on both databases, after a first statement that must not stay behind.
FAILING = """    op.create_table("scratch_events", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO no_such_table VALUES (1)")"""
SECRET = "pw-Never-Print-4u"
BIN = Path(sys.executable).parent  # where `workspaces` was installed


def operator_url(url: str) -> str:
    """What the operator types: PostgreSQL with a password in the URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    return parsed.set(password=SECRET).render_as_string(hide_password=False)


class Shell:
    """A shell as the operator has it: no DATABASE_URL, in an empty folder; every output kept
    to check that no password appears in any of it."""

    def __init__(self, folder: Path, **extra: str) -> None:
        self.folder = folder
        self.outputs: list[str] = []
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "WORKSPACES_MIGRATIONS_DIR")}
        self.env = {**env, **extra, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}

    def __call__(self, line: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["bash", "-c", line], cwd=self.folder, env=self.env, text=True,
                              input=stdin, capture_output=True, timeout=180, check=False)
        self.outputs += [done.stdout, done.stderr]
        return done

    def leaked(self) -> bool:
        return any(SECRET in text for text in self.outputs)


def steps(output: str) -> list[str]:
    """The commands of the `next:` / `or:` lines, in order."""
    return re.findall(r"^\s*(?:next|or): (workspaces .*)$", output, re.MULTILINE)


# What a running server adds to on its own: its webhook loop's attempts at pending deliveries.
SERVED = frozenset({"webhook_attempts"})


def counts(cli: Cli, leave_out: frozenset[str] = frozenset()) -> dict[str, int]:
    """Rows per table, every table but the invites (the incidents drop that one)."""
    tables = sorted(set(Base.metadata.tables) - {"workspace_invites"} - leave_out)
    return {t: int(str(cli.sql(f"SELECT count(*) FROM {t}")[0][0])) for t in tables}


def test_the_production_like_database_fills_every_table(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    assert {t: n for t, n in counts(cli).items() if n == 0} == {}


def drop_invites_table(url: str) -> None:
    """The incident: the table dropped by hand (PostgreSQL: CASCADE takes the outbox's key;
    SQLite's shell runs without foreign keys, so the outbox rows keep their dead ids)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(parsed.database))
        conn.execute("DROP TABLE workspace_invites")
        conn.commit()
        conn.close()
    else:
        Cli(url, {}).sql("DROP TABLE workspace_invites CASCADE")


def serving(url: str) -> TestClient:
    return TestClient(create_app(Settings(
        database_url=url, secret_key="test-secret-key-of-enough-length",
        email_backend="console", email_poll_seconds=3600,
        _env_file=None,  # type: ignore[call-arg]
    )))


def test_the_seed_incident_on_data_ends_at_status_0_by_the_printed_commands(
        cli: Cli, tmp_path: Path) -> None:
    assert cli("db", "deploy").exit_code == 0
    owner, workspace = production_like(cli.url)
    before = counts(cli, SERVED)
    drop_invites_table(cli.url)
    (tmp_path / "ops").mkdir()
    shell = Shell(tmp_path / "ops")
    with serving(cli.url) as server:
        invites = f"/api/workspaces/{workspace.slug}/invites"
        down = server.get(invites, headers=owner.headers)
        assert down.status_code == 503 and down.json()["error"]["code"] == "schema_out_of_date"

        status = shell(f"workspaces db status --database-url {shlex.quote(operator_url(cli.url))}")
        assert status.returncode == 5, status.stdout + status.stderr
        assert steps(status.stdout) == [steps(status.stdout)[0]]  # one command, no alternatives
        repair = steps(status.stdout)[0]
        assert repair.startswith("workspaces db repair --database-url ")

        dry = shell(repair.replace("db repair", "db repair --dry-run", 1))
        assert dry.returncode == 5
        assert "email_outbox: 40 rows reference workspace_invites rows that no longer exist" \
            in dry.stdout

        refused = shell(repair)
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert "error[orphans_found]" in refused.stderr
        assert "email_outbox: 40 rows" in refused.stderr
        choices = steps(refused.stderr)
        assert [c.split("  #")[0].split(" --database-url")[0] for c in choices] == [
            "workspaces db repair --orphans=null", "workspaces db repair --orphans=delete",
            *(["workspaces db repair --orphans=keep"] if "postgresql" in cli.url else [])]
        assert counts(cli, SERVED) == before  # refused: nothing changed

        done = shell(choices[0])
        assert done.returncode == 0, done.stdout + done.stderr
        assert "set email_outbox.invite_id to NULL in 40 rows" in done.stdout
        assert shell(steps(status.stdout)[0].replace("db repair", "db status", 1)
                     ).returncode == 0

        up = server.get(invites, headers=owner.headers)  # the same server, not restarted
        assert up.status_code == 200, up.text

    assert counts(cli, SERVED) == before  # users, workspaces, members, emails: all still there
    assert cli.sql("SELECT count(*) FROM email_outbox WHERE invite_id IS NOT NULL") == [(0,)]
    assert not list((tmp_path / "ops").iterdir()), "a command made a database where it ran"
    assert not shell.leaked()
    history = json.loads(cli("db", "history", "--json").stdout)["events"]
    assert [(e["command"], e["outcome"], e["error_code"]) for e in history][-2:] == [
        ("repair", "error", "orphans_found"), ("repair", "ok", None)]
    assert history[-1]["arguments"] == "--orphans=null"
    assert SECRET not in json.dumps(history)


def test_a_partly_applied_migration_is_named_and_completed_by_the_printed_command(
        cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    assert cli("db", "deploy").exit_code == 0
    # No declined invites: rolling back past the migration that added the state cannot hold
    # them (test_rollback_past_declined_invites_fails_and_changes_nothing).
    production_like(cli.url, invite_states=("pending", "expired", "accepted", "revoked"))
    before = counts(cli)
    rollback = cli("db", "rollback", INVITES, "--yes")
    assert rollback.exit_code == 0, rollback.output
    assert "drops table workspace_invites (8 rows)" in rollback.stdout
    by_hand = "\n".join(line for line in cli("db", "sql", INVITES).stdout.splitlines()
                        if "CREATE INDEX" not in line and "CREATE UNIQUE INDEX" not in line)
    assert cli("db", "execute", "--stdin", stdin=by_hand).exit_code == 0

    shell = Shell(tmp_path / "ops")
    target = f"--database-url {shlex.quote(operator_url(cli.url))}"
    status = shell(f"workspaces db status {target}")
    assert status.returncode == 5, status.stdout
    assert f"[partial] Migration {INVITES} is partly applied: present: table workspace_invites;" \
        in status.stdout
    assert "index ix_workspace_invites_workspace_id" in status.stdout  # among the missing

    deploy = shell(f"workspaces db deploy {target}")
    assert deploy.returncode == 5 and "error[deploy_refused]" in deploy.stderr
    assert cli.sql(f"SELECT count(*) FROM {LEDGER_TABLE} WHERE outcome = 'failed'") == [(0,)]

    complete = steps(status.stdout)[0]
    assert complete.startswith(f"workspaces db complete {INVITES} --database-url ")
    done = shell(complete)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created index ix_workspace_invites_workspace_id" in done.stdout

    pending = shell(f"workspaces db status {target}")
    assert pending.returncode == 2  # the migrations after it, rolled back above
    redeploy = shell(steps(pending.stdout)[0])
    assert redeploy.returncode == 0, redeploy.stdout + redeploy.stderr
    assert shell(f"workspaces db status {target}").returncode == 0
    after = counts(cli)
    for table in ("users", "workspaces", "workspace_members"):  # tokens: table rolled back
        assert after[table] == before[table], table
    assert not shell.leaked()
    assert not list((tmp_path / "ops").iterdir())


def test_rollback_past_declined_invites_fails_and_changes_nothing(cli: Cli) -> None:
    """The down step of the migration that added `declined` restores the old check, which a
    declined invite breaks: the rollback stops there, everything still applied and intact."""
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    # Tables made by migrations after the failing one: rolled back (dropped) before it failed.
    later = frozenset({"account_tokens", "account_events", "events", "event_horizon",
                       "webhook_endpoints", "webhook_deliveries", "webhook_attempts",
                       "signing_keys", "oauth_clients", "oauth_client_workspaces",
                       "oauth_consents", "oauth_grants", "oauth_codes",
                       "oauth_refresh_tokens"})
    before = counts(cli, later)
    run = cli("db", "rollback", INVITES, "--yes")
    assert run.exit_code == 1
    assert "failed; it is still applied and unchanged" in run.stderr
    assert "ck_workspace_invites_status" in run.stderr
    assert counts(cli, later) == before
    status = cli("db", "status")
    assert status.exit_code == 2  # the later migrations it did roll back are pending again
    assert steps(status.stdout)[0].startswith("workspaces db deploy")
    assert cli("db", "deploy").exit_code == 0
    assert cli("db", "status").exit_code == 0
    assert counts(cli, later) == before


def test_repair_orphans_delete_asks_and_keep_adds_the_key_not_valid(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    before = counts(cli)
    drop_invites_table(cli.url)

    asked = cli("db", "repair", "--orphans=delete")  # no terminal, no --yes
    assert asked.exit_code == 1 and "error[confirmation_required]" in asked.stderr
    assert "delete email_outbox: 40 rows" in asked.stdout
    assert counts(cli) == before

    if "postgresql" not in cli.url:
        keep = cli("db", "repair", "--orphans=keep")
        assert keep.exit_code == 1 and "error[orphans_keep_unsupported]" in keep.stderr
        deleted = cli("db", "repair", "--orphans=delete", "--yes")
        assert deleted.exit_code == 0, deleted.output
        assert counts(cli) == {**before, "email_outbox": before["email_outbox"] - 40}
        return
    kept = cli("db", "repair", "--orphans=keep", "--json")
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.stdout[kept.stdout.index("{"):])["not_valid"] == [
        "fk_email_outbox_invite_id_workspace_invites on email_outbox"]
    assert counts(cli) == before
    assert cli("db", "status").exit_code == 0
    verify = cli("db", "verify")
    assert "constraint fk_email_outbox_invite_id_workspace_invites on email_outbox is NOT " \
        "VALID" in verify.stdout


def test_baseline_adopts_a_data_bearing_database_without_a_ledger(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    before = counts(cli)
    cli.sql(f"DROP TABLE {LEDGER_TABLE}")
    cli.sql("DROP TABLE workspaces_schema_history")
    status = cli("db", "status")
    assert status.exit_code == 2 and "[no_ledger]" in status.stdout
    assert steps(status.stdout)[0].startswith("workspaces db baseline")
    assert cli("db", "baseline").exit_code == 0
    assert cli("db", "status").exit_code == 0
    assert counts(cli) == before


def test_no_output_carries_the_password(pg_url: str, tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    url = shlex.quote(operator_url(pg_url))
    bare = shlex.quote(make_url(pg_url)._replace(password=None).render_as_string(
        hide_password=False))
    status = shell(f"workspaces db status --database-url {url}")
    assert status.returncode == 2
    assert steps(status.stdout)[0] == f"workspaces db deploy --database-url {bare}"
    assert "export PGPASSWORD" in status.stdout
    for line in (f"workspaces db status --json --database-url {url}",
                 f"workspaces db deploy --database-url {url}",
                 f"workspaces db deploy --json --database-url {url}",
                 f"workspaces db resolve --applied nope --database-url {url}",
                 f"workspaces db resolve --applied nope --json --database-url {url}",
                 f"workspaces db repair --dry-run --json --database-url {url}",
                 f"workspaces db verify --json --database-url {url}",
                 f"workspaces db history --json --database-url {url}",
                 f"workspaces db sql {INVITES} --json --database-url {url}",
                 f"workspaces db rollback --json --database-url {url}"):
        shell(line)
    assert not shell.leaked()
    error = json.loads(shell.outputs[-2 - 2 * 5])  # resolve --applied nope --json: stdout
    assert error["error"]["code"] == "unknown_migration"
    assert error["error"]["next"] == [f"workspaces db status --database-url {bare}  # lists "
                                      "the ids"]


@pytest.mark.parametrize("flag", ["--json", "--yes", "--dry-run", "--help"])
def test_help_shows_flags_without_a_value(flag: str) -> None:
    out = subprocess.run([str(BIN / "workspaces"), "db", "repair", "--help"], text=True,
                         capture_output=True, check=True, env={**os.environ, "COLUMNS": "200"})
    line = next(x for x in out.stdout.splitlines() if f" {flag} " in x)
    assert "<bool>" not in line and "<" not in line.split(flag, 1)[1].split("  ", 1)[0]


def test_a_failed_migration_and_a_changed_landed_file_on_data(
        custom_cli: Cli, versions: Path, tmp_path: Path) -> None:
    cli = custom_cli
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    before = counts(cli)
    (tmp_path / "ops").mkdir()
    shell = Shell(tmp_path / "ops", WORKSPACES_MIGRATIONS_DIR=str(versions))
    target = f"--database-url {shlex.quote(operator_url(cli.url))}"

    broken = _add_revision(versions, FAILING)
    failed = shell(f"workspaces db deploy {target}")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    resolve = steps(failed.stderr)
    assert len(resolve) == 1 and resolve[0].startswith(
        f"workspaces db resolve --rolled-back {broken} --database-url ")
    _add_revision(versions, FIXED)  # the cause, fixed
    assert shell(resolve[0]).returncode == 0
    pending = shell(f"workspaces db status {target}")
    assert pending.returncode == 2
    assert shell(steps(pending.stdout)[0]).returncode == 0  # deploy

    path = versions / f"{INVITES}.py"
    path.write_text(path.read_text() + "\n# a comment added after it landed\n")
    changed = shell(f"workspaces db status {target}")
    assert changed.returncode == 4
    assert f"hint: Or restore {INVITES}.py from version control" in changed.stdout
    accept = steps(changed.stdout)  # the one command; restoring the file is advice
    assert accept[0].startswith(f"workspaces db resolve --applied {INVITES} --database-url ")
    assert shell(accept[0]).returncode == 0
    assert shell(f"workspaces db status {target}").returncode == 0
    assert counts(cli) == before
    assert not shell.leaked()
    history = json.loads(cli("db", "history", "--json").stdout)["events"]
    assert [(e["command"], e["outcome"]) for e in history][-4:] == [
        ("deploy", "error"), ("resolve", "ok"), ("deploy", "ok"), ("resolve", "ok")]


def test_repair_recreates_a_partial_unique_index_after_counting_its_duplicates(
        cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    cli.sql("DROP INDEX uq_workspace_invites_pending_email")
    clean = cli("db", "repair", "--dry-run")
    assert clean.exit_code == 0, clean.output
    assert "CREATE UNIQUE INDEX uq_workspace_invites_pending_email" in clean.stdout

    # Meanwhile a second pending invite for one address: the index would refuse it.
    cli.sql("INSERT INTO workspace_invites (id, workspace_id, email, role, token, status, "
            "expires_at, created_at) SELECT "
            + ("gen_random_uuid()" if cli.is_pg else "lower(hex(randomblob(16)))")
            + ", workspace_id, email, role, 'x' || substr(token, 2), status, expires_at, "
            "created_at FROM workspace_invites WHERE status = 'pending' "
            "AND expires_at > created_at")
    blocked = cli("db", "repair")
    assert blocked.exit_code == 5
    assert "error[repair_blocked_by_rows]" in blocked.stderr
    assert "workspace_invites: 4 rows share a value of workspace_id, email that unique " \
        "index uq_workspace_invites_pending_email requires to be unique" in blocked.stderr
    cli.sql("DELETE FROM workspace_invites WHERE token LIKE 'x%'")
    assert cli("db", "repair").exit_code == 0
    assert cli("db", "status").exit_code == 0


def test_complete_refuses_what_it_cannot_check(cli: Cli) -> None:
    """A migration that changes a check or runs a Python backfill cannot be finished piecemeal:
    its effect leaves nothing the live comparison sees."""
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    skeleton, logged = "20261130190000_users_email_skeleton", "20261130175952_outbox_status_logged"
    assert cli("db", "rollback", logged, "--yes").exit_code == 0
    refused = cli("db", "complete", logged)
    assert refused.exit_code == 1 and "error[complete_unsupported]" in refused.stderr
    assert "create check constraint" in refused.stderr
    assert cli("db", "deploy", "--to", logged).exit_code == 0
    assert ALL.index(skeleton) == ALL.index(logged) + 1  # the next one
    refused = cli("db", "complete", skeleton)
    assert refused.exit_code == 1 and "a Python data step" in refused.stderr
    assert cli("db", "deploy").exit_code == 0


def test_repair_delete_follows_the_keys_rules_when_users_are_gone(cli: Cli) -> None:
    """Deleting orphans makes more: members, tokens and emails of the deleted rows. PostgreSQL
    applies each key's ON DELETE rule; on SQLite (foreign keys off while the schema changes)
    the toolkit does, so the repair ends whole on both."""
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    if cli.is_pg:
        cli.sql("DROP TABLE users CASCADE")
    else:
        drop = sqlite3.connect(str(make_url(cli.url).database))
        drop.execute("DROP TABLE users")
        drop.commit()
        drop.close()
    null = cli("db", "repair", "--orphans=null")
    assert null.exit_code == 5 and "error[orphans_not_nullable]" in null.stderr
    assert steps(null.stderr)[0].startswith("workspaces db repair --orphans=delete")
    asked = cli("db", "repair", "--orphans=delete")
    assert asked.exit_code == 1
    assert steps(asked.stderr)[0].startswith("workspaces db repair --orphans=delete --yes")
    done = cli("db", "repair", "--orphans=delete", "--yes")
    assert done.exit_code == 0, done.output
    assert cli("db", "status").exit_code == 0
    assert cli.sql("SELECT count(*) FROM workspace_members") == [(0,)]
    assert cli.sql("SELECT count(*) FROM workspaces") == [(2,)]  # no key to users: kept


def test_deploy_on_a_database_that_predates_the_ledger_points_at_baseline(cli: Cli) -> None:
    assert cli("db", "deploy").exit_code == 0
    production_like(cli.url)
    cli.sql(f"DROP TABLE {LEDGER_TABLE}")
    refused = cli("db", "deploy")  # makes an empty ledger: still no history to go by
    assert refused.exit_code == 2 and "error[deploy_refused]" in refused.stderr
    assert steps(refused.stderr)[0].startswith("workspaces db baseline")
    baseline = cli("db", "baseline", "--json")
    assert baseline.exit_code == 0
    assert json.loads(baseline.stdout)["next"] == []
    assert cli("db", "status").exit_code == 0


def test_a_wrong_command_line_exits_1_not_2(tmp_path: Path) -> None:
    """2 means "pending" to scripts reading `db status`; a usage error must not look like it."""
    shell = Shell(tmp_path)
    human = shell("workspaces db repair --orphans=bogus")
    assert human.returncode == 1 and "Invalid value for '--orphans'" in human.stderr
    machine = shell("workspaces db history --limit 0 --json")
    assert machine.returncode == 1
    assert json.loads(machine.stdout)["error"]["code"] == "usage"
    assert shell("workspaces db status --database-url 'postgresql://u@h:port/x' --json"
                 ).returncode == 1  # a port that is no number: bad_url, not a traceback
    assert json.loads(shell.outputs[-2])["error"]["code"] == "bad_url"


def test_verify_json_says_what_the_exit_code_says(cli: Cli) -> None:
    assert cli("db", "deploy", "--to", INVITES).exit_code == 0
    run = cli("db", "verify", "--json")
    doc = json.loads(run.stdout)
    assert run.exit_code == doc["exit_code"] == 0
    assert all("fix" not in p for p in doc["problems"])
    assert doc["problems"][0]["next"][0].startswith("workspaces db deploy --database-url")


def test_a_dropped_check_is_drift_and_repair_checks_the_rows_first(pg_url: str) -> None:
    """Alembic compares no CHECK constraints: the toolkit compares them by name."""
    cli = Cli(pg_url, {})
    assert cli("db", "deploy").exit_code == 0
    production_like(pg_url)
    cli.sql("ALTER TABLE email_outbox DROP CONSTRAINT ck_email_outbox_status")
    status = cli("db", "status")
    assert status.exit_code == 5
    assert "check constraint ck_email_outbox_status on email_outbox is missing" in status.stdout
    cli.sql("UPDATE email_outbox SET status = 'bounced' WHERE status = 'failed'")
    blocked = cli("db", "repair")
    assert blocked.exit_code == 5 and "error[repair_blocked_by_rows]" in blocked.stderr
    assert "email_outbox: 10 rows break check constraint ck_email_outbox_status" \
        in blocked.stderr
    cli.sql("UPDATE email_outbox SET status = 'failed' WHERE status = 'bounced'")
    assert cli("db", "repair").exit_code == 0
    assert cli("db", "status").exit_code == 0


def test_complete_refuses_a_migration_whose_predecessors_are_not_applied(cli: Cli) -> None:
    assert cli("db", "deploy", "--to", INVITES).exit_code == 0
    refused = cli("db", "complete", ALL[-1])
    assert refused.exit_code == 1 and "error[earlier_not_applied]" in refused.stderr
    assert steps(refused.stderr)[0].startswith("workspaces db status")
    applied = cli("db", "complete", INVITES)
    assert applied.exit_code == 1 and "error[already_applied]" in applied.stderr
