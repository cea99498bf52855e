"""The guard on URLs tingxie connects to: at submit (every address a name resolves to) and again at
connect time, to the address actually connected to."""

import socket
import threading
from collections.abc import Iterator

import httpcore
import pytest

from tingxie.outbound import Guard, UrlNotAllowed, check_url, connection_pool, parse_networks

PUBLIC_ONLY = Guard()

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud instance metadata
    "http://[fe80::1]/hook",
    "http://localhost:9000/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://[::ffff:169.254.169.254]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
    "http://2130706433/hook",  # 127.0.0.1 written as one number
]


@pytest.mark.parametrize("url", REFUSED)
def test_urls_into_the_platforms_own_network_are_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as refused:
        check_url(url, PUBLIC_ONLY)
    assert refused.value.code == "url_not_allowed"
    assert refused.value.status_code == 422


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/a.wav", "http:///nohost", "not a url"]
)
def test_only_http_and_https_urls_with_a_host_are_taken(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="http or https"):
        check_url(url, PUBLIC_ONLY)


def test_a_bad_port_or_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UrlNotAllowed, match="invalid port"):
        check_url("http://example.com:99999/", PUBLIC_ONLY)
    with pytest.raises(UrlNotAllowed, match="cannot be resolved"):
        check_url("https://nothing-here.invalid/hook", PUBLIC_ONLY)


def test_public_addresses_are_allowed_and_the_setting_allows_private_ones() -> None:
    assert [str(a) for a in check_url("https://93.184.215.14/hook", PUBLIC_ONLY)] == ["93.184.215.14"]
    assert [str(a) for a in check_url("http://[2606:4700::1111]/", PUBLIC_ONLY)] == ["2606:4700::1111"]
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.0.0.1/hook"):
        assert check_url(url, Guard(allow_private=True))


def test_allowed_networks_let_only_themselves_through() -> None:
    lan = Guard(allowed_networks=parse_networks("192.168.10.0/24, 127.0.0.1"))
    assert check_url("http://192.168.10.7:8080/hook", lan)
    assert check_url("http://127.0.0.1/hook", lan)
    for refused in ("http://192.168.11.1/hook", "http://127.0.0.2/hook", "http://169.254.169.254/", "http://[::1]/"):
        with pytest.raises(UrlNotAllowed):
            check_url(refused, lan)
    with pytest.raises(ValueError):
        parse_networks("192.168.10.0/24, not-a-network")


@pytest.fixture
def listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback TCP port that records every connection made to it."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()
    for conn in accepted:
        conn.close()


def test_the_connection_itself_is_guarded_so_a_name_resolving_elsewhere_later_cannot_slip_past(
    listener: tuple[int, list[socket.socket]],
) -> None:
    """What DNS rebinding exploits: a check at submit and a second lookup at connect time. The pool checks
    the address it connects to, so a loopback address is refused there, before anything is sent."""
    port, accepted = listener
    with connection_pool(PUBLIC_ONLY) as pool, pytest.raises(UrlNotAllowed):
        pool.request("POST", f"http://localhost:{port}/hook", content=b"{}")
    assert accepted == []
    with connection_pool(Guard(allow_private=True)) as pool:
        assert pool.request("POST", f"http://localhost:{port}/hook", content=b"{}").status == 204
    assert len(accepted) == 1


def test_a_name_that_stops_resolving_is_a_connection_failure_to_retry_not_a_refusal() -> None:
    with connection_pool(PUBLIC_ONLY) as pool, pytest.raises(httpcore.ConnectError):
        pool.request("POST", "https://nothing-here.invalid/hook", content=b"{}")
