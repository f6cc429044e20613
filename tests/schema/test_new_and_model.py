"""`db new`, the recorded per-migration schema, and status staying read-only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ALL, INIT, INVITES, Cli
from workspaces.schema.expected import ObjectKey, build_model, downgrade_operations
from workspaces.schema.ledger import LEDGER_TABLE
from workspaces.schema.revisions import MigrationSet


def test_the_model_knows_which_migration_created_each_object() -> None:
    migrations = MigrationSet()
    model = build_model(migrations)
    assert model.origin[ObjectKey("table", "workspace_invites")] == INVITES
    assert model.origin[ObjectKey("column", "users", "email")] == INIT
    assert model.origin[ObjectKey("unique", "workspace_invites", "uq_workspace_invites_token")] \
        == INVITES
    assert model.origin[ObjectKey("foreign_key", "workspace_invites",
                                  "fk_workspace_invites_workspace_id_workspaces")] == INVITES
    invites = model.to_metadata().tables["workspace_invites"]
    assert {"ix_workspace_invites_workspace_id_email", "ix_workspace_invites_workspace_id_status",
            "uq_workspace_invites_pending_email"} <= {i.name for i in invites.indexes}
    fk = next(iter(invites.c.workspace_id.foreign_keys))
    assert fk.ondelete == "CASCADE" and fk.target_fullname == "workspaces.id"
    assert not invites.c.email.nullable and invites.c.accepted_at.nullable


def test_later_operations_fold_into_the_model(versions: Path) -> None:
    (versions / "20250301000000_more.py").write_text(
        '"""More."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "20250301000000_more"\ndown_revision = "{ALL[-1]}"\n\n'
        "def upgrade() -> None:\n"
        '    op.add_column("users", sa.Column("locale", sa.String(10), nullable=True))\n'
        '    op.drop_index("ix_workspace_invites_workspace_id_email", '
        'table_name="workspace_invites")\n'
        '    op.alter_column("workspaces", "name", type_=sa.String(300))\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_column("users", "locale")\n'
    )
    model = build_model(MigrationSet(versions))
    assert model.origin[ObjectKey("column", "users", "locale")] == "20250301000000_more"
    assert "ix_workspace_invites_workspace_id_email" not in \
        model.tables["workspace_invites"].indexes
    assert model.tables["workspaces"].columns["name"].type.length == 300  # type: ignore[attr-defined]
    down = downgrade_operations(MigrationSet(versions).get("20250301000000_more"))
    assert [type(op).__name__ for op in down] == ["DropColumnOp"]


def test_new_writes_nothing_when_models_match(custom_cli: Cli, versions: Path) -> None:
    run = custom_cli("db", "new", "nothing changed")
    assert run.exit_code == 0
    assert "no revision written" in run.stdout
    assert len(list(versions.glob("*.py"))) == len(ALL)


def test_new_empty_writes_a_timestamped_revision_on_top_of_head(custom_cli: Cli,
                                                                versions: Path) -> None:
    run = custom_cli("db", "new", "Add audit events!", "--empty")
    assert run.exit_code == 0, run.output
    written = sorted(versions.glob("*_add_audit_events.py"))
    assert len(written) == 1 and len(written[0].name.split("_")[0]) == 14
    migrations = MigrationSet(versions)
    assert migrations.head is not None and migrations.head.path == written[0]
    assert f"down_revision = '{ALL[-1]}'" in written[0].read_text()
    status = custom_cli("db", "status")
    assert status.exit_code == 2 and written[0].stem in status.stdout


@pytest.mark.parametrize("message", [
    'Fix """\nx = 1\n"""',  # would end the docstring and run a statement of its own
    "ends with a backslash \\",
    'quotes " and \'\'\' and \\"""',
    "line one\nline two\r\n\tthree",
    r"\N{BULLET} \x41 \u0041 escapes as text",
])
def test_new_writes_any_message_as_its_title_and_nothing_else(custom_cli: Cli, versions: Path,
                                                              message: str) -> None:
    run = custom_cli("db", "new", message, "--empty")
    assert run.exit_code == 0, run.output
    (written,) = set(versions.glob("*.py")) - {versions / f"{m}.py" for m in ALL}
    tree = ast.parse(written.read_text())
    title = " ".join(message.split())
    assert (ast.get_docstring(tree) or "").split("\n")[0] == title
    # The template's statements, no other: docstring, two imports, four names, two functions.
    assert [type(node).__name__ for node in tree.body] == [
        "Expr", "Import", "ImportFrom", "Assign", "Assign", "Assign", "Assign", "FunctionDef",
        "FunctionDef"]
    assert MigrationSet(versions).get(written.stem).title == title
    assert custom_cli("db", "status").exit_code == 2  # Alembic loads it as pending


def test_new_refuses_a_message_with_control_characters(custom_cli: Cli, versions: Path) -> None:
    run = custom_cli("db", "new", "red \x1b[31m title", "--empty")
    assert run.exit_code == 1 and "error[bad_message]" in run.stderr
    assert len(list(versions.glob("*.py"))) == len(ALL)


def test_new_renders_the_difference_between_models_and_head(custom_cli: Cli,
                                                            versions: Path) -> None:
    import sqlalchemy as sa

    from workspaces.models import Base

    users = Base.metadata.tables["users"]
    column = sa.Column("locale", sa.String(10), nullable=True)
    users.append_column(column)  # as if a developer had added it to models.py
    try:
        run = custom_cli("db", "new", "user locale")
    finally:
        users._columns.remove(column)
    assert run.exit_code == 0, run.output
    (written,) = versions.glob("*_user_locale.py")
    text = written.read_text()
    assert "op.add_column('users', sa.Column('locale', sa.String(length=10)" in text
    assert "op.drop_column('users', 'locale')" in text
    deployed = custom_cli("db", "deploy")
    assert deployed.exit_code == 0, deployed.output
    assert custom_cli("db", "verify").exit_code == 0


def test_status_never_creates_the_ledger(cli: Cli) -> None:
    cli.sql("CREATE TABLE unrelated (id integer)")
    for _ in range(2):
        run = cli("db", "status")
        assert run.exit_code == 2
        assert "[no_ledger]" not in run.stdout  # another application's table is not ours
    assert LEDGER_TABLE not in cli.tables()
    assert cli("db", "verify").exit_code == 0
    assert LEDGER_TABLE not in cli.tables()
