"""Connections tingxie itself opens to URLs it was given (webhook receivers, audio submitted by URL).

A URL a client hands in must not turn the platform into its proxy into the network it runs in: the
loopback interface, private networks, link-local addresses (where clouds serve instance metadata and
credentials, 169.254.169.254), multicast and unspecified addresses are refused, also when written as
IPv4-mapped IPv6 or as a name that resolves to them. `check_url` runs at submit, on every address the
name resolves to; the code that connects checks the address it actually connects to with
`check_address` again, so a name that resolves elsewhere the second time (DNS rebinding) cannot slip
past. TINGXIE_WEBHOOK_ALLOW_PRIVATE turns the guard off, for tests and installs on a LAN.
"""

import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

import httpcore

from tingxie.errors import InvalidRequest

IPAddress = IPv4Address | IPv6Address
SCHEMES = {"http": 80, "https": 443}


class UrlNotAllowed(InvalidRequest):
    code = "url_not_allowed"


def check_url(url: str, *, allow_private: bool) -> list[IPAddress]:
    """The addresses `url`'s host resolves to, every one of them allowed; UrlNotAllowed otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise UrlNotAllowed(f"{url!r} is not an http or https URL with a host")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError as exc:
        raise UrlNotAllowed(f"{url!r} has an invalid port") from exc
    addresses = resolve(parts.hostname, port)
    if not allow_private:
        for address in addresses:
            check_address(address, host=parts.hostname)
    return addresses


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlNotAllowed(f"the host {host!r} cannot be resolved: {exc}") from exc
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is cut off: the address decides.
    return list(dict.fromkeys(ip_address(str(sockaddr[0]).split("%")[0]) for *_, sockaddr in found))


def check_address(address: IPAddress, *, host: str) -> None:
    reason = not_public(address)
    if reason is not None:
        raise UrlNotAllowed(
            f"the host {host!r} is {address}, {reason}: tingxie connects only to public addresses "
            "(TINGXIE_WEBHOOK_ALLOW_PRIVATE=true allows others)"
        )


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

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

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
        if not self._allow_private:
            for address in addresses:
                check_address(address, host=host)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # as socket.create_connection does: the first that answers
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address or raises
        raise failure


def connection_pool(*, allow_private: bool) -> httpcore.ConnectionPool:
    """A pool whose every connection passes the guard (and follows no redirect: callers decide)."""
    return httpcore.ConnectionPool(network_backend=GuardedBackend(allow_private=allow_private), retries=0)
