"""Which network addresses a session's browser may reach: the private-network rule the egress proxy applies
after it has resolved a host (and before it dials the very address it checked).

Refused unless allowed: private (RFC 1918), loopback, link-local, shared CGNAT (100.64/10), "this network"
(0/8), unique-local and site-local IPv6, multicast and any other range IANA marks as not globally
reachable; IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, 6to4,
NAT64) are judged by that IPv4 address. Cloud-metadata endpoints (by address or by name) are refused even
when private addresses are allowed, unless ``egress_allow_hosts`` names them: they hand out credentials.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TypeAlias

import anyio

from browser_sessions.backends.local.policy import matches_host
from browser_sessions.settings import Settings

IPAddress: TypeAlias = IPv4Address | IPv6Address

METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack instance metadata
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address, reachable only from inside Azure)
    )
)
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)

_RANGES: tuple[tuple[IPv4Network | IPv6Network, str], ...] = tuple(
    (ip_network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "this-network"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("169.254.0.0/16", "link-local"),
        ("100.64.0.0/10", "shared CGNAT (RFC 6598)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("64:ff9b:1::/48", "local-use NAT64"),
    )
)
_IPV4_COMPATIBLE = ip_network("::/96")
_NAT64 = ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64), else ``address``."""
    if not isinstance(address, IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def non_public_kind(address: IPAddress) -> str | None:
    """What kind of non-public address ``address`` is (``"loopback"``, ``"cloud metadata"``, ...), or None
    for a public one."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    inner = embedded_ipv4(address)
    if inner is not address:
        return non_public_kind(inner)
    for network, kind in _RANGES:
        if address.version == network.version and address in network:
            return kind
    if address.is_multicast:
        return "multicast"
    if not address.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """The private-network rule of one server. ``egress_allow_hosts`` (hosts or ``*.domain``) may reach any
    address, metadata included; others may reach private addresses only if ``private_allowed``."""

    private_allowed: bool
    egress_allow_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(settings.private_network_allowed, tuple(settings.egress_allow_host_list))

    def allowed_host(self, host: str) -> bool:
        return matches_host(host, self.egress_allow_hosts) is not None

    def refuse_name(self, host: str) -> str | None:
        """Checked before resolving: the reason a cloud-metadata name is refused, or None."""
        if host in METADATA_NAMES and not self.allowed_host(host):
            return f"{host} is a cloud metadata name"
        return None

    def refuse_addresses(self, host: str, addresses: Iterable[IPAddress]) -> str | None:
        """The reason ``host`` may not be reached when it resolved to ``addresses`` (refused if any one of
        them is refused, so no answer order or retry can pick a private one), or None."""
        if self.allowed_host(host):
            return None
        for address in addresses:
            kind = non_public_kind(address)
            if kind is None or (self.private_allowed and kind != "cloud metadata"):
                continue
            shown = "" if host == str(address) else f" (resolved from {host})"
            return f"{address}{shown} is a {kind} address"
        return None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses to dial for ``host``, resolved once: an IP literal is itself; ``localhost`` and
    ``*.localhost`` are 127.0.0.1, as Chromium resolves them (the system resolver may not know those names);
    any other name is asked of the system resolver. Raises OSError when it cannot be resolved."""
    try:
        return [ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [IPv4Address("127.0.0.1")]
    found: list[IPAddress] = []
    for *_, sockaddr in await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ip_address(str(sockaddr[0]))
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} resolved to no address")
    return found
