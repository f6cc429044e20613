"""The server's log: JSON lines or text, the request id from header to log line to error body,
and no token in any line but the development emails that show their link on purpose."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import Cli, Sink, free_port, link_in, server_log, serving, spawn
from workspaces import logs
from workspaces.mail.delivery import console_text
from workspaces.security import new_token

TOKEN = "Zm9vYmFyYmF6cXV4cXV1eF9fLS0xMjM0NTY3ODkwYWJj"


@pytest.mark.parametrize(("line", "shown"), [
    (f"/invites/{TOKEN}/accept", "/invites/[redacted]/accept"),
    (f"POST /api/invites/{TOKEN}/decline?x=1", "POST /api/invites/[redacted]/decline?x=1"),
    (f"/reset/{TOKEN}", "/reset/[redacted]"),
    (f"/verify/{TOKEN}", "/verify/[redacted]"),
    (f"/email/{TOKEN}", "/email/[redacted]"),
    ("/api/auth/email/confirm", "/api/auth/email/confirm"),
    (f"/signin?next=/invites/{TOKEN}", "/signin?next=/invites/[redacted]"),
    (f"/signin?next=%2Finvites%2F{TOKEN}", "/signin?next=%2Finvites%2F[redacted]"),
    (f"/x?a=1&token={TOKEN}", "/x?a=1&token=[redacted]"),
    (f"token={TOKEN}&a=1", "token=[redacted]&a=1"),  # a query string alone
    (f"Authorization: Bearer wst_{TOKEN}", "Authorization: Bearer [redacted]"),
    (f"(b'cookie', b'ws_session={TOKEN}')", "(b'cookie', b'[redacted]')"),
    (f"smtp://mailer:{TOKEN}@smtp.example.com:587", "smtp://mailer:[redacted]@smtp.example.com:587"),
])
def test_redaction_covers_every_place_a_token_travels(line: str, shown: str) -> None:
    assert logs.redact(line) == shown


SHAPED = TOKEN[:43]  # as long as the tokens new_token makes


@pytest.mark.parametrize(("line", "shown"), [
    (f"/links/{SHAPED}", "/links/[redacted]"),  # a path no pattern above knows
    (f"/x?ref={SHAPED}&a=1", "/x?ref=[redacted]&a=1"),
    (f"/x?api=wst_{SHAPED}", "/x?api=[redacted]"),  # an API token with its prefix
    (f"/signin?next=%2Flinks%2F{SHAPED}%3Fa%3D1", "/signin?next=%2Flinks%2F[redacted]%3Fa%3D1"),
    (f"GET /files/{SHAPED}.json", "GET /files/[redacted].json"),
    # not token-shaped: longer or shorter runs, a digest, a request id
    (f"/workspaces/{'a' * 44}", f"/workspaces/{'a' * 44}"),
    (f"/workspaces/{'a' * 42}", f"/workspaces/{'a' * 42}"),
    (f"sha256 {'f' * 64}", f"sha256 {'f' * 64}"),
    # our own names of that length (lower-case: no token but one in billions is) and pages
    ("fk_email_outbox_invite_id_workspace_invites", "fk_email_outbox_invite_id_workspace_invites"),
    ("POST /account/email/cancel", "POST /account/email/cancel"),
])
def test_any_token_shaped_string_is_redacted(line: str, shown: str) -> None:
    assert len(new_token()) == len(SHAPED)  # SHAPED has the form tokens are made in
    assert logs.redact(line) == shown


_FRAGMENTS = ["/", "%2F", "?", "&", "=", ":", "@", " ", "'", "invites", "Invites", "reset",
              "verify", "email", "confirm", "token", "code", "password", "Bearer ", "bearer ",
              "eyJ", "hbGci", ".", "://", "cookie", "Set-Cookie: ", "wst_", "A", "a", "-", "_",
              TOKEN, TOKEN[:20], "%41", "İ", "\u212a", "cookİe: ", "COOK\u0131E ", "beare",
              # whole openings of each pattern, so that every one is met often
              "/invites/", "/reset/", "%2Fverify%2F", "/email/", "?code=", "&key=", "x://u:pw@h",
              "cookie: ", "eyJa.b.c"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join))
def test_redacting_with_the_patterns_a_text_needs_is_running_every_pattern(
        text: str) -> None:
    """`redact` runs only the patterns whose needs a text has: the same as running them all."""
    every = text
    for pattern, replacement, _ in logs._SECRETS:
        every = pattern.sub(replacement, every)
    assert logs.redact(text) == logs._token_shaped().sub(logs.REDACTED, every)


def test_the_server_log_shows_no_token_shaped_string_in_a_path_or_query(
        sqlite_url: str) -> None:
    link, api = new_token(), new_token("wst_")
    Cli(sqlite_url, {})("db", "deploy")
    with serving(["--database-url", sqlite_url], {"LOG_FORMAT": "json"}) as (base, process):
        for target in (f"/links/{link}", f"/healthz?ref={link}", f"/nothing?key2={api}",
                       f"/signin?next=%2Fsomewhere%2F{link}"):
            httpx.get(base + target, headers={"X-Request-ID": "req-shaped"})
        process.terminate()
        process.wait(timeout=20)
        output = server_log(process)
    assert link not in output and api not in output
    access = [x for x in _lines(output) if x["request_id"] == "req-shaped"]
    assert [(x["path"], x.get("query")) for x in access] == [
        ("/links/[redacted]", None), ("/healthz", "ref=[redacted]"),
        ("/nothing", "key2=[redacted]"), ("/signin", "next=%2Fsomewhere%2F[redacted]")]


def _handler(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    """A logger writing through the server's filter and `formatter` into a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.Redact())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"workspaces.test_logging.{id(out)}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.DEBUG
    return logger, out


def test_only_a_development_email_keeps_its_link_and_exceptions_are_redacted() -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["To"], message["Subject"] = "bob@example.com", "Join Acme"
    message.set_content(f"Join: http://127.0.0.1:8000/invites/{TOKEN}\n")
    logger, out = _handler(logs.JsonFormatter())
    logger.warning(console_text(message), extra=logs.UNREDACTED)
    logger.warning(console_text(message))  # the same text, not marked: redacted
    try:
        raise ValueError(f"no invite at /invites/{TOKEN}")
    except ValueError:
        logger.exception("failed on GET %s", f"/invites/{TOKEN}")
    kept, redacted, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert f"/invites/{TOKEN}" in kept["message"] and "DEVELOPMENT EMAIL" in kept["message"]
    assert TOKEN not in redacted["message"] and "/invites/[redacted]" in redacted["message"]
    assert failed["message"] == "failed on GET /invites/[redacted]"
    assert "ValueError: no invite at /invites/[redacted]" in failed["exc"]
    assert TOKEN not in failed["exc"]


def test_invalid_log_settings_are_one_line_each(sqlite_url: str) -> None:
    process = spawn(["serve", "--port", str(free_port()), "--database-url", sqlite_url],
                    {"LOG_LEVEL": "verbose", "LOG_FORMAT": "xml", "DATABASE_URL": None})
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert err.splitlines() == [
        "error[invalid_settings]: fix these settings (environment variables or .env):",
        "  LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (it is 'verbose').",
        "  LOG_FORMAT: Input should be 'text' or 'json' (it is 'xml')."]


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]  # every line parses, or this fails


def _access(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    (line,) = [x for x in lines if x["logger"] == "workspaces.access"
               and x["request_id"] == request_id]
    return line


def test_json_lines_carry_the_request_id_and_no_token(db_url: str, smtp: Sink) -> None:
    cli = Cli(db_url, {})
    cli("db", "deploy")
    env = {"LOG_FORMAT": "json", "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
           "EMAIL_BACKEND": "", "EMAIL_POLL_SECONDS": "0.2"}
    with serving(["--database-url", db_url], env) as (base, process):
        client = httpx.Client(base_url=base, timeout=10)
        signup = client.post("/api/auth/signup", json={
            "email": "ann@example.com", "password": "correct horse battery", "name": "Ann"})
        bearer = signup.json()["token"]
        owner = {"Authorization": f"Bearer {bearer}"}
        slug = client.post("/api/workspaces", json={"name": "Acme"}, headers=owner).json()["slug"]
        client.post(f"/api/workspaces/{slug}/invites", json={"email": "bob@example.com"},
                    headers=owner)
        invite = link_in(smtp.wait_for(1)[0])
        assert client.post("/api/auth/password-reset",
                           json={"email": "ann@example.com"}).status_code == 202
        reset = link_in(smtp.wait_for(2)[1], "reset")
        assert client.get(f"/invites/{invite}").status_code == 200
        assert client.get(f"/api/invites/{invite}").status_code == 200
        assert client.get(f"/reset/{reset}").status_code == 200

        refused = client.get("/api/invites/no-such-token", headers={"X-Request-ID": "req-404"})
        assert refused.status_code == 404 and refused.headers["X-Request-ID"] == "req-404"
        assert refused.json()["error"]["request_id"] == "req-404"
        malformed = client.get(f"/healthz?token={invite}", headers={"X-Request-ID": "two words"})
        generated = malformed.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        too_large = client.post("/api/auth/signup", content=b"x" * 70_000,
                                headers={"Content-Type": "application/json"})
        assert too_large.status_code == 413
        assert too_large.json()["error"]["request_id"] == too_large.headers["X-Request-ID"]
        assert client.get("/static/app.css").headers["X-Request-ID"]
        page = client.get("/no/such/page", headers={"X-Request-ID": "req-page"})
        assert page.status_code == 404 and "Reference: <code>req-page</code>" in page.text

        # A table dropped under the server: the guard's error line is the request's, and the
        # next /readyz that finds the schema whole says it recovered.
        cli.sql("DROP TABLE workspace_invites" + (" CASCADE" if cli.is_pg else ""))
        stale = client.get(f"/api/workspaces/{slug}/invites", headers={
            **owner, "X-Request-ID": "req-stale"})
        assert stale.status_code == 503
        repaired = cli("db", "repair", "--orphans=null")
        assert repaired.exit_code == 0, repaired.output
        assert client.get("/readyz").status_code == 200
        process.terminate()
        process.wait(timeout=20)
        output = server_log(process)

    lines = _lines(output)
    for secret in (invite, reset, bearer):
        assert secret not in output
    assert {"time", "level", "logger", "message", "request_id"} <= set(lines[0])
    assert datetime.fromisoformat(lines[0]["time"]).utcoffset() is not None
    assert lines[0]["time"].endswith("Z")
    assert any(x["logger"] == "workspaces.serve" and x["level"] == "INFO"
               and x["message"].startswith("Serving on") for x in lines)
    access = _access(lines, "req-404")
    assert access["level"] == "INFO"
    assert (access["method"], access["path"], access["status"], access["client"]) == (
        "GET", "/api/invites/[redacted]", 404, "127.0.0.1")
    assert isinstance(access["duration_ms"], float)
    assert (_access(lines, generated)["path"], _access(lines, generated)["query"]) == (
        "/healthz", "token=[redacted]")
    assert not [x for x in lines if x["request_id"] == "two words"]
    assert {x["path"] for x in lines if x.get("path", "").startswith(("/invites", "/reset"))} \
        == {"/invites/[redacted]", "/reset/[redacted]"}
    missing, recovered = [x for x in lines if x["logger"] == "workspaces.guard"]
    assert missing["level"] == "ERROR" and missing["request_id"] == "req-stale"
    assert "table workspace_invites is missing" in missing["message"]
    assert recovered["level"] == "INFO" and recovered["message"].startswith("recovered: ")
    assert "table workspace_invites is missing" in recovered["message"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_readiness_changes_are_logged_once_each_way(db_url: str, log_format: str) -> None:
    """One WARNING when /readyz turns 503 (what is missing, the fix), one INFO when it answers
    200 again; nothing for drift it serves through, nothing per probe."""
    cli = Cli(db_url, {})
    cli("db", "deploy")
    with serving(["--database-url", db_url], {"LOG_FORMAT": log_format}) as (base, process):
        client = httpx.Client(base_url=base, timeout=10)
        assert client.get("/readyz").json()["status"] == "ready"
        cli.sql("DROP INDEX ix_email_outbox_invite_id")
        assert client.get("/readyz").json()["status"] == "degraded"
        cli.sql("DROP TABLE workspace_invites" + (" CASCADE" if cli.is_pg else ""))
        for _ in range(3):
            assert client.get("/readyz").status_code == 503
        assert cli("db", "repair", "--orphans=null").exit_code == 0
        for _ in range(3):
            assert client.get("/readyz").json()["status"] == "ready"
        cli.sql("ALTER TABLE users DROP COLUMN email_verified_at")
        assert client.get("/readyz").status_code == 503
        process.terminate()
        process.wait(timeout=20)
        output = server_log(process)

    table = "the database lacks table workspace_invites"
    column = "the database lacks column users.email_verified_at"
    if log_format == "json":
        said = [(x["level"], x["message"]) for x in _lines(output)
                if x["logger"] == "workspaces.guard"]
    else:  # `LEVEL:  message request_id=...` (the probe's request)
        said = [(m[1], m[2]) for line in output.splitlines()
                if (m := re.fullmatch(r"(WARNING|INFO):\s+((?:not ready|recovered): .*) "
                                      r"request_id=\w+", line))]
    assert said == [
        ("WARNING", f"not ready: /readyz answers 503: {table}; fix: workspaces db repair"),
        ("INFO", f"recovered: /readyz answers 200 again (before: {table})"),
        ("WARNING", f"not ready: /readyz answers 503: {column}; fix: workspaces db repair"),
    ]


def _wait_for(process: Any, text: str) -> str:
    deadline = time.monotonic() + 15
    while text not in (output := server_log(process)):
        assert time.monotonic() < deadline, output
        time.sleep(0.1)
    return output


def test_text_lines_from_every_worker_with_the_development_email_whole(
        sqlite_url: str) -> None:
    env = {"EMAIL_BACKEND": "console", "SMTP_URL": "", "EMAIL_POLL_SECONDS": "0.2",
           "LOG_LEVEL": "info"}
    with serving(["--database-url", sqlite_url, "--workers", "2"], env) as (base, process):
        signup = httpx.post(f"{base}/api/auth/signup", json={
            "email": "ann@example.com", "password": "correct horse battery", "name": "Ann"},
            headers={"X-Request-ID": "req-signup"})
        assert signup.status_code == 201
        output = _wait_for(process, "(end of development email")
        match = re.search(r"http://\S+/verify/(\S+)", output)
        assert match, output
        token = match.group(1)
        httpx.get(f"{base}/verify/{token}", headers={"X-Request-ID": "req-verify"})
        output = _wait_for(process, "request_id=req-verify")
    lines = output.splitlines()
    assert any(line.startswith("INFO:     Serving on http://") for line in lines)
    assert any(line.startswith("INFO:     Started parent process") for line in lines)
    assert [line for line in lines if token in line] == [match.group(0)]  # the email's link
    assert signup.json()["token"] not in output
    (verify,) = [line for line in lines if line.endswith("request_id=req-verify")]
    assert verify.startswith('INFO:     127.0.0.1 - "GET /verify/[redacted] HTTP/1.1" 200 ')
    assert any(line.startswith('INFO:     127.0.0.1 - "POST /api/auth/signup HTTP/1.1" 201 ')
               and line.endswith("request_id=req-signup") for line in lines)
    assert "uvicorn.access" not in output and '" 201 Created' not in output  # one access line
