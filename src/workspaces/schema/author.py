"""New revisions from the models' difference with the head, and a migration's SQL."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime

from sqlalchemy import MetaData

from workspaces.db import create_sync_engine
from workspaces.errors import Exit, SchemaError
from workspaces.schema.core import Result, ToolkitCore
from workspaces.schema.expected import build_model
from workspaces.schema.runner import render_sql, run_migration


class Authoring(ToolkitCore):
    """Writing and showing migrations: new revisions from the models, and their SQL."""

    def sql(self, migration_id: str, *, down: bool = False, dialect: str | None = None) -> str:
        """The migration's SQL for `dialect` (default: the database's kind); connects to
        nothing."""
        migration = self.migrations.get(migration_id)
        dialect = dialect or self.url.get_backend_name()
        start = self.migrations.position(migration_id) + (1 if down else 0)
        before = build_model(self.migrations.migrations[:start]).to_metadata()
        body = render_sql(migration, "downgrade" if down else "upgrade", dialect, before)
        then = "--rolled-back" if down else "--applied"
        return (
            f"-- {migration.id} ({'down' if down else 'up'}) for {dialect}\n"
            f"BEGIN;\n{body.strip()}\nCOMMIT;\n"
            f"-- After running it by hand, record it: workspaces db resolve {then} {migration.id}\n"
        )

    def new(self, message: str, *, empty: bool = False) -> Result:
        from alembic.autogenerate import produce_migrations, render_python_code
        from alembic.runtime.migration import MigrationContext
        from sqlalchemy.engine import make_url

        from workspaces.models import Base

        slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:48]
        if not slug:
            raise SchemaError("bad_message", "The message must contain letters or digits.")
        title = " ".join(message.split())  # the revision's title: one line
        if not title.isprintable():
            raise SchemaError("bad_message", "The message must be printable text (no control "
                                             "characters).")
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        revision = f"{stamp}_{slug}"
        upgrade = downgrade = "    pass"
        if not empty:
            engine = create_sync_engine(make_url("sqlite://"))
            with engine.begin() as conn:
                for migration in self.migrations:
                    run_migration(conn, migration, "upgrade")
                metadata: MetaData = Base.metadata
                context = MigrationContext.configure(
                    connection=conn, opts={"compare_type": True, "target_metadata": metadata}
                )
                script = produce_migrations(context, metadata)
            if script.upgrade_ops is None or script.upgrade_ops.is_empty():
                return Result(Exit.OK, ["Models match the head schema; no revision written "
                                        "(use --empty for a hand-written one)."], {})
            upgrade = _indent(render_python_code(script.upgrade_ops))
            downgrade = _indent(render_python_code(script.downgrade_ops))  # type: ignore[arg-type]
        head = self.migrations.head
        path = self.migrations.versions_dir / f"{revision}.py"
        path.write_text(_REVISION_TEMPLATE.format(
            title=_docstring_text(title), revision=revision,
            down=repr(head.id if head else None), created=stamp,
            down_doc=head.id if head else "", upgrade=upgrade, downgrade=downgrade,
        ))
        return Result(Exit.OK, [f"Wrote {path}"], {"revision": revision, "path": str(path)},
                      next=["workspaces db deploy  # after reviewing it"])


def _docstring_text(title: str) -> str:
    """The title as a docstring's text: its quotes and backslashes escaped, so that no message
    can end the docstring and write code of its own."""
    return title.replace("\\", "\\\\").replace('"', '\\"')


def _indent(code: str) -> str:
    kept = "\n".join(line for line in code.splitlines() if "# ###" not in line)
    return textwrap.indent(textwrap.dedent(kept).strip("\n"), "    ") or "    pass"


_REVISION_TEMPLATE = '''"""{title}

Revision ID: {revision}
Revises: {down_doc}
Create Date: {created}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''
