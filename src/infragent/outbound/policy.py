"""Which addresses a tenant-controlled URL may reach: the pure half of the outbound-URL policy.

Why it exists: a tenant chooses its webhook URL (and later its notification channels), and the
server then connects there and stores part of the answer. Without a policy that is SSRF with
read-back: point the URL at ``169.254.169.254`` or an internal service, trigger an action, read the
answer from the event's detail. So every address the server would connect to for a tenant is judged
here, at registration (``check_url``) and again at each connection after DNS resolution
(``outbound.transport``), with one rule:

* link-local and cloud-metadata addresses (``ALWAYS_REFUSED``) are never allowed, whatever the
  operator lists: nothing a webhook legitimately needs lives there;
* loopback, private (RFC 1918, ``fc00::/7``, CGNAT ``100.64.0.0/10``, documentation and benchmark
  ranges), unspecified, multicast and reserved addresses are refused unless they fall inside one of
  the operator's ``webhook_allowed_networks``;
* every other (public) address is allowed.

An IPv6 address that carries an IPv4 one the packet will end up at (IPv4-mapped ``::ffff:a.b.c.d``,
IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged as that IPv4
address, so no spelling of ``169.254.169.254`` or ``10.0.0.1`` slips through.

Pure: no sockets, no clock. ``check_url`` takes the resolver as a callable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

from infragent.errors import InfrAgentError

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
#: ``(host, port) -> addresses`` in the resolver's order; raises ``OSError`` when the name does not resolve.
Resolver = Callable[[str, int], Sequence[str]]

#: The setting that lists the networks an operator allows (named in every refusal it could lift).
SETTING = "webhook_allowed_networks"

#: Link-local (where every cloud's instance metadata lives: AWS, GCP, Azure, OCI at 169.254.169.254),
#: AWS's IPv6 metadata endpoint and Alibaba Cloud's. Refused even when an allowed network covers them.
ALWAYS_REFUSED: tuple[Network, ...] = (
    IPv4Network("169.254.0.0/16"),
    IPv6Network("fe80::/10"),
    IPv6Network("fd00:ec2::254/128"),
    IPv4Network("100.100.100.200/32"),
)
_NAT64 = IPv6Network("64:ff9b::/96")
_COMPATIBLE = IPv6Network("::/96")
_SHARED = IPv4Network("100.64.0.0/10")


class OutboundRefusedError(InfrAgentError):
    """A tenant's URL leads only to addresses the outbound policy refuses; nothing was connected.

    Raised by ``outbound.transport`` in place of a connection, so the sender reports ``reason``
    (which says what the address is and how an operator could allow it) instead of retrying.
    """

    def __init__(self, url: str, address: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.address = address
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's answer for one address: ``reason`` is for people (logs, audit, a 422)."""

    address: Address
    allowed: bool
    reason: str


def embedded_ipv4(address: Address) -> Address:
    """The address a packet to ``address`` ends up at: the IPv4 address an IPv6 form carries, else itself."""
    if isinstance(address, IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    low = int(address) & 0xFFFF_FFFF
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):  # not :: nor ::1
        return IPv4Address(low)
    return address


def _kind(address: Address) -> str | None:
    """What makes ``address`` non-public, or None for a public address."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "private (shared CGNAT space)"
    if address.is_private or not address.is_global:
        return "private"
    return None


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The networks an operator allows on top of the public internet (``webhook_allowed_networks``)."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> OutboundPolicy:
        """Parse CIDRs (``127.0.0.0/8``, ``fd12::/16``, a bare address); ``ValueError`` names a bad one."""
        return cls(tuple(parse_network(c) for c in cidrs))

    def judge(self, address: Address | str) -> Verdict:
        """Whether a connection to ``address`` is allowed, and why (or why not)."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        target = embedded_ipv4(ip)
        shown = str(ip) if target == ip else f"{ip} (that is {target})"
        if any(a in n for a in {ip, target} for n in ALWAYS_REFUSED if a.version == n.version):
            return Verdict(ip, False, f"{shown} is a link-local or cloud-metadata address: never allowed")
        for net in self.allowed:
            if any(a.version == net.version and a in net for a in (target, ip)):
                return Verdict(ip, True, f"{shown} is allowed by {SETTING} ({net})")
        kind = _kind(target)
        if kind is None:
            return Verdict(ip, True, f"{shown} is a public address")
        listed = f" ({', '.join(str(n) for n in self.allowed)})" if self.allowed else ""
        return Verdict(ip, False, f"{shown} is a {kind} address, refused unless listed in {SETTING}{listed}")

    def choose(self, addresses: Sequence[Address | str]) -> Verdict:
        """The first allowed address of a resolver's answer; when none is allowed, the first refusal.

        Why the first allowed rather than refusing a mixed answer: a refused address is never
        connected to either way, and ``localhost`` answering ``127.0.0.1`` and ``::1`` keeps working
        when only ``127.0.0.0/8`` is listed.
        """
        if not addresses:
            raise ValueError("no address to choose from")
        verdicts = [self.judge(a) for a in addresses]
        return next((v for v in verdicts if v.allowed), verdicts[0])


def parse_network(cidr: str) -> Network:
    """One allowed network; host bits must be zero (``10.0.0.1/8`` is refused: which was meant?)."""
    try:
        return ipaddress.ip_network(cidr.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{cidr!r} is not a network in CIDR notation: {exc}") from exc


def check_url(url: str, policy: OutboundPolicy, resolve: Resolver) -> str | None:
    """Why ``url`` is refused, or None when it may be used; a host name is resolved once.

    For registration and updates of a tenant's URL: an early, clear answer (a 422 naming the field).
    It does not replace the check at each connection, since a name can resolve elsewhere later.
    A name that does not resolve now is refused: nothing could be judged, so nothing is accepted.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return "must be an http or https URL"
    host = parts.hostname
    if not host:
        return "has no host"
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses: Sequence[Address | str] = [ipaddress.ip_address(host)]
        named = ""
    except ValueError:
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            return f"host {host!r} does not resolve ({exc})"
        named = f"host {host!r} resolves to "
        if not addresses:
            return f"host {host!r} does not resolve"
    verdict = policy.choose(addresses)
    return None if verdict.allowed else f"{named}{verdict.reason}"
