"""Grants: what a user (or, for service tokens, the client itself) gave a client, and their
end. An ended grant is revoked, so our API refuses its access tokens at once, and its refresh
tokens are deleted."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.models import oauth_grants, oauth_refresh_tokens


async def end_grants(conn: AsyncConnection, *, client_id: str,
                     user_id: uuid.UUID | None) -> int:
    """End every grant of `client_id` to `user_id` (None: the client's own service grants);
    how many had not been revoked before."""
    whose = oauth_grants.c.user_id == user_id if user_id is not None \
        else oauth_grants.c.user_id.is_(None)
    of_them = (oauth_grants.c.client_id == client_id, whose)
    ended = (await conn.execute(
        update(oauth_grants).where(*of_them, oauth_grants.c.revoked_at.is_(None))
        .values(revoked_at=clock.now()).returning(oauth_grants.c.id))).all()
    await conn.execute(delete(oauth_refresh_tokens).where(
        oauth_refresh_tokens.c.grant_id.in_(select(oauth_grants.c.id).where(*of_them))))
    return len(ended)
