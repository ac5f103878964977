"""The client's address, computed once per request: `X-Forwarded-For` only counts from a trusted proxy.

Anyone can send `X-Forwarded-For`, so the header is read right to left, from the hop we can see
(the direct peer) towards the client, and only while each hop is one of TRUSTED_PROXIES: the first
address not in that list is the client. A request from an untrusted peer is that peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from litestar.types import Scope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddressResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies
        )

    def _is_trusted(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.trusted)

    def resolve(self, scope: Scope) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        if peer is None or not self.trusted:
            return peer
        nearest = _parse(peer)
        if nearest is None or not self._is_trusted(nearest):
            return peer
        hops = [
            hop
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            ip = _parse(hop)
            if ip is None:
                # A garbled entry: the proxy that passed it on is the last hop we can vouch for.
                break
            if not self._is_trusted(ip):
                return str(ip)
            nearest = ip
        return str(nearest)


def _parse(value: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as the IPv4 they are.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
