"""Where a webhook may go (server-side request forgery): an endpoint must be https and resolve
to public addresses only, checked when its URL is saved and again at each delivery, against the
address the delivery then connects to (so a name that resolves elsewhere later, DNS rebinding,
is refused too). WEBHOOK_ALLOWED_NETWORKS lets an operator allow internal receivers for the
instance's endpoints whose URL an operator set (the product's own), which may then use plain
http; any other URL (a workspace admin's, a service client's) is judged by
WORKSPACE_WEBHOOK_ALLOWED_NETWORKS instead (empty: public addresses only; other values are for
development and tests). Host names are looked up on a small pool of threads of
their own, each lookup bounded in time, so a nameserver that does not answer holds up neither
the server's other work (password hashing shares the default pool) nor a request for long.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import httpx

from workspaces.errors import InvalidInput
from workspaces.networks import in_networks
from workspaces.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
URL_MAX = 2048
LOOKUP_THREADS = 4  # lookups at once, on threads of their own
LOOKUP_SECONDS = 5.0  # one lookup, waiting for a thread included
# IPv6 prefixes that carry an IPv4 address in their last 32 bits: judged by the address they
# carry (NAT64, IPv4-translated, IPv4-compatible; mapped and 6to4 are the ipaddress module's).
_CARRIERS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
# Not global, though Python's `is_global` may say so: site-local (deprecated, still routed
# inside some networks) and the local-use NAT64 prefix (RFC 8215).
_INTERNAL = tuple(ipaddress.ip_network(n) for n in ("fec0::/10", "64:ff9b:1::/48"))
_lookups: ThreadPoolExecutor | None = None


def refused(reason: str) -> InvalidInput:
    return InvalidInput(f"This webhook URL cannot be used: {reason}.",
                        code="webhook_url_not_allowed", field="url")


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: what a delivery connects to and what it says it wants."""

    url: str
    scheme: str
    host: str  # as the HTTP client sends it (IDNA 2008, lower case), without brackets
    port: int


def parse(url: str) -> Target:
    """The URL's parts; 422 `webhook_url_not_allowed` for anything but http(s)://host..."""
    url = url.strip()
    if not url or len(url) > URL_MAX:
        raise refused(f"give an https:// URL of at most {URL_MAX} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise refused("a URL has no spaces or control characters (percent-encode them)")
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
    try:  # the host the delivery connects to is the one checked: httpx's encoding of it
        host = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        raise refused("its host is not a valid (internationalised) domain name") from None
    return Target(url, parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


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
        carried = address.ipv4_mapped or address.sixtofour or next(
            (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
             for network in _CARRIERS if address in network), None)
        if carried is not None:
            return public(carried)
        if address in _SIX_TO_FOUR or any(address in network for network in _INTERNAL):
            return False
    return address.is_global and not address.is_multicast


def allowed_networks(settings: Settings, *, operator_networks: bool) -> str:
    """The networks admitted besides public addresses: WEBHOOK_ALLOWED_NETWORKS for a URL an
    operator set on an instance endpoint (`operator_networks`), WORKSPACE_WEBHOOK_ALLOWED_NETWORKS
    for any other (a workspace admin's, a service client's: neither may reach the operator's
    internal hosts)."""
    return (settings.webhook_allowed_networks if operator_networks
            else settings.workspace_webhook_allowed_networks)


def allowed(address: Address, settings: Settings, *, operator_networks: bool) -> bool:
    return (in_networks(address, allowed_networks(settings, operator_networks=operator_networks))
            or public(address))


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _executor() -> ThreadPoolExecutor:
    global _lookups
    if _lookups is None:
        _lookups = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="webhook-dns")
    return _lookups


async def _lookup(target: Target) -> list[Address]:
    """The addresses of `target`'s host, looked up on the lookups' own threads within
    LOOKUP_SECONDS (a lookup still waiting for a thread then never starts; one already running
    ends on its own, holding only one of those threads)."""
    lookup = partial(socket.getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            infos = await asyncio.get_running_loop().run_in_executor(_executor(), lookup)
    except TimeoutError:
        raise refused(f"{target.host} did not resolve in time (try again; if it keeps "
                      "happening, check the name's DNS servers)") from None
    except (socket.gaierror, UnicodeError):
        raise refused(f"{target.host} does not resolve") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def resolve(target: Target, settings: Settings, *,
                  operator_networks: bool) -> list[Address]:
    """Every address `target`'s host resolves to, each of them allowed for a URL of this
    origin (`operator_networks`: an operator's on an instance endpoint, else anyone's), and
    plain http only if every one is in that origin's allowed networks; 422
    `webhook_url_not_allowed` otherwise. A host name's refusal does not say which address it
    found (that would tell a workspace admin what internal names resolve to); a literal
    address is named."""
    literal = _literal(target.host)
    found = [literal] if literal is not None else await _lookup(target)
    if not found:
        raise refused(f"{target.host} does not resolve")
    networks = allowed_networks(settings, operator_networks=operator_networks)
    hint = ("; an operator can allow a network with WEBHOOK_ALLOWED_NETWORKS"
            if operator_networks else "")
    for address in found:
        if not allowed(address, settings, operator_networks=operator_networks):
            which = (f"{address} is not a public address" if literal is not None
                     else f"{target.host} resolves to a non-public address")
            raise refused(f"{which} (loopback, private, link-local and the like are "
                          f"refused{hint})")
    if target.scheme == "http" and not all(in_networks(a, networks) for a in found):
        raise refused("use https (plain http goes only to networks an operator allowed)")
    return found


async def check_url(url: str, settings: Settings, *, operator_networks: bool) -> Target:
    """A URL an endpoint may be saved with by whoever sets it (parsed and resolved now)."""
    target = parse(url)
    await resolve(target, settings, operator_networks=operator_networks)
    return target
