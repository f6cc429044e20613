"""Email outbox status `logged`: emails the console backend wrote to the log and never sent.

Revision ID: 20261130175952_outbox_status_logged
Revises: 20261125230538_index_outbox_by_invite
Create Date: 20261130175952
"""

from alembic import op

revision = "20261130175952_outbox_status_logged"
down_revision = '20261125230538_index_outbox_by_invite'
branch_labels = None
depends_on = None


def _status_check(statuses: str) -> None:
    """Replace the status CHECK (batch mode: SQLite rebuilds the table, PostgreSQL alters it)."""
    with op.batch_alter_table("email_outbox") as batch:
        batch.drop_constraint("ck_email_outbox_status", type_="check")
        batch.create_check_constraint("ck_email_outbox_status", f"status IN ({statuses})")


def upgrade() -> None:
    _status_check("'pending', 'sent', 'logged', 'failed'")


def downgrade() -> None:
    # The old code knows no `logged`: those emails count as done, as it recorded them then.
    op.execute("UPDATE email_outbox SET status = 'sent' WHERE status = 'logged'")
    _status_check("'pending', 'sent', 'failed'")
