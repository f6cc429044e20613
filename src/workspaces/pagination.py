"""Keyset cursors: (created_at, id) of the last row seen, opaque to clients."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from workspaces import clock
from workspaces.errors import InvalidInput

MAX_LIMIT = 100


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id.hex}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        if not value:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            stamp, hex_id = raw.split("|")
            return cls(clock.aware(datetime.fromisoformat(stamp)), uuid.UUID(hex=hex_id))
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise InvalidInput("The cursor is not one this server gave out; start from the "
                               "first page.", code="invalid_cursor", field="cursor") from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}.", code="invalid_limit",
                           field="limit")
    return limit
