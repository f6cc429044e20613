"""The event log, its retention horizon, and webhook endpoints with their deliveries and attempts.

`events` is written in the transaction of every change (`events.tell`); `webhook_deliveries`
are written with it for each endpoint that wants the event, and delivered from there.
`workspace_invites.expiry_told_at` marks invites whose expiry the sweep has told. No existing
row changes: the log starts empty (what happened before it is in the audit trail).

Revision ID: 20261206041634_events_and_webhooks
Revises: 20261206012805_audit_events_keep_the_actor_s_address
Create Date: 20261206041634
"""

import sqlalchemy as sa
from alembic import op

revision = "20261206041634_events_and_webhooks"
down_revision = '20261206012805_audit_events_keep_the_actor_s_address'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_horizon',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('swept_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_horizon'))
    )
    op.create_table('events',
    sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('position', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id')),
    sqlite_autoincrement=True,  # positions are never reused, even after a sweep empties it
    )
    op.create_index('ix_events_occurred_at', 'events', ['occurred_at'], unique=False)
    op.create_index('ix_events_txid_position', 'events', ['txid', 'position'], unique=False)
    op.create_index('ix_events_workspace_id_txid_position', 'events', ['workspace_id', 'txid', 'position'], unique=False)
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=True),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('event_types', sa.Text(), nullable=True),
    sa.Column('sealed_secret', sa.Text(), nullable=False),
    sa.Column('sealed_previous_secret', sa.Text(), nullable=True),
    sa.Column('previous_secret_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=300), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_user_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_webhook_endpoints_created_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_webhook_endpoints_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    op.create_index(op.f('ix_webhook_endpoints_workspace_id'), 'webhook_endpoints', ['workspace_id'], unique=False)
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('endpoint_id', sa.Uuid(), nullable=False),
    sa.Column('event_position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('message_id', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f('ck_webhook_deliveries_status')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_position'], ['events.position'], name=op.f('fk_webhook_deliveries_event_position_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    op.create_index('ix_webhook_deliveries_endpoint_id_created_at', 'webhook_deliveries', ['endpoint_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_webhook_deliveries_event_position'), 'webhook_deliveries', ['event_position'], unique=False)
    op.create_index('ix_webhook_deliveries_status_next_attempt_at', 'webhook_deliveries', ['status', 'next_attempt_at'], unique=False)
    op.create_table('webhook_attempts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.Column('endpoint_id', sa.Uuid(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('response_excerpt', sa.Text(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_attempts_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    op.create_index(op.f('ix_webhook_attempts_delivery_id'), 'webhook_attempts', ['delivery_id'], unique=False)
    op.create_index('ix_webhook_attempts_endpoint_id_attempted_at', 'webhook_attempts', ['endpoint_id', 'attempted_at'], unique=False)
    op.add_column('workspace_invites', sa.Column('expiry_told_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('workspace_invites', 'expiry_told_at')
    op.drop_index('ix_webhook_attempts_endpoint_id_attempted_at', table_name='webhook_attempts')
    op.drop_index(op.f('ix_webhook_attempts_delivery_id'), table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index('ix_webhook_deliveries_status_next_attempt_at', table_name='webhook_deliveries')
    op.drop_index(op.f('ix_webhook_deliveries_event_position'), table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_endpoint_id_created_at', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index(op.f('ix_webhook_endpoints_workspace_id'), table_name='webhook_endpoints')
    op.drop_table('webhook_endpoints')
    op.drop_index('ix_events_workspace_id_txid_position', table_name='events')
    op.drop_index('ix_events_txid_position', table_name='events')
    op.drop_index('ix_events_occurred_at', table_name='events')
    op.drop_table('events')
    op.drop_table('event_horizon')
