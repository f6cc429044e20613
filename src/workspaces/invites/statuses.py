"""Invite statuses, as stored and as everyone sees them, and the one rule between them.

A pending invite past `expires_at` is `expired` everywhere, while its stored status stays
`pending` (so that it can be re-sent). The rule is written twice side by side: in Python for
rows already read, and as SQL for queries that filter on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import and_

from workspaces import clock

StoredStatus = Literal["pending", "accepted", "revoked", "declined"]
STORED: tuple[str, ...] = get_args(StoredStatus)
Status = Literal["pending", "expired", "accepted", "revoked", "declined"]
STATUSES: tuple[str, ...] = get_args(Status)
OPEN = ("pending", "expired")  # what can still be re-sent or revoked


def expired(expires_at: datetime, now: datetime) -> bool:
    return clock.aware(expires_at) <= now


def effective(stored: str, expires_at: datetime, now: datetime) -> str:
    """What a stored status means at `now`."""
    return "expired" if stored == "pending" and expired(expires_at, now) else stored


def live(expires_at: Any, now: Any) -> Any:
    """SQL: not yet expired at `now` (a column and a value or bind parameter)."""
    return expires_at > now


def where(status: str, stored: Any, expires_at: Any, now: Any) -> Any:
    """SQL: rows whose effective status is `status` at `now` (a value or bind parameter),
    given the stored status and expiry columns."""
    if status == "pending":
        return and_(stored == "pending", live(expires_at, now))
    if status == "expired":
        return and_(stored == "pending", ~live(expires_at, now))
    return stored == status
