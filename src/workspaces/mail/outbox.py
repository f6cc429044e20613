"""The outbox: emails are rows written in the same transaction as the change that causes them.

A link's token is sealed (encrypted with SECRET_KEY) in the row until delivery and erased
afterwards, so the database never holds a usable token: the bodies carry a marker where the
link goes, filled in only in memory when the message is sent. The sealed secret is the link's
path below BASE_URL (`reset/<token>`), or for an invite, its bare token (`invites/<token>`).
Emails without a link (notices) carry no marker and no secret.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workspaces import clock
from workspaces.models import outbox
from workspaces.security import seal

LINK_MARKER = "@@ACCEPT_URL@@"


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("workspaces.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class InviteEmail:
    to: str
    workspace: str
    inviter: str  # the name quoted next to the address (`invites.service.inviter_label`)
    role: str
    expires_at: datetime
    # None: a service client invited (its name, which the operator registered, is `inviter`).
    inviter_email: str | None = field(kw_only=True)


def quoted(text: str) -> str:
    """Text a person chose, in quotes it cannot close itself: shown as theirs, not ours."""
    return "“{}”".format(text.replace("“", '"').replace("”", '"'))


def accept_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/invites/{token}"


def link_url(base_url: str, secret: str) -> str:
    """The link an unsealed secret stands for: a path below BASE_URL, or an invite's token."""
    if "/" in secret:
        return f"{base_url.rstrip('/')}/{secret}"
    return accept_url(base_url, secret)


async def enqueue_account_email(
    conn: AsyncConnection, *, to: str, subject: str, template: str, values: dict[str, str],
    key: str, link_path: str | None = None,
) -> None:
    """Queue an email about an account (no workspace): `template`.txt and .html rendered with
    `values`, and `link` standing for BASE_URL/`link_path` when there is one (sealed)."""
    now = clock.now()
    values = {**values, "link": LINK_MARKER}
    await conn.execute(insert(outbox).values(
        id=uuid.uuid4(), workspace_id=None, invite_id=None, to_address=to, subject=subject[:300],
        body_text=_templates().get_template(f"{template}.txt").render(values),
        body_html=_templates().get_template(f"{template}.html").render(values),
        sealed_secret=seal(key, link_path) if link_path else None, status="pending",
        attempts=0, next_attempt_at=now, created_at=now,
    ))
    conn.info["mail_queued"] = True


async def enqueue_invite(
    conn: AsyncConnection, *, email: InviteEmail, token: str, workspace_id: uuid.UUID,
    invite_id: uuid.UUID, key: str, first: bool = False,
) -> None:
    """Queue the invite email; any earlier unsent one for this invite is withdrawn (unless this
    is the invite's `first` email: there is none)."""
    now = clock.now()
    if not first:
        await conn.execute(
            update(outbox)
            .where(outbox.c.invite_id == invite_id, outbox.c.status == "pending")
            .values(status="failed", sealed_secret=None, last_error="superseded by a newer email")
        )
    values = {
        "workspace": email.workspace,
        "inviter": email.inviter,
        "role": email.role,
        "article": "an" if email.role[0] in "aeiou" else "a",
        "expires": email.expires_at.strftime("%d %B %Y at %H:%M UTC"),
        "accept_url": LINK_MARKER,
    }
    await conn.execute(insert(outbox).values(
        id=uuid.uuid4(), workspace_id=workspace_id, invite_id=invite_id, to_address=email.to,
        # No name a person chose (a service client's was registered by the operator), and the
        # workspace's quoted: a subject cannot pose as a brand's or an address's message.
        subject=(f"{email.inviter_email or email.inviter} invited you to "
                 f"{quoted(email.workspace)} on Workspaces")[:300],
        body_text=_templates().get_template("invite.txt").render(values),
        body_html=_templates().get_template("invite.html").render(values),
        sealed_secret=seal(key, token), status="pending", attempts=0,
        next_attempt_at=now, created_at=now,
    ))
    conn.info["mail_queued"] = True  # the request boundary wakes the delivery loop on commit
