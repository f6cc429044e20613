"""`workspaces webhooks ...`: the operator's endpoints (the instance's and any workspace's), on
both databases; every `next:` line printed is run as printed."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.conftest import Cli, Run, json_of, run_as_printed
from tests.factories import Factory
from workspaces.logs import shown_url

KEY = "operator-secret-key-of-enough-length"


@pytest.fixture
def cli(app_db: str) -> Cli:
    return Cli(app_db, {"SECRET_KEY": KEY, "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
                        "WORKSPACE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"})


def _next(run: Run) -> list[str]:
    """The commands of the `next:` lines, as printed (without their `# why`)."""
    return [line.split("next: ", 1)[1].split("  #", 1)[0]
            for line in run.output.splitlines() if line.startswith("next: ")]


def test_an_operator_manages_the_instance_s_endpoint_and_a_workspace_s(cli: Cli) -> None:
    make = Factory(cli.url)
    owner = make.user("ann@example.com")
    space = make.workspace(owner, "Acme")
    make.event(space, "member.added")
    make.event(None, "user.created")
    make.close()

    made = cli("webhooks", "create", "--url", "http://127.0.0.1:9/all",
               "--events", "member.added,user.created", "--events", "invite.created",
               "--description", "Billing", "--database-url", cli.url)
    assert made.exit_code == 0, made.output
    assert "of the instance" in made.stdout and "Signing secret" in made.stdout
    assert "whsec_" in made.stdout  # shown this once
    (listing,) = _next(made)
    pasted = shlex.quote(shown_url(cli.url).paste)  # as the CLI prints a target
    assert listing == f"workspaces webhooks list --database-url {pasted}"

    theirs = json_of(cli("webhooks", "create", "--url", "http://127.0.0.1:9/acme", "-w",
                       space.slug, "--json", "--database-url", cli.url))
    assert theirs["secret"].startswith("whsec_")
    assert theirs["endpoint"]["workspace_slug"] == space.slug
    assert theirs["next"] == [f"workspaces webhooks list --workspace {space.slug} "
                              f"--database-url {pasted}"]

    everything = run_as_printed(cli, listing)
    assert everything.exit_code == 0, everything.output
    lines = everything.stdout.splitlines()
    assert len(lines) == 2 and "(instance)" in lines[0] and space.slug in lines[1]
    assert "member.added,invite.created,user.created" in lines[0]  # the catalogue's order
    assert "whsec_" not in everything.output
    only = json_of(run_as_printed(cli, theirs["next"][0] + " --json"))
    assert [e["id"] for e in only["endpoints"]] == [theirs["endpoint"]["id"]]
    instance_id = next(line.split()[0] for line in lines if "(instance)" in line)

    disabled = cli("webhooks", "disable", instance_id, "--database-url", cli.url)
    assert disabled.exit_code == 0, disabled.output
    (enable,) = _next(disabled)
    enabled = run_as_printed(cli, enable)
    assert enabled.exit_code == 0 and "Enabled" in enabled.stdout, enabled.output
    (replay,) = _next(enabled)  # what it missed while disabled
    assert replay.startswith(f"workspaces webhooks replay {instance_id} --since ")
    replayed = run_as_printed(cli, replay)
    assert replayed.exit_code == 0, replayed.output
    assert "Queued 0 events" in replayed.stdout  # nothing happened meanwhile
    everything_since = json_of(cli("webhooks", "replay", instance_id, "--since", "1d", "--json",
                                 "--database-url", cli.url))
    assert everything_since["queued"] == 2  # user.created and member.added, of any workspace

    # Any workspace's endpoint too, by its id; audited in that workspace, as the operator's.
    workspace_id = theirs["endpoint"]["id"]
    off = json_of(cli("webhooks", "disable", workspace_id, "--json", "--database-url", cli.url))
    assert off["endpoint"]["enabled"] is False
    assert "an operator" in off["endpoint"]["disabled_reason"]
    trail = cli.sql("SELECT action, detail FROM audit_events WHERE action LIKE 'webhook%' "
                    "ORDER BY created_at")
    assert [t[0] for t in trail] == ["webhook_created", "webhook_updated"]
    assert "by_operator" in str(trail[1][1])  # the audit log says "an operator" did it
    assert all("whsec_" not in str(t) for t in cli.sql("SELECT * FROM audit_events"))


def test_operator_refusals_are_sentences_with_codes(cli: Cli) -> None:
    private = cli("webhooks", "create", "--url", "https://10.0.0.1/hook",
                  "--database-url", cli.url)
    assert private.exit_code == 1 and "error[webhook_url_not_allowed]" in private.stderr
    unknown = cli("webhooks", "create", "--url", "http://127.0.0.1:9/x", "--events", "nope",
                  "--json", "--database-url", cli.url)
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout)["ok"] is False
    assert json.loads(unknown.stdout)["error"]["code"] == "invalid_event_type"
    nowhere = cli("webhooks", "create", "--url", "http://127.0.0.1:9/x", "-w", "nope",
                  "--database-url", cli.url)
    assert nowhere.exit_code == 1 and "error[workspace_not_found]" in nowhere.stderr
    for args in (("disable", "not-an-id"), ("enable", "00000000-0000-0000-0000-000000000000"),
                 ("replay", "00000000-0000-0000-0000-000000000000", "--since", "1d")):
        missing = cli("webhooks", *args, "--database-url", cli.url)
        assert missing.exit_code == 1 and "error[webhook_not_found]" in missing.stderr, args
    made = json_of(cli("webhooks", "create", "--url", "http://127.0.0.1:9/x", "--json",
                     "--database-url", cli.url))
    late = cli("webhooks", "replay", made["endpoint"]["id"], "--since", "last tuesday",
               "--database-url", cli.url)
    assert late.exit_code == 1 and "error[invalid_since]" in late.stderr
    assert cli("webhooks", "list", "--database-url", cli.url).stdout.count("\n") == 1
