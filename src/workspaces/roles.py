"""Roles in a workspace, their order (owner > admin > member) and the role ceiling.

The one home of these words: the database's CHECK constraints, the API's schemas, the services'
rules and the pages' menus all read them from here.
"""

from __future__ import annotations

from typing import Literal, get_args

from workspaces.errors import InvalidInput

Role = Literal["owner", "admin", "member"]
ROLES: tuple[str, ...] = get_args(Role)  # highest first
RANK = {role: len(ROLES) - index for index, role in enumerate(ROLES)}
# The rank a service client (a product's backend) acts with in a workspace: never owner, so it
# cannot grant or take ownership, hand the workspace over or delete it.
SERVICE_ROLE: Role = "admin"


def check_role(role: str) -> str:
    """`role` if it is one; 422 `invalid_role` otherwise."""
    if role not in RANK:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.", code="invalid_role",
                           field="role")
    return role


def at_least(role: str, required: str) -> bool:
    """Whether `role` ranks at or above `required`."""
    return RANK[role] >= RANK[required]


def can_grant(actor: str, role: str) -> bool:
    """The role ceiling: whoever acts on something that carries `role` (an invite, a member)
    must rank at least as high as that role."""
    return at_least(actor, role)
