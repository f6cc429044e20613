"""`workspaces serve`: check the schema (apply it on SQLite or with --migrate), then serve."""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from workspaces.cli.common import DatabaseUrl, Target, guard, open_toolkit
from workspaces.errors import Exit

if TYPE_CHECKING:
    from workspaces.settings import Settings

log = logging.getLogger("workspaces.serve")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(
        "--migrate", help="Apply pending migrations (under the deploy lock) before starting.",
    )] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the web server after checking the schema (SQLite: pending migrations are applied)."""
    import os

    from workspaces import logs, supervisor
    from workspaces.metrics import MULTIPROC_ENV

    # Ours to set, for this run's workers only (supervisor.py): prometheus_client decides when
    # first imported (here, with the application) whether counts go to files.
    os.environ.pop(MULTIPROC_ENV, None)
    from workspaces.app import check_settings, create_app
    from workspaces.schema.toolkit import serving_refusal
    from workspaces.settings import get_settings

    target = Target.of(database_url)  # before DATABASE_URL is set from it, below
    if database_url:
        os.environ["DATABASE_URL"] = database_url  # worker processes read settings again
        get_settings.cache_clear()
    base_notice = _follow_the_port(host, port)
    with guard(False):  # every setting checked before the schema is touched (--migrate)
        check_settings(get_settings())
        notices = [*_email_notice(get_settings()), *base_notice]
    # The server's log from here on (LOG_LEVEL, LOG_FORMAT); uvicorn applies it again in each
    # worker (and in the supervisor of several).
    log_level, log_format = get_settings().log_level, get_settings().log_format
    log_config = logs.config(log_level, log_format)
    logging.config.dictConfig(log_config)
    with guard(False, target):
        report = open_toolkit(database_url, False, say=log.info).check_for_serving(
            migrate=migrate, pooling=get_settings().database_pooling)
        if report.exit_code != Exit.OK:
            for problem in report.problems:
                print(f"[{problem.code}] {problem.message}", file=sys.stderr)
            # The question /readyz answers: can this code serve here? A table or column it
            # uses is missing: refuse. Drift it runs on (an index, the ledger, a checksum):
            # start, degraded, said in the log, /readyz and /metrics; refusing would turn a
            # missing index into an outage at the next restart of every replica.
            if not report.serves:
                raise serving_refusal(report)
            log.warning("starting degraded: the database has every table and column this "
                        "code uses, but db status exits %d (%s); fix: %s",
                        int(report.exit_code),
                        "; ".join(p.code for p in report.problems),
                        " ".join(target.steps(report.next_step)) or
                        "workspaces db status  # explains each problem")
    with guard(False):
        application = create_app()
    for level, line in notices:
        log.log(level, line)
    log.info("Serving on http://%s:%s (database %s)", host, port, report.database)
    if workers > 1:
        # The workers import the application afresh: this process, which the checks filled
        # with it, becomes their supervisor (the same process id), holding only uvicorn.
        sys.stdout.flush()
        sys.stderr.flush()
        argv = supervisor.command(host=host, port=port, workers=workers, level=log_level,
                                  form=log_format)
        os.execv(argv[0], argv)  # noqa: S606 (this interpreter, our own arguments)
    import uvicorn

    uvicorn.run(application, host=host, port=port, log_config=log_config, **supervisor.UVICORN)


def _follow_the_port(host: str, port: int) -> list[tuple[int, str]]:
    """Emailed links start with BASE_URL. Unset, it is where this server listens (workers read
    it from the environment); set to a loopback address on another port, it sends people to
    some other server: say so."""
    import os
    from urllib.parse import urlsplit

    from workspaces.settings import get_settings

    settings = get_settings()
    if "base_url" not in settings.model_fields_set:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        shown = f"[{shown}]" if ":" in shown else shown
        os.environ["BASE_URL"] = f"http://{shown}:{port}"
        get_settings.cache_clear()
        return []
    parts = urlsplit(settings.base_url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    named = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if loopback and named != port:
        return [(logging.WARNING, f"BASE_URL is {settings.base_url}, but this server listens "
                 f"on port {port}: emailed links will lead elsewhere. Unset BASE_URL, or set it "
                 f"to this server's public address.")]
    return []


def _email_notice(settings: Settings) -> list[tuple[int, str]]:
    """What `serve` logs about email at start: a loud warning when production may lose mail.

    Raises EmailMisconfigured for EMAIL_BACKEND=smtp without SMTP_URL.
    """
    from workspaces.db import parse_url

    if settings.email_mode == "smtp":
        return []
    if settings.email_backend or parse_url(settings.database_url).get_backend_name() == "sqlite":
        return [(logging.INFO, "EMAIL_BACKEND=console: emails are written to this log and sent "
                               "to nobody (development; set SMTP_URL to deliver them).")]
    return [(logging.WARNING, line) for line in (
        "EMAILS WILL NOT BE DELIVERED: SMTP_URL is not set, so EMAIL_BACKEND is console.",
        "Every email, invite link included, is written to this log and sent to nobody.",
        "The database is PostgreSQL, so this looks like production.",
        "To deliver emails: set SMTP_URL (smtp://user:pass@host:587 or smtps://host:465).",
        "If writing them to the log is intended: set EMAIL_BACKEND=console to say so.",
    )]


