"""Webhook endpoints remember whether an operator set their URL.

`webhook_endpoints.operator_networks`: only then does WEBHOOK_ALLOWED_NETWORKS admit the
receiver, when the URL is saved and at each attempt. Service clients with `webhooks:write`
manage the instance's endpoints too, and must not reach the operator's internal hosts: their
URLs are judged as a workspace admin's. Existing instance endpoints were made by operators
(the service clients' routes are newer than any release), so they keep what they had: true;
workspaces' endpoints: false.

Revision ID: 20261206081559_webhook_endpoints_operator_networks
Revises: 20261206071147_oauth_and_signing_keys
Create Date: 20261206081559
"""

import sqlalchemy as sa
from alembic import op

revision = "20261206081559_webhook_endpoints_operator_networks"
down_revision = '20261206071147_oauth_and_signing_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('webhook_endpoints', sa.Column('operator_networks', sa.Boolean(),
                                                 server_default=sa.false(), nullable=False))
    op.execute(sa.text("UPDATE webhook_endpoints SET operator_networks = :yes"
                       " WHERE workspace_id IS NULL").bindparams(yes=True))


def downgrade() -> None:
    op.drop_column('webhook_endpoints', 'operator_networks')
