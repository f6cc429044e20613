"""The operator CLI: users, workspaces and invites without the UI, on both databases."""

from __future__ import annotations

import json

from tests.conftest import Cli


def test_an_operator_creates_an_account_a_workspace_and_manages_invites(app_db: str) -> None:
    cli = Cli(app_db, {"SECRET_KEY": "operator-secret-key-of-enough-length"})
    made = cli("users", "create", "--email", "Ann@Example.com", "--name", "Ann",
               "--password", "correct horse battery", "--database-url", app_db)
    assert made.exit_code == 0, made.output
    assert "Created ann@example.com" in made.stdout

    ws = cli("workspaces", "create", "--name", "Acme Inc", "--owner", "ann@example.com",
             "--database-url", app_db, "--json")
    assert ws.exit_code == 0, ws.output
    assert json.loads(ws.stdout)["slug"] == "acme-inc"

    invite = cli("invites", "create", "-w", "acme-inc", "--email", "bob@example.com",
                 "--role", "admin", "--database-url", app_db, "--json")
    assert invite.exit_code == 0, invite.output
    issued = json.loads(invite.stdout)
    invite_id = issued["invite"]["id"]
    assert issued["accept_url"].split("/invites/")[1]

    listed = cli("invites", "list", "-w", "acme-inc", "--database-url", app_db)
    assert listed.exit_code == 0 and "pending" in listed.stdout and invite_id in listed.stdout

    again = cli("invites", "create", "-w", "acme-inc", "--email", "bob@example.com",
                "--database-url", app_db)
    assert again.exit_code == 1 and "error[invite_exists]" in again.stderr

    resent = cli("invites", "resend", invite_id, "-w", "acme-inc", "--database-url", app_db)
    assert resent.exit_code == 0 and "Link: " in resent.stdout

    revoked = cli("invites", "revoke", invite_id, "-w", "acme-inc", "--database-url", app_db)
    assert revoked.exit_code == 0, revoked.output
    listed = cli("invites", "list", "-w", "acme-inc", "--status", "revoked", "--json",
                 "--database-url", app_db)
    assert [i["id"] for i in json.loads(listed.stdout)["items"]] == [invite_id]
    audit = cli.sql("SELECT action FROM audit_events ORDER BY created_at")
    assert [a[0] for a in audit] == ["workspace_created", "created", "resent", "revoked"]


def test_operator_errors_are_sentences_with_codes(app_db: str) -> None:
    cli = Cli(app_db, {"SECRET_KEY": "operator-secret-key-of-enough-length"})
    missing = cli("workspaces", "create", "--name", "X", "--owner", "nobody@example.com",
                  "--database-url", app_db)
    assert missing.exit_code == 1
    assert "error[user_not_found]" in missing.stderr and "users create" in missing.stderr
    nowhere = cli("invites", "list", "-w", "nope", "--database-url", app_db)
    assert nowhere.exit_code == 1 and "error[workspace_not_found]" in nowhere.stderr
    weak = cli("users", "create", "--email", "a@example.com", "--name", "A", "--password", "x",
               "--database-url", app_db)
    assert weak.exit_code == 1 and "error[invalid_password]" in weak.stderr


def test_every_json_document_says_ok_like_the_other_commands(app_db: str) -> None:
    """Issue 19 item 13: `--json` carries `ok` for every command, these too (they printed the
    bare object, and `invites list` a bare list)."""
    cli = Cli(app_db, {"SECRET_KEY": "operator-secret-key-of-enough-length"})
    at = ("--database-url", app_db, "--json")
    docs = [cli("users", "create", "--email", "ann@example.com", "--name", "Ann",
                "--password", "correct horse battery", *at),
            cli("workspaces", "create", "--name", "Acme Inc", "--owner", "ann@example.com", *at)]
    invite = cli("invites", "create", "-w", "acme-inc", "--email", "bob@example.com", *at)
    invite_id = json.loads(invite.stdout)["invite"]["id"]
    docs += [invite, cli("invites", "resend", invite_id, "-w", "acme-inc", *at),
             cli("invites", "revoke", invite_id, "-w", "acme-inc", *at)]
    listed = cli("invites", "list", "-w", "acme-inc", *at)
    docs += [listed, cli("db", "sql", "20250101000000_init", "--json")]
    for run in docs:
        assert run.exit_code == 0, run.output
        assert json.loads(run.stdout)["ok"] is True, run.stdout
    assert [i["id"] for i in json.loads(listed.stdout)["items"]] == [invite_id]
