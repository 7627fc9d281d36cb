"""Which network addresses leadscope may send to in production (webhooks; the same rule for any URL a user gives).

An address is allowed only when it is globally reachable and so is every IPv4 address it carries: an IPv6 address
can wrap an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, 6to4 2002::/16, Teredo 2001::/32,
NAT64 64:ff9b::/96), and a network that routes those forms would deliver to the wrapped address, e.g. NAT64 of
169.254.169.254 (a cloud's metadata service). The classification is the standard library's `ipaddress`
properties (`is_global`, `ipv4_mapped`, `sixtofour`, `teredo`); only the NAT64 and IPv4-compatible forms, which
it has no property for, are unwrapped here.
"""

from __future__ import annotations

import ipaddress

NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use: the operator's own translators
COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses (::a.b.c.d)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def carried(ip: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an address stands for: itself, or the ones an IPv6 form wraps."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    out = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)  # (server, client)
    if ip in NAT64 or (ip in COMPATIBLE and int(ip) > 1):
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def refusal(ip: Address) -> str | None:
    """Why leadscope must not send to this address (None: it may)."""
    if ip.is_multicast or ip in LOCAL_NAT64:
        return "points at a private or reserved address"
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_global:
        return "points at a private or reserved address"
    for v4 in carried(ip):
        if not v4.is_global or v4.is_multicast:
            return "points at a private or reserved address" if v4 == ip else f"wraps the private address {v4}"
    return None
