"""Verified addresses and account events.

`users.email_verified_at`: when a link mailed to the address was used (sign-up's verification
link, an invite accepted through its emailed link, a password reset). Accounts made before it
stay unverified (NULL) until they verify: nothing proves their address yet. `account_events`:
each account's own security trail (password changed, address verified or changed, sessions
signed out), shown to its owner.

Revision ID: 20261130232952_verified_addresses_and_account_events
Revises: 20261130212953_account_tokens
Create Date: 20261130232952
"""

import sqlalchemy as sa
from alembic import op

revision = "20261130232952_verified_addresses_and_account_events"
down_revision = '20261130212953_account_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_account_events_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_events'))
    )
    op.create_index('ix_account_events_user_id_created_at', 'account_events', ['user_id', 'created_at'], unique=False)
    op.add_column('users', sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('users', 'email_verified_at')
    op.drop_index('ix_account_events_user_id_created_at', table_name='account_events')
    op.drop_table('account_events')
