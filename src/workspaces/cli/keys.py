"""`workspaces keys list|rotate`: the signing keys of the OpenID provider."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from workspaces.cli.common import AsJson, DatabaseUrl, done, operate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from workspaces.oauth.keys import KeyInfo
    from workspaces.settings import Settings

keys_app = typer.Typer(no_args_is_help=True, help="Signing keys of ID and access tokens.")


def _stamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def _line(key: KeyInfo) -> str:
    return (f"{key.kid}  {key.state:<7}  created {_stamp(key.created_at)}  "
            f"signs {_stamp(key.activates_at)} to {_stamp(key.retired_at)}  "
            f"published until {_stamp(key.published_until)}")


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Every key: kid, state (pending, signing, retired, expired), when it was made, when it
    signs, and until when the JWKS publishes it. Makes the first key if there is none."""
    from workspaces.oauth import keys

    async def work(conn: AsyncConnection, settings: Settings) -> tuple[str | None, Any]:
        made = await keys.ensure_first_key(conn, settings)
        return made, await keys.list_keys(conn, settings)

    made, items = operate(database_url, as_json, work)
    text = "\n".join(_line(k) for k in items)
    if made:
        text = f"Made the first signing key {made}.\n{text}"
    done(database_url, as_json, text, [], keys=items)


@keys_app.command("rotate")
def keys_rotate(database_url: DatabaseUrl = None, as_json: AsJson = False) -> None:
    """Publish a new key now; it starts signing after JWKS_MAX_AGE_SECONDS (when relying
    parties' cached key sets hold it), and the signing key retires then."""
    from workspaces.oauth import keys

    new = operate(database_url, as_json, keys.rotate)
    done(database_url, as_json,
         f"Published key {new.kid}; it signs from {_stamp(new.activates_at)}, when the key "
         "signing now retires (which stays published until its tokens have expired).",
         ["workspaces keys list"], key=new)
