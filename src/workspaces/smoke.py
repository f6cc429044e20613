"""`workspaces smoke`: the post-deploy check, run against a live deployment over HTTP.

It signs up two throwaway accounts, creates a workspace, invites and accepts through the API,
revokes a second invite, checks every status, then deletes what it created. Invite emails go to
addresses at `--email-domain` (example.com by default, which accepts no mail): the outbox marks
them failed, which is expected.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx


class StepFailed(Exception):
    pass


LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _origin(url: str) -> str:
    """scheme://host:port, the loopback names counted as one (they reach the same server)."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    host = "localhost" if parts.hostname in LOOPBACK else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


@dataclass
class Smoke:
    base_url: str
    email_domain: str = "example.com"
    timeout: float = 10.0
    say: Callable[[str], None] = print
    results: list[tuple[str, bool, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout)
        self.run_id = secrets.token_hex(4)

    def _call(self, method: str, path: str, expect: int, *, token: str | None = None,
              **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = self.client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {path}: {exc}") from exc
        if response.status_code != expect:
            raise StepFailed(f"{method} {path} answered {response.status_code} (expected "
                             f"{expect}): {response.text[:300]}")
        return response.json() if response.content else None

    def step(self, name: str, action: Callable[[], str]) -> bool:
        try:
            detail = action()
        except StepFailed as exc:
            self.results.append((name, False, str(exc)))
            self.say(f"FAIL  {name}: {exc}")
            return False
        self.results.append((name, True, detail))
        self.say(f"PASS  {name}" + (f" ({detail})" if detail else ""))
        return True

    def _address(self, who: str) -> str:
        return f"smoke-{self.run_id}-{who}@{self.email_domain}"

    def _ready(self) -> str:
        body = self._call("GET", "/readyz", 200)
        return f"{body.get('migrations')} migrations applied"

    def _sign_up(self, who: str) -> Callable[[], str]:
        def act() -> str:
            body = self._call("POST", "/api/auth/signup", 201, json={
                "email": self._address(who), "password": secrets.token_urlsafe(16),
                "name": f"Smoke test {who}"})
            self.state[who] = body["token"]
            return self._address(who)
        return act

    def _workspace(self) -> str:
        body = self._call("POST", "/api/workspaces", 201, token=self.state["a"],
                          json={"name": f"Smoke test {self.run_id}"})
        self.state["slug"] = body["slug"]
        return str(body["slug"])

    def _invite(self, who: str) -> Callable[[], str]:
        def act() -> str:
            body = self._call("POST", f"/api/workspaces/{self.state['slug']}/invites", 201,
                              token=self.state["a"], json={"email": self._address(who)})
            self.state[f"invite_{who}"] = body
            link, ours = _origin(body["accept_url"]), _origin(self.base_url)
            if link != ours:  # the emailed links would lead people elsewhere
                raise StepFailed(f"the invite link points at {link}, not at {ours}: set "
                                 f"BASE_URL={ours} on the server")
            return f"invite {body['id']}"
        return act

    def _accept(self) -> str:
        token = self.state["invite_b"]["accept_url"].rsplit("/", 1)[1]
        preview = self._call("GET", f"/api/invites/{token}", 200)
        if preview["status"] != "pending":
            raise StepFailed(f"the invite previews as {preview['status']}, expected pending")
        body = self._call("POST", f"/api/invites/{token}/accept", 200, token=self.state["b"])
        return f"joined as {body['member']['role']}"

    def _revoke(self) -> str:
        invite_id = self.state["invite_c"]["id"]
        body = self._call("POST", f"/api/workspaces/{self.state['slug']}/invites/{invite_id}/"
                          "revoke", 200, token=self.state["a"])
        return str(body["status"])

    def _statuses(self) -> str:
        slug = self.state["slug"]
        invites = self._call("GET", f"/api/workspaces/{slug}/invites", 200,
                             token=self.state["a"])["items"]
        found = {i["email"]: i["status"] for i in invites}
        wanted = {self._address("b"): "accepted", self._address("c"): "revoked"}
        if found != wanted:
            raise StepFailed(f"invite statuses are {found}, expected {wanted}")
        members = self._call("GET", f"/api/workspaces/{slug}/members", 200, token=self.state["a"])
        roles = {m["email"]: m["role"] for m in members}
        if roles != {self._address("a"): "owner", self._address("b"): "member"}:
            raise StepFailed(f"members are {roles}")
        return "accepted, revoked; 2 members"

    def _clean_up(self) -> str:
        removed = []
        if "slug" in self.state:
            self._call("DELETE", f"/api/workspaces/{self.state['slug']}", 204,
                       token=self.state["a"])
            removed.append("workspace")
        for who in ("a", "b"):
            if who in self.state:
                self._call("DELETE", "/api/me", 204, token=self.state[who])
                removed.append(f"account {who}")
        return ", ".join(removed) or "nothing to remove"

    def run(self) -> bool:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("service ready (/readyz)", self._ready),
            ("sign up the first user", self._sign_up("a")),
            ("sign up the second user", self._sign_up("b")),
            ("create a workspace", self._workspace),
            ("invite the second user", self._invite("b")),
            ("accept the invite through the API", self._accept),
            ("invite a third address", self._invite("c")),
            ("revoke that invite", self._revoke),
            ("confirm invite statuses and members", self._statuses),
        ]
        for name, action in steps:
            if not self.step(name, action):
                break
        self.step("clean up what the smoke test created", self._clean_up)
        passed = sum(ok for _, ok, _ in self.results)
        failed = len(self.results) - passed
        self.say(f"{passed} passed, {failed} failed")
        return failed == 0
