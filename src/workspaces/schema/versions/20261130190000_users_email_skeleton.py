"""Users' confusable skeleton (Unicode TS #39): no account may look like another's address.

Existing rows are brought to today's normalisation (NFKC, lower case) where that takes no
other account's address, and given their skeleton; where two accounts share a skeleton, the
oldest keeps it and the others are left without one (grandfathered: they keep working, and no
new look-alike of any of them can be registered). The backfill is Python (the skeleton needs
Unicode's tables): `workspaces db sql` shows the schema changes only.

Revision ID: 20261130190000_users_email_skeleton
Revises: 20261130175952_outbox_status_logged
Create Date: 20261130190000
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from workspaces.errors import InvalidInput
from workspaces.validation import email_skeleton, normalize_email

revision = "20261130190000_users_email_skeleton"
down_revision = "20261130175952_outbox_status_logged"
branch_labels = None
depends_on = None


def _backfill(bind: Any) -> None:
    users = sa.table("users", sa.column("id", sa.Uuid()), sa.column("email", sa.String()),
                     sa.column("created_at", sa.DateTime(timezone=True)),
                     sa.column("email_skeleton", sa.String()))
    rows = bind.execute(sa.select(users.c.id, users.c.email)
                        .order_by(users.c.created_at, users.c.id)).all()
    taken = {email for _, email in rows}
    skeletons: set[str] = set()
    for user_id, email in rows:
        try:
            normal = normalize_email(email)
        except InvalidInput:  # e.g. a mixed-script address registered before: left as it is
            normal = email
        if normal != email and normal not in taken:
            taken.add(normal)
            email = normal
        skeleton = email_skeleton(email)
        kept = None if skeleton in skeletons else skeleton  # a younger look-alike: no skeleton
        skeletons.add(skeleton)
        bind.execute(sa.update(users).where(users.c.id == user_id)
                     .values(email=email, email_skeleton=kept))


def upgrade() -> None:
    op.add_column("users", sa.Column("email_skeleton", sa.String(length=320), nullable=True))
    if not op.get_context().as_sql:
        _backfill(op.get_bind())
    op.create_index("uq_users_email_skeleton", "users", ["email_skeleton"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_email_skeleton", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_skeleton")
