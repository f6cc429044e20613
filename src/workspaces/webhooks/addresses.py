"""Where a webhook may go (server-side request forgery): an endpoint must be https and resolve
to public addresses only, checked when its URL is saved and again at each delivery, against the
address the delivery then connects to (so a name that resolves elsewhere later, DNS rebinding,
is refused too). WEBHOOK_ALLOWED_NETWORKS lets an operator allow internal receivers, which may
then use plain http.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from workspaces.errors import InvalidInput
from workspaces.networks import in_networks
from workspaces.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX = 2048
# IPv6 prefixes that carry an IPv4 address: judged by the address they carry.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def refused(reason: str) -> InvalidInput:
    return InvalidInput(f"This webhook URL cannot be used: {reason}.",
                        code="webhook_url_not_allowed", field="url")


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: what a delivery connects to and what it says it wants."""

    url: str
    scheme: str
    host: str  # as written, without brackets
    port: int


def parse(url: str) -> Target:
    """The URL's parts; 422 `webhook_url_not_allowed` for anything but http(s)://host..."""
    url = url.strip()
    if not url or len(url) > URL_MAX:
        raise refused(f"give an https:// URL of at most {URL_MAX} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refused("it is not a URL (check the host and port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused("give an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise refused("credentials in the URL would be sent to anyone who sees it; verify "
                      "requests with the signature instead")
    if parts.fragment:
        raise refused("a URL with a #fragment")
    return Target(url, parts.scheme, parts.hostname,
                  port or (443 if parts.scheme == "https" else 80))


def origin(url: str) -> str:
    """How a webhook URL is shown where it is not managed (the audit trail, the log): its
    scheme, host and port. A path or query may carry the receiver's own secret (a chat
    service's hook token); they are left out."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "(not a URL)"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def public(address: Address) -> bool:
    """Reachable on the internet: not loopback, private, link-local (the cloud metadata
    address among them), multicast, reserved or unspecified, also when an IPv6 address carries
    an IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if carried is not None:
            return public(carried)
        if address in _SIX_TO_FOUR:
            return False
    return address.is_global and not address.is_multicast


def allowed(address: Address, settings: Settings) -> bool:
    return in_networks(address, settings.webhook_allowed_networks) or public(address)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(target: Target, settings: Settings) -> list[Address]:
    """Every address `target`'s host resolves to, each of them allowed, and plain http only if
    every one is in WEBHOOK_ALLOWED_NETWORKS; 422 `webhook_url_not_allowed` otherwise."""
    literal = _literal(target.host)
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise refused(f"{target.host} does not resolve") from None
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not found:
        raise refused(f"{target.host} does not resolve")
    for address in found:
        if not allowed(address, settings):
            raise refused(f"{target.host} resolves to {address}, which is not a public "
                          "address (loopback, private, link-local and the like are refused; "
                          "an operator can allow a network with WEBHOOK_ALLOWED_NETWORKS)")
    if target.scheme == "http" and not all(
            in_networks(a, settings.webhook_allowed_networks) for a in found):
        raise refused("use https (plain http goes only to networks an operator allowed)")
    return found


async def check_url(url: str, settings: Settings) -> Target:
    """A URL an endpoint may be saved with (parsed and resolved now)."""
    target = parse(url)
    await resolve(target, settings)
    return target
