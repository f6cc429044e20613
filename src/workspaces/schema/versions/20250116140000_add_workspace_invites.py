"""Workspace invitations by email.

Revision ID: 20250116140000_add_workspace_invites
Revises: 20250101000000_init
Create Date: 2025-01-16 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "20250116140000_add_workspace_invites"
down_revision = "20250101000000_init"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_invites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'member')", name="ck_workspace_invites_role"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'revoked')", name="ck_workspace_invites_status"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_workspace_invites_workspace_id_workspaces",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name="fk_workspace_invites_created_by_user_id_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_workspace_invites"),
        sa.UniqueConstraint("token", name="uq_workspace_invites_token"),
    )
    op.create_index(
        "ix_workspace_invites_workspace_id_email", "workspace_invites", ["workspace_id", "email"]
    )
    op.create_index(
        "ix_workspace_invites_workspace_id_status", "workspace_invites", ["workspace_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_workspace_invites_workspace_id_status", table_name="workspace_invites")
    op.drop_index("ix_workspace_invites_workspace_id_email", table_name="workspace_invites")
    op.drop_table("workspace_invites")
