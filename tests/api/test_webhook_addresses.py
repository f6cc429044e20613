"""Where a webhook may go, the rules themselves (no database): the addresses refused, the host
that is checked being the one connected to, and DNS lookups bounded in time and kept off the
default thread pool."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from typing import Any

import pytest

from workspaces.errors import InvalidInput
from workspaces.settings import Settings
from workspaces.webhooks import addresses, delivery
from workspaces.webhooks.addresses import parse, public, resolve

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("address", [
    "fec0::1",  # site-local
    "64:ff9b:1::a",  # local-use NAT64 (RFC 8215)
    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
    "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
    "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::",
])
def test_ipv6_forms_of_internal_addresses_are_not_public(address: str) -> None:
    assert not public(ipaddress.ip_address(address))


def test_public_addresses_stay_public() -> None:
    for address in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert public(ipaddress.ip_address(address)), address


def test_the_host_checked_is_the_one_the_client_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """IDNA 2008 (httpx) and Python's IDNA 2003 codec encode some names differently (faß.de:
    xn--fa-hia.de against fass.de): the lookup must be of the name connected to."""
    looked_up: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    target = parse("https://faß.de/hook")
    assert target.host == "xn--fa-hia.de"
    asyncio.run(resolve(target, SETTINGS, operator_networks=False))
    assert looked_up == ["xn--fa-hia.de"]
    with pytest.raises(InvalidInput):
        parse("https://\u2488.example/")  # no valid IDNA 2008 name


def test_a_lookup_that_does_not_answer_in_time_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stalling(host: Any, *args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", stalling)
    monkeypatch.setattr(addresses, "LOOKUP_SECONDS", 0.2)
    try:
        with pytest.raises(InvalidInput) as refused:
            asyncio.run(resolve(parse("https://stall.example/hook"), SETTINGS,
                                operator_networks=False))
    finally:
        release.set()
    assert refused.value.code == "webhook_url_not_allowed"
    assert "did not resolve in time" in refused.value.message


def test_a_slow_dns_answer_for_a_webhook_does_not_hold_up_password_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """From the review: lookups ran on the default executor, which `Passwords` (sign-in,
    sign-up), /readyz and /metrics use too, with no time limit. Names whose nameserver does
    not answer, at each of the loop's attempts at once, left a password check waiting."""
    release = threading.Event()
    real = socket.getaddrinfo

    def stalling(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "stall.example":
            release.wait(60)  # until the test ends; a hang guard
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalling)

    async def main() -> None:
        target = parse("https://stall.example/hook")
        lookups = [asyncio.create_task(resolve(target, SETTINGS, operator_networks=False))
                   for _ in range(delivery.CONCURRENCY)]
        await asyncio.sleep(0.1)
        # What Passwords.hash and verify do, answered while every lookup still stalls: on the
        # default executor it would wait for one to end (60 s), past this hang guard.
        try:
            await asyncio.wait_for(asyncio.to_thread(lambda: None), timeout=30)
        finally:
            release.set()
        await asyncio.gather(*lookups, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        release.set()
