"""Whether this API process can be reached from beyond this machine, read from the sockets it really
listens on, whatever started it (`make serve`, a bare `uvicorn --host 0.0.0.0`, gunicorn, systemd).

The keyless local mode is only safe when nothing but this machine can connect. A setting that says where
the server *should* listen proves nothing about where it does, so the answer comes from the kernel's own
table of this process's listening sockets. The server binds after the application has started, so the
answer is looked up when the first request arrives (by then the socket exists) and kept: a process never
gives up a listening socket it serves on. A process listening on no network socket at all counts as
exposed: a Unix socket is what a reverse proxy usually forwards the network to."""

import ipaddress
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

import psutil

from tingxie.errors import TingxieError

log = logging.getLogger(__name__)

STARTUP_CHECK_SECONDS = 30.0  # how long after start-up the sockets are looked for
STARTUP_CHECK_INTERVAL = 0.2


class InsecureBind(TingxieError):
    """Keys were switched off explicitly, but the server listens on an address others can reach."""

    status_code = 503
    code = "insecure_bind"


@dataclass(frozen=True)
class Exposure:
    addresses: tuple[str, ...]  # the addresses this process listens on

    @property
    def public(self) -> bool:
        """Reachable from elsewhere, or not known to be unreachable (no network socket at all)."""
        return not self.addresses or any(not _is_loopback(address) for address in self.addresses)


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def listening_addresses() -> tuple[str, ...]:
    connections = psutil.Process().net_connections(kind="inet")
    return tuple(sorted({c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}))


_lock = threading.Lock()
_known: Exposure | None = None


def current_exposure() -> Exposure:
    """This process's exposure; cached once a listening socket has been seen."""
    global _known
    if _known is not None:
        return _known
    with _lock:
        exposure = Exposure(listening_addresses())
        if exposure.addresses:
            _known = exposure
        return exposure


def check_open_mode_allowed(auth_required: bool | None) -> None:
    """Refuse to serve without keys (`TINGXIE_AUTH_REQUIRED=false`) on an address others can reach."""
    exposure = current_exposure()
    if auth_required is False and exposure.public:
        raise InsecureBind(
            f"TINGXIE_AUTH_REQUIRED=false, but the server listens on {', '.join(exposure.addresses)}: "
            "without keys it may only listen on a loopback address"
        )


def watch_startup(auth_required: bool | None) -> None:
    """Stop this process, with a log line saying why, if it turns out to listen open on a public address.

    Runs in a daemon thread from the application's start-up, since the sockets appear only after it."""

    def watch() -> None:
        deadline = time.monotonic() + STARTUP_CHECK_SECONDS
        while time.monotonic() < deadline and not current_exposure().addresses:
            time.sleep(STARTUP_CHECK_INTERVAL)
        try:
            check_open_mode_allowed(auth_required)
        except InsecureBind as refusal:
            log.critical("refusing to serve: %s", refusal.message)
            os.kill(os.getpid(), signal.SIGTERM)

    if auth_required is False:
        threading.Thread(target=watch, name="exposure-check", daemon=True).start()
