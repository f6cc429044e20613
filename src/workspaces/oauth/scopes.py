"""The scopes a client may be given: the words of OpenID Connect and of our service API."""

from __future__ import annotations

from typing import Literal, get_args

UserScope = Literal["openid", "email", "profile", "offline_access", "workspaces", "workspace"]
ServiceScope = Literal["workspaces:read", "members:read", "members:write", "invites:write",
                       "events:read", "webhooks:write"]
Scope = UserScope | ServiceScope

USER_SCOPES: tuple[UserScope, ...] = get_args(UserScope)
SERVICE_SCOPES: tuple[ServiceScope, ...] = get_args(ServiceScope)
ALL_SCOPES: tuple[Scope, ...] = (*USER_SCOPES, *SERVICE_SCOPES)

# What a user's access token reaches in our API: the scopes a user consented to also open
# these parts of it (a user token acts as the user, within the user's own role).
USER_API_SCOPES: dict[UserScope, tuple[ServiceScope, ...]] = {
    "workspaces": ("workspaces:read", "members:read"),
    "workspace": ("workspaces:read", "members:read"),
}

# Shown on the consent page and under Connected apps: what granting the scope lets the app do.
DESCRIPTIONS: dict[Scope, str] = {
    "openid": "Know who you are when you sign in",
    "email": "See your email address",
    "profile": "See your name",
    "offline_access": "Stay signed in when you are not using it",
    "workspaces": "See the workspaces you belong to, your role in each, and their members",
    "workspace": "Know which workspace you pick, your role in it, and its members",
    "workspaces:read": "Read workspaces",
    "members:read": "Read members",
    "members:write": "Change and remove members",
    "invites:write": "Invite people and manage invitations",
    "events:read": "Read the event feed",
    "webhooks:write": "Manage webhook endpoints",
}


def parse(text: str | None) -> list[str]:
    """A space-separated scope parameter as a list without repeats, in the order given."""
    seen: dict[str, None] = {}
    for word in (text or "").split(" "):
        if word:
            seen.setdefault(word, None)
    return list(seen)


def unknown(scopes: list[str]) -> list[str]:
    return [scope for scope in scopes if scope not in ALL_SCOPES]
