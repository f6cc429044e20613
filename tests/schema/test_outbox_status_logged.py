"""The migration that lets the email outbox say `logged`: up, down and up again, on data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from tests.conftest import Cli

BEFORE = "20261125230538_index_outbox_by_invite"
LOGGED = "20261130175952_outbox_status_logged"
STATUSES = ("pending", "sent", "logged", "failed")


def _uuid(cli: Cli) -> str:
    """A new id as a literal: native uuid on PostgreSQL, 32 hex characters on SQLite."""
    value = uuid.uuid4()
    return f"'{value}'" if cli.is_pg else f"'{value.hex}'"


def _outbox_row(cli: Cli, workspace: str, invite: str, status: str) -> str:
    now = datetime.now(UTC).isoformat(sep=" ")
    return (
        "INSERT INTO email_outbox (id, workspace_id, invite_id, to_address, subject, body_text, "
        "body_html, sealed_secret, status, attempts, next_attempt_at, created_at) VALUES "
        f"({_uuid(cli)}, {workspace}, {invite}, '{status}@example.com', 'Hi', 'text', 'html', "
        f"NULL, '{status}', 1, '{now}', '{now}')"
    )


def _seed(cli: Cli) -> tuple[str, str]:
    """A user, a workspace, its member and an invite with one email in every status."""
    now = datetime.now(UTC).isoformat(sep=" ")
    user, workspace, invite = _uuid(cli), _uuid(cli), _uuid(cli)
    statements = [
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES "
        f"({user}, 'ann@example.com', 'Ann', 'x', '{now}', '{now}')",
        f"INSERT INTO workspaces (id, name, slug, created_at) VALUES ({workspace}, 'W', 'w', "
        f"'{now}')",
        "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES "
        f"({workspace}, {user}, 'owner', '{now}')",
        "INSERT INTO workspace_invites (id, workspace_id, email, role, token, status, "
        f"expires_at, created_at, created_by_user_id) VALUES ({invite}, {workspace}, "
        f"'bob@example.com', 'member', '{'0' * 64}', 'pending', '{now}', '{now}', {user})",
        *(_outbox_row(cli, workspace, invite, status) for status in STATUSES),
    ]
    run = cli("db", "execute", "--stdin", stdin=";\n".join(statements) + ";")
    assert run.exit_code == 0, run.output
    return workspace, invite


def _statuses(cli: Cli) -> dict[str, str]:
    """Each seeded email's status, by address (who it was seeded as)."""
    rows = cli.sql("SELECT to_address, status FROM email_outbox WHERE invite_id IS NOT NULL")
    return {str(address): str(status) for address, status in rows}


def test_logged_rows_survive_deploy_and_rollback_turns_them_into_sent(cli: Cli) -> None:
    assert cli("db", "deploy", "--to", BEFORE).exit_code == 0
    with pytest.raises(IntegrityError):  # before it: the CHECK refuses `logged`
        cli.sql(_outbox_row(cli, "NULL", "NULL", "logged"))
    deployed = cli("db", "deploy")
    assert deployed.exit_code == 0, deployed.output
    assert f"applied {LOGGED}" in deployed.stdout
    workspace, invite = _seed(cli)
    assert _statuses(cli) == {f"{s}@example.com": s for s in STATUSES}
    assert cli("db", "verify").exit_code == 0

    rolled = cli("db", "rollback", LOGGED, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert f"{LOGGED}: drops constraint ck_email_outbox_status on email_outbox" in rolled.stdout
    assert f"rolled back {LOGGED}" in rolled.stdout
    assert _statuses(cli) == {"pending@example.com": "pending", "sent@example.com": "sent",
                              "logged@example.com": "sent", "failed@example.com": "failed"}
    assert cli.sql("SELECT count(*) FROM workspace_invites") == [(1,)]  # the rebuild kept them
    with pytest.raises(IntegrityError):  # the old constraint is back
        cli.sql(_outbox_row(cli, workspace, invite, "logged"))
    assert cli("db", "status").exit_code == 2

    again = cli("db", "deploy")
    assert again.exit_code == 0, again.output
    assert cli("db", "verify").exit_code == 0
    cli.sql(_outbox_row(cli, workspace, invite, "logged"))
    with pytest.raises(IntegrityError):  # still a closed list
        cli.sql(_outbox_row(cli, workspace, invite, "delivered"))
