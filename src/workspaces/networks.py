"""Addresses and networks as settings list them (TRUSTED_PROXIES, METRICS_ALLOWED_NETWORKS,
WEBHOOK_ALLOWED_NETWORKS): comma-separated addresses or CIDR networks."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(spec: str) -> tuple[Network, ...]:
    """TRUSTED_PROXIES (or METRICS_ALLOWED_NETWORKS) parsed: comma-separated addresses or CIDR
    networks."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in spec.split(",") if part.strip())


_WITH_PORT = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::\d+)?|(?P<v4>[0-9.]+):\d+")


def ip_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, or with a port (`1.2.3.4:5678`, `[::1]:443`)."""
    text = text.strip()
    if match := _WITH_PORT.fullmatch(text):
        text = match["v6"] or match["v4"]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def in_networks(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                spec: str) -> bool:
    """Whether the address is in one of the networks of `spec`; an IPv4 peer of a dual-stack
    socket (::ffff:127.0.0.1) counts as its IPv4 address, and what is no address in none."""
    if isinstance(address, str):
        address = ip_of(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address is not None and any(address in network
                                       for network in trusted_networks(spec))
