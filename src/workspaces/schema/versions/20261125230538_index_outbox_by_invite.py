"""Index the email outbox by invite: admins see each invite's delivery status.

Revision ID: 20261125230538_index_outbox_by_invite
Revises: 20261125220748_auth_tokens_outbox_audit_rate_limits
Create Date: 20261125230538
"""

from alembic import op

revision = "20261125230538_index_outbox_by_invite"
down_revision = '20261125220748_auth_tokens_outbox_audit_rate_limits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f('ix_email_outbox_invite_id'), 'email_outbox', ['invite_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_email_outbox_invite_id'), table_name='email_outbox')
