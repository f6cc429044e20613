"""Audit events keep the actor's address.

`audit_events.actor_email`: the actor's address when the event was written, as `target_email`
keeps the target's; the trail used to show the actor's current address, which told a
workspace where a former member's account had moved. Existing rows are filled with what the
workspace may know: the address of an actor who is still a member, else the address a former
member joined with (their `accepted` event). Other rows stay NULL (an actor who left without
having joined through an invite, such as a workspace's creator): the trail shows "a former
member", as it cannot tell the address they had then.

Revision ID: 20261206012805_audit_events_keep_the_actor_s_address
Revises: 20261206012328_sessions_remember_their_device_and_address
Create Date: 20261206012805
"""

import sqlalchemy as sa
from alembic import op

revision = "20261206012805_audit_events_keep_the_actor_s_address"
down_revision = '20261206012328_sessions_remember_their_device_and_address'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('audit_events', sa.Column('actor_email', sa.String(length=320), nullable=True))
    op.execute(
        "UPDATE audit_events SET actor_email = ("
        " SELECT users.email FROM users JOIN workspace_members"
        " ON workspace_members.user_id = users.id"
        " WHERE users.id = audit_events.actor_user_id"
        " AND workspace_members.workspace_id = audit_events.workspace_id)"
        " WHERE actor_user_id IS NOT NULL")
    op.execute(
        "UPDATE audit_events SET actor_email = ("
        " SELECT joined.target_email FROM audit_events joined"
        " WHERE joined.workspace_id = audit_events.workspace_id"
        " AND joined.actor_user_id = audit_events.actor_user_id"
        " AND joined.action = 'accepted'"
        " ORDER BY joined.created_at DESC LIMIT 1)"
        " WHERE actor_email IS NULL AND actor_user_id IS NOT NULL")


def downgrade() -> None:
    op.drop_column('audit_events', 'actor_email')
