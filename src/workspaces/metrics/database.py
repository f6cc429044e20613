"""The facts every instance shares, read from the database when scraped: the schema's state
(what `workspaces db status` reports), the email outbox, webhook deliveries, and what this
build expects.

Each instance reads the same database, so each exports the same values: alert rules take max()
over instances. Nothing here is kept between reads; GET /metrics caches a reading for a few
seconds (web/metrics.py). No prometheus_client at import: `db status` stays quick to start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workspaces import __version__, clock
from workspaces.errors import Exit, SchemaError
from workspaces.schema import ledger
from workspaces.schema.report import PENDING as PENDING_STATE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prometheus_client.metrics_core import Metric
    from sqlalchemy import Connection

    from workspaces.schema.report import Report
    from workspaces.schema.revisions import Migration
    from workspaces.schema.serving import ServingStatus

DATABASE_UP = "workspaces_database_up"
SCHEMA_OK = "workspaces_schema_ok"
PENDING = "workspaces_schema_pending_migrations"
FAILED = "workspaces_schema_failed_migrations"
DRIFT = "workspaces_schema_drift_objects"
DIVERGED = "workspaces_schema_diverged_migrations"
READY = "workspaces_ready"
OUTBOX = "workspaces_outbox_emails"
OLDEST_PENDING = "workspaces_outbox_oldest_pending_age_seconds"
WEBHOOK_BACKLOG = "workspaces_webhook_backlog"
WEBHOOK_OLDEST = "workspaces_webhook_oldest_pending_age_seconds"
WEBHOOK_LAG = "workspaces_webhook_due_lag_seconds"
WEBHOOK_DISABLED = "workspaces_webhook_endpoints_disabled"
BUILD = "workspaces_build_info"


@dataclass(frozen=True)
class Fact:
    """One gauge sample: its metric's name and help, the value, the labels."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def schema_facts(report: Report | None) -> list[Fact]:
    """The schema's state as `db status` sees it; None: the database did not answer (then
    only up and ok are exported, both 0: the rest is unknown)."""
    facts = [
        Fact(DATABASE_UP, "1 when the database answered the schema status check.",
             int(report is not None)),
        Fact(SCHEMA_OK, "1 when the schema is what this code expects (`workspaces db status` "
             "exits 0).", int(report is not None and report.exit_code == Exit.OK)),
    ]
    if report is None:
        return facts
    worst = [p.exit_code for p in report.problems]
    return [*facts,
            Fact(PENDING, "Migrations of this code not applied to the database.",
                 len(report.in_state(PENDING_STATE))),
            Fact(FAILED, "Migrations recorded as failed: they block deploys.",
                 len(report.in_state(ledger.FAILED))),
            Fact(DRIFT, "Objects recorded as applied that are missing or differ (a table with "
                 "its indexes counts once), and partly applied migrations.",
                 worst.count(Exit.DRIFT)),
            Fact(DIVERGED, "Migrations the database records that this code lacks, or whose "
                 "file changed after it was applied.", worst.count(Exit.DIVERGED))]


def build_facts(migrations: Sequence[Migration]) -> list[Fact]:
    head = migrations[-1].id if migrations else ""
    return [Fact(BUILD, "This build: its version and the newest migration it expects.", 1,
                 (("version", __version__), ("head_migration", head)))]


def outbox_facts(conn: Connection) -> list[Fact]:
    """Emails by outbox status, and how long the oldest one waiting for delivery has waited."""
    from sqlalchemy import func, select

    from workspaces.models import OUTBOX_STATUSES, outbox

    rows = conn.execute(select(outbox.c.status, func.count(), func.min(outbox.c.created_at))
                        .group_by(outbox.c.status)).all()
    counts = dict.fromkeys(OUTBOX_STATUSES, 0)
    oldest = None
    for status, count, first in rows:
        counts[status] = int(count)
        if status == "pending":
            oldest = first
    age = (clock.now() - clock.aware(oldest)).total_seconds() if oldest is not None else 0.0
    return [
        *(Fact(OUTBOX, "Emails in the outbox by status: pending (waiting or retrying), sent, "
               "logged (EMAIL_BACKEND=console), failed (given up).", count,
               (("status", status),)) for status, count in counts.items()),
        Fact(OLDEST_PENDING, "Seconds since the oldest email still pending was queued (0: none "
             "pending).", max(0.0, age)),
    ]


def webhook_facts(conn: Connection) -> list[Fact]:
    """Deliveries waiting for enabled endpoints (a disabled endpoint's wait for it to be enabled
    again, and are not counted), how long the oldest has waited, how late the loop is with
    what is due, and how many endpoints are disabled."""
    from sqlalchemy import func, select

    from workspaces.models import webhook_deliveries as d
    from workspaces.models import webhook_endpoints as e

    now = clock.now()
    count, first, due = conn.execute(
        select(func.count(), func.min(d.c.created_at),
               func.min(d.c.next_attempt_at).filter(d.c.next_attempt_at <= now))
        .select_from(d.join(e, e.c.id == d.c.endpoint_id))
        .where(d.c.status == "pending", e.c.enabled.is_(True))).one()
    disabled = conn.execute(select(func.count()).select_from(e)
                            .where(e.c.enabled.is_(False))).scalar_one()

    def since(moment: Any) -> float:
        return max(0.0, (now - clock.aware(moment)).total_seconds()) if moment else 0.0

    return [
        Fact(WEBHOOK_BACKLOG, "Webhook deliveries pending for enabled endpoints (due, or "
             "waiting for a retry).", int(count)),
        Fact(WEBHOOK_OLDEST, "Seconds since the oldest pending delivery of an enabled "
             "endpoint was queued (0: none pending); retries of a failing receiver keep it "
             "high for up to the retry schedule's length.", since(first)),
        Fact(WEBHOOK_LAG, "Seconds the oldest due delivery has waited past its attempt time "
             "(0: the delivery loop is keeping up).", since(due)),
        Fact(WEBHOOK_DISABLED, "Webhook endpoints disabled (by an owner, by a 410 Gone, or "
             "after failing for 5 days).", int(disabled)),
    ]


@dataclass(frozen=True)
class Reading:
    """One look at the database: its schema report (None: it did not answer) and the facts
    of the outbox and the webhook deliveries (left out when they could not be read)."""

    report: Report | None
    outbox: list[Fact]


async def read(status: ServingStatus) -> Reading:
    """The schema status, the outbox and the webhook deliveries, each on a connection of its
    own."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        report = await status.report()
    except SchemaError:
        return Reading(None, [])
    facts: list[Fact] = []
    for read_facts in (outbox_facts, webhook_facts):
        try:
            facts += await status.read(read_facts)
        except (SQLAlchemyError, OSError):  # a table is missing (the schema facts say so)
            continue  # or the database left
    return Reading(report, facts)


def exposition(facts: Iterable[Fact]) -> bytes:
    """The facts in Prometheus' text format (prometheus_client's own rendering)."""
    from prometheus_client import generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    families: dict[str, GaugeMetricFamily] = {}
    for fact in facts:
        family = families.get(fact.name)
        if family is None:
            family = families[fact.name] = GaugeMetricFamily(
                fact.name, fact.help, labels=[name for name, _ in fact.labels])
        family.add_metric([value for _, value in fact.labels], fact.value)

    class Facts(Collector):
        def collect(self) -> Iterator[Metric]:
            return iter(families.values())

    return generate_latest(Facts())
