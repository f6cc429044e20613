"""The server's log: one dictConfig for the application's loggers (`workspaces.*`), uvicorn's
and the access lines, written to stderr as text for people or as JSON lines for collectors.

Every line written while a request is served carries its id (`REQUEST_ID`, set by
web/middleware.py). Tokens are redacted by a filter on the handler rather than on loggers: a
handler sees the records propagated from every logger (uvicorn's, SQLAlchemy's, ours), a
logger's filter only that logger's own. A record that shows a link on purpose (EMAIL_BACKEND
=console writes each email to the log, in development) is marked `extra=UNREDACTED`.
"""

from __future__ import annotations

import json
import logging
import random
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from workspaces.tokens import TOKEN_FORM

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]  # LOG_LEVEL
LogFormat = Literal["text", "json"]  # LOG_FORMAT

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# X-Request-ID as sent (by a proxy, or a client following its request across services) when it
# is this; anything else is replaced, since it goes into every log line and a response header.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
UNREDACTED = {"unredacted": True}
# Marks a record built only of parts already passed through `redact` (the access line): Redact
# need not read it again.
REDACTED_PARTS = "redacted_parts"
# The fields of an access line (web/middleware.py), given as `extra`; JSON lines show them.
ACCESS_FIELDS = ("method", "path", "query", "status", "duration_ms", "client")

REDACTED = "[redacted]"
# The connection parameters of libpq whose value is a secret; a file's path (sslkey, passfile)
# is not.
SECRET_PARAMETERS = ("password", "sslpassword", "oauth_client_secret")

# Each pattern with what it needs somewhere in a text to match, lower-cased: `redact` runs only
# the patterns whose needs a text has (most access lines' paths, `/api/workspaces/x/members`,
# have none: 0.4 against 7 us; a mailed link's path runs the first alone).
_SECRETS = (
    # A mailed link's token: /invites/ (and /api/invites/), /reset/, /verify/, /email/ (not
    # /api/auth/email/confirm nor /account/email/cancel), also percent-encoded, as in a sign-in
    # page's ?next=.
    (re.compile(r"((?:/|%2[Ff])(?:invites|reset|verify|email)(?:/|%2[Ff]))(?!(?:confirm|cancel)\b)"
                r"(?:(?!%2[Ff])[^/?#&\s\"'<>])+"), r"\1" + REDACTED,
     ("invites", "reset", "verify", "email")),
    # A value already shown as [redacted] (a URL rendered by `shown_url`) is left as it is, so
    # that what follows it (the closing parenthesis of "(database ...)") stays.
    (re.compile(r"((?:^|[?&])(?:token|access_token|code|key|secret|"
                + "|".join(SECRET_PARAMETERS) + r")=)(?!" + re.escape(REDACTED)
                + r")[^&#\s\"']+", re.I),
     r"\1" + REDACTED, ("=",)),
    (re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.I), r"\1" + REDACTED, ("bearer",)),
    # A JWT wherever it stands (an ID token sent back as a logout's id_token_hint, in a query):
    # signed claims about a person (email, name, workspaces), which some apps accept as proof.
    (re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
     REDACTED, ("eyj",)),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/:@\s]*:)[^@\s/]+@", re.I), r"\1" + REDACTED + "@",
     ("://",)),
    # A Cookie or Set-Cookie header (sessions), as text or as an ASGI header pair.
    (re.compile(r"(\b(?:set-)?cookie\b['\"]?\s*[:,]\s*b?['\"]?)[^'\"\r\n]+", re.I),
     r"\1" + REDACTED, ("cookie",)),
)


def new_request_id(sent: str | None) -> str:
    """The id of a request: the X-Request-ID it was sent with when well formed, else a new one."""
    if sent is not None and WELL_FORMED_ID.fullmatch(sent):
        return sent
    # 128 random bits, as uuid4's 32 hex digits: an id is unique, not secret (every response
    # shows its own), so Python's generator serves (reseeded in a forked child) without
    # uuid4's system call for each request.
    return f"{random.getrandbits(128):032x}"


_TOKEN_LONG = re.compile(TOKEN_FORM)  # what a token-shaped string needs: a run this long


def redact(text: str) -> str:
    """`text` without the secrets it may show: mailed links' tokens, bearer tokens, JWTs,
    cookies, the password of a URL, and any token-shaped string (in a path or query no
    pattern above knows)."""
    if text.isascii():
        lower = text.lower()
        for pattern, replacement, needs in _SECRETS:
            if any(needed in lower for needed in needs):
                text = pattern.sub(replacement, text)
    else:  # re.I matches "cookİe" as "cookie"; lower() does not: run every pattern
        for pattern, replacement, _ in _SECRETS:
            text = pattern.sub(replacement, text)
    if _TOKEN_LONG.search(text) is None:
        return text
    return _token_shaped().sub(REDACTED, text)


@cache
def _token_shaped() -> re.Pattern[str]:
    """A string of the form `security.new_token` makes (`wst_` or another prefix, then the
    token), standing alone."""
    alone = r"(?:(?<![A-Za-z0-9_-])|(?<=%[0-9A-Fa-f]{2}))"  # also after a percent-encoded /
    # With a capital letter, as all but a vanishing share of random tokens have: our own names
    # of that length (constraints, indexes: lower-case) stay readable in the log.
    capital = r"(?=[A-Za-z0-9_-]*[A-Z])"
    return re.compile(rf"{alone}(?:[A-Za-z]+_)?{capital}{TOKEN_FORM}(?![A-Za-z0-9_-])")


@dataclass(frozen=True)
class ShownUrl:
    """A database URL rendered for people: `read` shows each secret as [redacted] (a line a
    person reads, a value stored); `paste` leaves each out (a command printed to be run, where
    [redacted] would become the password); `secret` says whether there was one."""

    read: str
    paste: str
    secret: bool


# scheme://[user[:password]@]host[:port]/name or sqlite:///path, of plain characters: rendered
# without loading SQLAlchemy (a quick `db status` does not), as its rendering would be.
_PLAIN_URL = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+]*)://(?:(?P<user>[A-Za-z0-9._-]+)"
    r"(?::(?P<password>[^@/?#%]*))?(?=@))?(?P<rest>@?[A-Za-z0-9.-]+(?::[0-9]+)?/[A-Za-z0-9._-]+)"
    r"|(?P<sqlite>sqlite(?:\+[a-z]+)?:///[\w./-]+)")
_MARK = "\x00"  # stands for a secret while SQLAlchemy renders; no URL carries a NUL


def shown_url(raw: str) -> ShownUrl:
    """The one rendering of a database URL for people: its password (`user:pass@`, also a
    password holding an '@' that spilled into the host) and every secret parameter of the query
    (`?password=`, `?sslpassword=`, however percent-encoded their names) hidden. Raises
    ValueError for a string that is no URL."""
    plain = _PLAIN_URL.fullmatch(raw.strip())
    if plain:
        if plain["sqlite"]:
            return ShownUrl(plain["sqlite"], plain["sqlite"], False)
        start, password = f"{plain['scheme']}://{plain['user'] or ''}", plain["password"]
        hidden = f":{REDACTED}" if password else "" if password is None else ":"
        return ShownUrl(start + hidden + plain["rest"], start + plain["rest"], bool(password))
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw.strip())
    except ArgumentError as exc:
        raise ValueError("not a URL") from exc
    password = url.password
    if url.host and "@" in url.host:  # the password's '@' ended it early: the rest is secret
        url, password = url._replace(host=url.host.rpartition("@")[2]), _MARK
    secrets = [key for key in url.query if key.lower() in SECRET_PARAMETERS]
    read = url._replace(password=_MARK if password else password).update_query_dict(
        dict.fromkeys(secrets, _MARK))
    paste = url._replace(password=None).difference_update_query(secrets)
    return ShownUrl(read.render_as_string(hide_password=False).replace("%00", REDACTED),
                    paste.render_as_string(hide_password=False),
                    bool(password or secrets))


class Redact(logging.Filter):
    """Redacts every record a handler writes: its message, its exception, an access line's path
    and query; except records marked UNREDACTED, and records marked REDACTED_PARTS (made only
    of redacted parts)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "unredacted", False) or getattr(record, REDACTED_PARTS, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: shown as they are
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for name in ("path", "query"):
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, redact(value))
        return True


def _request_id(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or REQUEST_ID.get()


class TextFormatter(logging.Formatter):
    """uvicorn's look, `INFO:     message`, then the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname
        line = f"{level}:{' ' * (8 - len(level))} {record.getMessage()}"
        if request_id := _request_id(record):
            line += f" request_id={request_id}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, request_id, an
    access line's fields, and the exception (`exc`) as one string."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        line |= {name: getattr(record, name) for name in ACCESS_FIELDS if hasattr(record, name)}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def line_formatter(form: LogFormat) -> logging.Formatter:
    """The formatter of the server's log, made where `config` is applied (in each worker).

    Our lines show no record's thread or process: records stop collecting them, as the Logging
    HOWTO's "Optimization" section describes (about 1.5 of an access line's 7 us). The caller is
    still looked up: without it a record drops its `stack_info`."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    return JsonFormatter() if form == "json" else TextFormatter()


def config(level: LogLevel, form: LogFormat) -> dict[str, Any]:
    """The dictConfig of `serve` (LOG_LEVEL, LOG_FORMAT), given to uvicorn as `log_config`:
    the supervisor of `--workers N` and each worker apply it.

    LOG_LEVEL applies to the application and uvicorn; other libraries write warnings and worse
    (at DEBUG some would write SQL parameters or whole SMTP conversations). uvicorn's own access
    log stays off: web/middleware.py writes one access line per request to `workspaces.access`.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,  # the application's loggers exist by then
        "filters": {"redact": {"()": f"{__name__}.Redact"}},
        "formatters": {"line": {"()": f"{__name__}.line_formatter", "form": form}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "line", "filters": ["redact"]}},
        "loggers": {
            "workspaces": {"level": level, "handlers": [], "propagate": True},
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
        "root": {"level": max(level, "WARNING", key=logging.getLevelName),
                 "handlers": ["stderr"]},
    }
