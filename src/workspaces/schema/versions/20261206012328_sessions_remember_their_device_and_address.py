"""Sessions remember their device and address.

`auth_tokens.user_agent` (the User-Agent header at sign-in, cut to the column's length),
`client_address` (the client address as the limits see it) and `last_used_at` (the latest use,
kept to a few minutes): the account page's session list tells sessions apart by them. Sessions
made before it have none of them (NULL): the page says their device is unknown.

Revision ID: 20261206012328_sessions_remember_their_device_and_address
Revises: 20261130232952_verified_addresses_and_account_events
Create Date: 20261206012328
"""

import sqlalchemy as sa
from alembic import op

revision = "20261206012328_sessions_remember_their_device_and_address"
down_revision = '20261130232952_verified_addresses_and_account_events'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('auth_tokens', sa.Column('user_agent', sa.String(length=512), nullable=True))
    op.add_column('auth_tokens', sa.Column('client_address', sa.String(length=64), nullable=True))
    op.add_column('auth_tokens', sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('auth_tokens', 'last_used_at')
    op.drop_column('auth_tokens', 'client_address')
    op.drop_column('auth_tokens', 'user_agent')
