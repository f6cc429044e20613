"""The schema toolkit's commands: status, deploy, resolve, verify, repair, rollback, baseline,
execute, sql and new. Each returns a Result (exit code, lines for people, data for machines).

One facade over modules by concern: core.py (engines, the lock, the status report), apply.py
(deploy, rollback, execute), decide.py (resolve, baseline), repair.py (verify, repair),
author.py (new, sql).
"""

from __future__ import annotations

from workspaces.schema.apply import Applying, serving_refusal
from workspaces.schema.author import Authoring
from workspaces.schema.core import Result
from workspaces.schema.decide import Deciding
from workspaces.schema.repair import Repairing

__all__ = ["Result", "Toolkit", "serving_refusal"]


class Toolkit(Applying, Deciding, Repairing, Authoring):
    """Every command of `workspaces db`, on one database and one set of migrations."""
