"""Keep a local SQLite copy of every workspace's members (workspace_id, user_id, email, role)
from Workspaces' events: webhooks as they happen, and the instance feed at start and every
so often, so that nothing is missed while this program was stopped.

    MIRROR_WEBHOOK_SECRET=whsec_... MIRROR_CLIENT_ID=wsc_... MIRROR_CLIENT_SECRET=wscs_... \\
        python examples/membership_mirror/mirror.py --url https://workspaces.example.com \\
        --db mirror.sqlite --port 8088

Every webhook is verified with the `standardwebhooks` package; an event is applied once (its
`id` is kept, in the same transaction as its effect); webhooks may arrive out of order, so
each membership and each address keeps the time of the change it shows, and an older change
is ignored. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from standardwebhooks import Webhook, WebhookVerificationError

log = logging.getLogger("membership_mirror")

VERSION = 1  # the payload version this mirror understands


# Where the events come from when catching up: the feed, read with a stored cursor.

@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    has_more: bool


class Feed(Protocol):
    def read(self, after: str | None) -> Page:
        """Events after the cursor `after` (None: from the oldest kept), oldest first."""


class FeedError(Exception):
    """The feed could not be read; `code` is the error's code when the feed gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Tokens(Protocol):
    def token(self, *, fresh: bool = False) -> str:
        """An access token for Workspaces' API (`fresh`: not the one held, which was refused)."""


class ClientCredentials:
    """The mirror's service credential: a client registered with the scope `events:read`, whose
    access token comes from the token endpoint (the client_credentials grant) and is asked for
    again shortly before it expires."""

    MARGIN = 30.0  # seconds before its expiry a token is replaced

    def __init__(self, base_url: str, client_id: str, client_secret: str,
                 scope: str = "events:read") -> None:
        self.url = _base(base_url) + "/oauth/token"
        self.scope = scope
        # RFC 6749 2.3.1: each part form-encoded, then HTTP Basic.
        pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
        self.basic = "Basic " + base64.b64encode(pair.encode()).decode()
        self.held: tuple[str, float] | None = None  # the token, and when to replace it

    def token(self, *, fresh: bool = False) -> str:
        if self.held is not None and not fresh and time.monotonic() < self.held[1]:
            return self.held[0]
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "scope": self.scope}).encode()
        request = urllib.request.Request(self.url, data=form, method="POST", headers={  # noqa: S310
            "Authorization": self.basic, "Content-Type": "application/x-www-form-urlencoded"})
        body = _json(request, "the token endpoint")
        expires = float(body.get("expires_in", 60))
        self.held = (str(body["access_token"]),
                     time.monotonic() + max(expires - self.MARGIN, expires / 2))
        return self.held[0]


def _base(url: str) -> str:
    """Workspaces' BASE_URL, without a trailing slash; http or https only."""
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


def _json(request: urllib.request.Request, what: str) -> dict[str, Any]:
    """The JSON a request answers; FeedError with the error's code for a refusal (our API's
    `{"error": {"code", "message"}}`, or OAuth's `{"error", "error_description"}`)."""
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (https or http)
            body: dict[str, Any] = json.load(answer)
            return body
    except urllib.error.HTTPError as refused:
        try:
            error = json.load(refused)["error"]
        except (ValueError, KeyError, TypeError):
            raise FeedError(f"{what} answered {refused.code}") from None
        if isinstance(error, dict):
            raise FeedError(error.get("message", f"{what} refused"), error.get("code")) from None
        raise FeedError(f"{what} refused: {error}", str(error)) from None
    except (urllib.error.URLError, OSError, ValueError) as failed:
        raise FeedError(f"{what} could not be read: {failed}") from None


class HttpFeed:
    """The instance feed over HTTP, `GET /api/events`, read with a service credential."""

    def __init__(self, base_url: str, tokens: Tokens, limit: int = 100) -> None:
        self.url = _base(base_url) + "/api/events"
        self.tokens = tokens
        self.limit = limit

    def read(self, after: str | None) -> Page:
        query = {"limit": str(self.limit), **({"after": after} if after is not None else {})}
        fresh = False
        while True:
            request = urllib.request.Request(  # noqa: S310 (the URL's scheme was checked)
                f"{self.url}?{urllib.parse.urlencode(query)}",
                headers={"Authorization": f"Bearer {self.tokens.token(fresh=fresh)}"})
            try:
                body = _json(request, "the feed")
            except FeedError as error:  # a token refused (revoked, or a key retired): once more
                if error.code != "invalid_token" or fresh:
                    raise
                fresh = True
                continue
            return Page(body["items"], body["next_cursor"], body["has_more"])


class CliFeed:
    """The instance feed as an operator reads it on the server: `workspaces events list
    --json` (DATABASE_URL in the environment names the database), for a mirror without a
    service credential."""

    def __init__(self, command: Sequence[str] = ("workspaces",), limit: int = 100,
                 env: dict[str, str] | None = None) -> None:
        self.command = list(command)
        self.limit = limit
        self.env = {**os.environ, **(env or {})}

    def read(self, after: str | None) -> Page:
        args = [*self.command, "events", "list", "--json", "--limit", str(self.limit)]
        if after is not None:
            args += ["--after", after]
        run = subprocess.run(args, capture_output=True, text=True, check=False,  # noqa: S603
                             env=self.env)
        try:
            body = json.loads(run.stdout)
        except ValueError:
            raise FeedError(f"`{' '.join(args[:3])}` failed: {run.stderr.strip()}") from None
        if not body.get("ok"):
            error = body.get("error", {})
            raise FeedError(error.get("message", "the feed refused"), error.get("code"))
        return Page(body["items"], body["next_cursor"], body["has_more"])


# The copy.

class Unsupported(Exception):
    """An event of a payload version this mirror does not know: stop rather than misread."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS memberships (
    workspace_id TEXT NOT NULL, user_id TEXT NOT NULL,
    role TEXT,                  -- NULL: removed (kept, so an older change cannot bring it back)
    changed_at INTEGER NOT NULL, -- microseconds since the epoch of the change shown
    PRIMARY KEY (workspace_id, user_id));
CREATE TABLE IF NOT EXISTS accounts (
    user_id TEXT PRIMARY KEY, email TEXT NOT NULL, changed_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS deleted_workspaces (workspace_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS seen (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, came_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT);
CREATE VIEW IF NOT EXISTS members AS
    SELECT m.workspace_id, m.user_id, a.email, m.role
    FROM memberships m JOIN accounts a ON a.user_id = m.user_id
    WHERE m.role IS NOT NULL AND a.deleted = 0;
"""


def _micros(occurred_at: str) -> int:
    at = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
    return int(at.timestamp()) * 1_000_000 + at.microsecond


class Mirror:
    """The `members` view of an SQLite file, and how each event changes it. Safe to share
    between threads: one transaction at a time."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        # A power cut may lose the last commits (not a crash of this program): the cursor
        # goes back with them, so the next catch-up reads them again.
        self._db.executescript("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def members(self) -> set[tuple[str, str, str, str]]:
        with self._lock:
            return set(self._db.execute(
                "SELECT workspace_id, user_id, email, role FROM members").fetchall())

    def cursor(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = 'cursor'").fetchone()
        return row[0] if row else None

    def came_by(self) -> dict[str, int]:
        """How many events were applied from each source (webhook, feed)."""
        with self._lock:
            return dict(self._db.execute("SELECT came_by, count(*) FROM seen GROUP BY came_by"))

    def apply(self, event: dict[str, Any], came_by: str) -> bool:
        """Apply one event; False if it was applied before (a duplicate)."""
        with self._transaction() as db:
            return self._apply(db, event, came_by)

    def apply_page(self, page: Page) -> int:
        """Apply a page of the feed and store its cursor, together; how many were new."""
        with self._transaction() as db:
            new = sum(self._apply(db, event, "feed") for event in page.items)
            if page.next_cursor is not None:
                db.execute("INSERT INTO state (key, value) VALUES ('cursor', ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           (page.next_cursor,))
        return new

    def _apply(self, db: sqlite3.Connection, event: dict[str, Any], came_by: str) -> bool:
        if event.get("version") != VERSION:
            raise Unsupported(f"event {event.get('id')} has payload version "
                              f"{event.get('version')}; this mirror reads {VERSION}: upgrade it")
        if db.execute("INSERT INTO seen (event_id, type, came_by) VALUES (?, ?, ?) "
                      "ON CONFLICT DO NOTHING",
                      (event["id"], event["type"], came_by)).rowcount == 0:
            return False
        at, data, kind = _micros(event["occurred_at"]), event["data"], event["type"]
        if kind in ("member.added", "member.role_changed", "member.removed"):
            member = data["member"]
            role = None if kind == "member.removed" else member["role"]
            self._membership(db, event["workspace"]["id"], member["user_id"], role, at)
            self._address(db, member["user_id"], member["email"], at)
        elif kind == "workspace.deleted":
            db.execute("INSERT INTO deleted_workspaces VALUES (?) ON CONFLICT DO NOTHING",
                       (event["workspace"]["id"],))
            db.execute("DELETE FROM memberships WHERE workspace_id = ?",
                       (event["workspace"]["id"],))
        elif kind in ("user.created", "user.email_changed"):
            self._address(db, data["user"]["id"], data["user"]["email"], at)
        elif kind == "user.deleted":
            self._address(db, data["user"]["id"], data["user"]["email"], at)
            db.execute("UPDATE accounts SET deleted = 1 WHERE user_id = ?", (data["user"]["id"],))
            db.execute("DELETE FROM memberships WHERE user_id = ?", (data["user"]["id"],))
        # Any other type (invites, renames, webhook.test...) changes no membership.
        return True

    @staticmethod
    def _membership(db: sqlite3.Connection, workspace_id: str, user_id: str,
                    role: str | None, at: int) -> None:
        """Show `role` (None: removed) unless a later change is shown, or the workspace or
        the account is gone (a late webhook must not bring either back)."""
        gone = db.execute(
            "SELECT EXISTS (SELECT 1 FROM deleted_workspaces WHERE workspace_id = ?) OR "
            "EXISTS (SELECT 1 FROM accounts WHERE user_id = ? AND deleted = 1)",
            (workspace_id, user_id)).fetchone()[0]
        if gone:
            return
        db.execute(
            "INSERT INTO memberships (workspace_id, user_id, role, changed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (workspace_id, user_id) DO UPDATE SET "
            "role = excluded.role, changed_at = excluded.changed_at "
            "WHERE excluded.changed_at >= memberships.changed_at",
            (workspace_id, user_id, role, at))

    @staticmethod
    def _address(db: sqlite3.Connection, user_id: str, email: str, at: int) -> None:
        """The account's address as of `at`, unless a later one is known."""
        db.execute(
            "INSERT INTO accounts (user_id, email, changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, "
            "changed_at = excluded.changed_at WHERE excluded.changed_at > accounts.changed_at",
            (user_id, email, at))


# The program: a webhook receiver and a catch-up loop over one mirror.

class Consumer:
    """Receives webhooks on `host:port` and reads the feed at start and every `every`
    seconds."""

    def __init__(self, mirror: Mirror, feed: Feed, secret: str, *, host: str = "127.0.0.1",
                 port: int = 8088, every: float = 60.0) -> None:
        self.mirror, self.feed, self.every = mirror, feed, every
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler(mirror, Webhook(secret)))
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def catch_up(self) -> int:
        """Read the feed from the stored cursor until it has nothing more; how many events
        were new to the mirror."""
        new = 0
        while True:
            page = self.feed.read(self.mirror.cursor())
            new += self.mirror.apply_page(page)
            if not page.has_more:
                return new

    def start(self) -> None:
        """Listen first (a webhook sent meanwhile is not refused), then catch up."""
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._catch_up_every, daemon=True)]
        self._threads[0].start()
        log.info("listening on port %d; caught up: %d new events", self.port, self.catch_up())
        self._threads[1].start()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join()

    def _catch_up_every(self) -> None:
        while not self._stop.wait(self.every):
            try:
                new = self.catch_up()
            except (FeedError, Unsupported) as error:  # said, and tried again next time
                log.error("catching up failed: %s", error)
            else:
                if new:
                    log.info("caught up: %d new events", new)


def _handler(mirror: Mirror, hook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                event = hook.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as error:
                log.warning("refused a message: %s", error)
                return self._answer(400)
            try:
                applied = mirror.apply(event, "webhook")
            except Unsupported as error:  # retried by the sender until this is upgraded
                log.error("%s", error)
                return self._answer(500)
            log.info("%s %s %s", event["id"], event["type"],
                     "applied" if applied else "seen before")
            return self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Receiver


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="mirror.sqlite", help="The mirror's SQLite file.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to receive webhooks on.")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--every", type=float, default=60.0,
                        help="Seconds between two readings of the feed.")
    parser.add_argument("--url", help="Workspaces' BASE_URL: read the instance feed over HTTP "
                                      "with the service credential in MIRROR_CLIENT_ID and "
                                      "MIRROR_CLIENT_SECRET.")
    parser.add_argument("--workspaces", default="workspaces",
                        help="Without --url: the workspaces command that reads the feed on "
                             "the server (run with this environment).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    secret = os.environ.get("MIRROR_WEBHOOK_SECRET")
    if not secret:
        parser.error("set MIRROR_WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)")
    feed: Feed = CliFeed(args.workspaces.split())
    if args.url:
        client_id = os.environ.get("MIRROR_CLIENT_ID")
        client_secret = os.environ.get("MIRROR_CLIENT_SECRET")
        if not client_id or not client_secret:
            parser.error("with --url, set MIRROR_CLIENT_ID and MIRROR_CLIENT_SECRET to a "
                         "client's credential with the scope events:read")
        feed = HttpFeed(args.url, ClientCredentials(args.url, client_id, client_secret))
    consumer = Consumer(Mirror(args.db), feed, secret,
                        host=args.host, port=args.port, every=args.every)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    consumer.start()
    done.wait()
    consumer.stop()
    consumer.mirror.close()


if __name__ == "__main__":
    main()
