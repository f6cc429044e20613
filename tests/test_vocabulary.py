"""Roles and invite statuses: each rule in one place, and the SQL form of a rule agrees with
its Python form."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, select

from workspaces.errors import InvalidInput
from workspaces.invites import statuses
from workspaces.roles import RANK, ROLES, can_grant, check_role


def test_roles_are_ordered_owner_admin_member() -> None:
    assert ROLES == ("owner", "admin", "member")
    assert RANK["owner"] > RANK["admin"] > RANK["member"]


@pytest.mark.parametrize(("actor", "role"), list(itertools.product(ROLES, ROLES)))
def test_the_role_ceiling(actor: str, role: str) -> None:
    assert can_grant(actor, role) == (ROLES.index(actor) <= ROLES.index(role))


@pytest.mark.parametrize("role", ["OWNER", "owner ", "", "superuser"])
def test_an_unknown_role_is_invalid(role: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_role(role)
    assert caught.value.code == "invalid_role"


def test_the_sql_and_python_forms_of_the_effective_status_agree() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    rows = [(n, stored, now + timedelta(seconds=offset))
            for n, (stored, offset) in enumerate(itertools.product(
                statuses.STORED, (-3600, -1, 0, 1, 3600)))]
    table = Table("invites", MetaData(), Column("id", Integer, primary_key=True),
                  Column("status", String), Column("expires_at", DateTime(timezone=True)))
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"id": n, "status": s, "expires_at": e} for n, s, e in rows])
        for status in statuses.STATUSES:
            in_sql = set(conn.execute(select(table.c.id).where(
                statuses.where(status, table.c.status, table.c.expires_at, now))).scalars())
            in_python = {n for n, stored, expires in rows
                         if statuses.effective(stored, expires, now) == status}
            assert in_sql == in_python, status
    engine.dispose()
