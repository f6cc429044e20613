"""docs/production-migrations.md against the code: every error code the toolkit can raise has
a row in its table, and every row names a code that exists."""

from __future__ import annotations

import re

from tests.conftest import REPO
from workspaces.schema.errors import _CONNECTION_HINTS, _SQLSTATES

RUNBOOK = REPO / "docs" / "production-migrations.md"
SOURCES = [*(REPO / "src/workspaces/schema").glob("*.py"),
           *(REPO / "src/workspaces/cli").glob("*.py"), REPO / "src/workspaces/db.py"]
# Built with an f-string (`{command}_refused`) or raised outside the toolkit's modules.
INDIRECT = {"deploy_refused", "repair_refused", "rollback_refused", "complete_refused",
            "schema_out_of_date", "usage"}


def raised_codes() -> set[str]:
    codes = set(INDIRECT)
    for path in SOURCES:
        source = path.read_text()
        codes |= set(re.findall(r'(?:SchemaError|Problem)\(\s*"([a-z_]+)"', source))
        codes |= set(re.findall(r'\bcode="([a-z_]+)"', source))
    codes |= {code for code, _why, _fix in _SQLSTATES.values()}
    codes |= {code for _pattern, code, _why, _fix in _CONNECTION_HINTS}
    return codes


def documented_codes() -> set[str]:
    table = RUNBOOK.read_text().split("## Error codes", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_every_error_code_has_a_row_in_the_runbook() -> None:
    assert raised_codes() - documented_codes() == set()


def test_every_row_of_the_runbook_names_a_real_code() -> None:
    assert documented_codes() - raised_codes() == set()


def test_the_runbook_quotes_no_timing_of_its_own() -> None:
    """Timings live in docs/benchmarks.md: two copies drift apart (they did)."""
    assert not re.search(r"\b\d+(\.\d+)? ?(s|ms|MiB)\b", RUNBOOK.read_text())
