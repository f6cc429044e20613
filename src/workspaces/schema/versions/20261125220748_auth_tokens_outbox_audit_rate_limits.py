"""Sign-in tokens, the email outbox, the audit trail, rate limits; invites can be declined.

Revision ID: 20261125220748_auth_tokens_outbox_audit_rate_limits
Revises: 20250116140000_add_workspace_invites
Create Date: 20261125220748
"""

import sqlalchemy as sa
from alembic import op

revision = "20261125220748_auth_tokens_outbox_audit_rate_limits"
down_revision = "20250116140000_add_workspace_invites"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limit_counters',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start', name=op.f('pk_rate_limit_counters'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('actor_user_id', sa.Uuid(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target_type', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('target_email', sa.String(length=320), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_audit_events_actor_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_audit_events_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_workspace_id_created_at', 'audit_events', ['workspace_id', 'created_at'], unique=False)
    op.create_table('auth_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('api', 'browser')", name=op.f('ck_auth_tokens_kind')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_auth_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_auth_tokens_token_hash'))
    )
    op.create_index(op.f('ix_auth_tokens_user_id'), 'auth_tokens', ['user_id'], unique=False)
    op.create_table('email_outbox',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=True),
    sa.Column('invite_id', sa.Uuid(), nullable=True),
    sa.Column('to_address', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('sealed_secret', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f('ck_email_outbox_status')),
    sa.ForeignKeyConstraint(['invite_id'], ['workspace_invites.id'], name=op.f('fk_email_outbox_invite_id_workspace_invites'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_email_outbox_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_outbox'))
    )
    op.create_index('ix_email_outbox_status_next_attempt_at', 'email_outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_email_outbox_workspace_id'), 'email_outbox', ['workspace_id'], unique=False)
    # SQLite cannot alter a CHECK constraint in place: batch mode rebuilds the table there.
    with op.batch_alter_table("workspace_invites") as batch:
        batch.add_column(sa.Column("declined_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("ck_workspace_invites_status", type_="check")
        batch.create_check_constraint(
            "ck_workspace_invites_status",
            "status IN ('pending', 'accepted', 'revoked', 'declined')",
        )
    op.create_index('ix_workspace_invites_workspace_id_created_at', 'workspace_invites', ['workspace_id', 'created_at', 'id'], unique=False)
    op.create_index('uq_workspace_invites_pending_email', 'workspace_invites', ['workspace_id', 'email'], unique=True, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index('uq_workspace_invites_pending_email', table_name='workspace_invites', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
    op.drop_index('ix_workspace_invites_workspace_id_created_at', table_name='workspace_invites')
    with op.batch_alter_table("workspace_invites") as batch:
        batch.drop_constraint("ck_workspace_invites_status", type_="check")
        batch.create_check_constraint(
            "ck_workspace_invites_status", "status IN ('pending', 'accepted', 'revoked')"
        )
        batch.drop_column("declined_at")
    op.drop_index(op.f('ix_email_outbox_workspace_id'), table_name='email_outbox')
    op.drop_index('ix_email_outbox_status_next_attempt_at', table_name='email_outbox')
    op.drop_table('email_outbox')
    op.drop_index(op.f('ix_auth_tokens_user_id'), table_name='auth_tokens')
    op.drop_table('auth_tokens')
    op.drop_index('ix_audit_events_workspace_id_created_at', table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_table('rate_limit_counters')
