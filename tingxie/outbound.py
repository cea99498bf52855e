"""Connections tingxie itself opens to URLs it was given (webhook receivers, audio submitted by URL).

A URL a client hands in must not turn the platform into its proxy into the network it runs in: the
loopback interface, private networks, link-local addresses (where clouds serve instance metadata and
credentials, 169.254.169.254), multicast and unspecified addresses are refused, also when written as
IPv4-mapped IPv6 or as a name that resolves to them. `check_url` runs at submit, on every address the
name resolves to; the code that connects checks the address it actually connects to with
the guard again, so a name that resolves elsewhere the second time (DNS rebinding) cannot slip past.

TINGXIE_WEBHOOK_ALLOW_NETWORKS lets chosen networks through (a LAN's receivers, say 192.168.10.0/24;
the tests' loopback server), and TINGXIE_WEBHOOK_ALLOW_PRIVATE turns the guard off altogether.
"""

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

import httpcore

from tingxie.errors import InvalidRequest
from tingxie.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
SCHEMES = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048


class UrlNotAllowed(InvalidRequest):
    code = "url_not_allowed"


@dataclass(frozen=True)
class Guard:
    """Which addresses tingxie may connect to: public ones, those in `allowed_networks`, and any at all
    with `allow_private`."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> "Guard":
        return cls(settings.webhook_allow_private, parse_networks(settings.webhook_allow_networks))

    def check(self, address: IPAddress, *, host: str) -> None:
        if self.allow_private or any(address in network for network in self.allowed_networks):
            return
        reason = not_public(address)
        if reason is not None:
            raise UrlNotAllowed(
                f"the host {host!r} is {address}, {reason}: tingxie connects only to public addresses "
                "(TINGXIE_WEBHOOK_ALLOW_NETWORKS or TINGXIE_WEBHOOK_ALLOW_PRIVATE allow others)"
            )


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDR networks; ValueError names one that is neither."""
    return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def check_submitted(url: str, guard: Guard, *, what: str) -> str:
    """A URL as a client submits it (`what` names it in the error), checked: resolves its host, so call
    it off the event loop."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"the {what} is longer than {MAX_URL_LENGTH} characters")
    check_url(url, guard)
    return url


def check_url(url: str, guard: Guard) -> list[IPAddress]:
    """The addresses `url`'s host resolves to, every one of them allowed; UrlNotAllowed otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise UrlNotAllowed(f"{url!r} is not an http or https URL with a host")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError as exc:
        raise UrlNotAllowed(f"{url!r} has an invalid port") from exc
    addresses = resolve(parts.hostname, port)
    for address in addresses:
        guard.check(address, host=parts.hostname)
    return addresses


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlNotAllowed(f"the host {host!r} cannot be resolved: {exc}") from exc
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is cut off: the address decides.
    return list(dict.fromkeys(ip_address(str(sockaddr[0]).split("%")[0]) for *_, sockaddr in found))


def not_public(address: IPAddress) -> str | None:
    """Why tingxie must not connect to `address`, or None for an address on the public internet."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        # Python 3.11 does not look through the mapping: ::ffff:127.0.0.1 is not `is_loopback` there.
        return not_public(address.ipv4_mapped)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud instance metadata is served)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_private:
        return "a private network address"
    if not address.is_global:
        return "not a public address"  # shared (carrier-grade NAT), reserved, documentation ranges
    return None


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend, resolving the host itself and connecting only to an address the guard
    allows: the address checked is the address connected to."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except UrlNotAllowed as exc:  # a name that does not resolve now may later: a connection failure
            raise httpcore.ConnectError(exc.message) from exc
        for address in addresses:
            self._guard.check(address, host=host)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # as socket.create_connection does: the first that answers
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address or raises
        raise failure


def connection_pool(guard: Guard) -> httpcore.ConnectionPool:
    """A pool whose every connection passes the guard (and follows no redirect: callers decide)."""
    return httpcore.ConnectionPool(network_backend=GuardedBackend(guard), retries=0)
