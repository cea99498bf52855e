"""Scale-out across hosts: a GPU worker in a network namespace of its own (a second "host", joined to this
one by a veth pair) reaches Postgres, Redis and the S3 server only over that link, shares no filesystem
with the platform (its own data directory; audio comes from S3) and completes chunks alongside a local
worker. The link's far side reaches the services through TCP forwarders on the host's end of the link,
since the machine's Postgres and Redis listen on loopback only. Needs root for `ip netns`, as CI has."""

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import Platform, RedisDatabases
from tests.corpus import OSR
from tests.helpers import submit, wait_for
from tingxie.runner import gpu_worker_command, spawn

HOST_IP, REMOTE_IP = "10.213.0.1", "10.213.0.2"
JOBS = 3
TRANSCRIBED = "Task tingxie.transcribe["


@dataclass(frozen=True)
class RemoteHost:
    namespace: str

    def command(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *command]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


@contextmanager
def remote_host() -> Iterator[RemoteHost]:
    name = f"tx{uuid.uuid4().hex[:8]}"
    host_end, far_end = f"vh{name[2:]}", f"vr{name[2:]}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", far_end)
        _ip("link", "set", far_end, "netns", name)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        for args in (("addr", "add", f"{REMOTE_IP}/30", "dev", far_end), ("link", "set", far_end, "up")):
            _ip("netns", "exec", name, "ip", *args)
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield RemoteHost(name)
    finally:
        subprocess.run(["ip", "link", "del", host_end], check=False)
        subprocess.run(["ip", "netns", "del", name], check=False)


class Forwarder:
    """Accepts on the host's end of the link and relays each connection to a loopback service."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._server = socket.create_server((HOST_IP, 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # shut down
                return
            threading.Thread(target=_relay, args=(client, socket.create_connection(self._target)), daemon=True).start()

    def close(self) -> None:
        with suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._server.close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Both directions until each side has finished sending, then both sockets closed."""
    with client, upstream:
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _through(url: str, forwarders: list[Forwarder]) -> str:
    """`url` with its loopback host and port replaced by a forwarder's on the link."""
    parts = urlsplit(url)
    forwarder = Forwarder(parts.port or 0)
    forwarders.append(forwarder)
    netloc = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}{HOST_IP}:{forwarder.port}"))


def _wait_ready(worker: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise AssertionError(f"the remote worker exited: {log.read_text(errors='replace')[-3000:]}")
        if " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError("the remote worker never became ready")


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)")
def test_a_worker_on_another_host_completes_chunks_alongside_a_local_one(
    service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path: Path
) -> None:
    broker = redis_databases.url(redis_databases.spare)
    platform = Platform(service_env | {"TINGXIE_BROKER_URL": broker}, tmp_path).start()
    forwarders: list[Forwarder] = []
    try:
        with remote_host() as host:
            remote_env = platform.env | {
                "TINGXIE_DATA_DIR": str(tmp_path / "remote-host-data"),
                "TINGXIE_DATABASE_URL": _through(service_env["TINGXIE_DATABASE_URL"], forwarders),
                "TINGXIE_BROKER_URL": _through(broker, forwarders),
                "TINGXIE_S3_ENDPOINT_URL": _through(service_env["TINGXIE_S3_ENDPOINT_URL"], forwarders),
            }
            log = tmp_path / "remote-worker.log"
            with log.open("wb") as out:
                command = host.command(gpu_worker_command(concurrency=2, log_level="INFO"))
                remote = spawn(command, remote_env, stdout=out, stderr=subprocess.STDOUT)
            try:
                _wait_ready(remote, log)
                with platform.client() as client:
                    ids = [submit(client, OSR).json()["id"] for _ in range(JOBS)]
                    jobs = [wait_for(client, job_id, timeout=300) for job_id in ids]
            finally:
                remote.terminate()
                remote.wait(timeout=60)
    finally:
        for forwarder in forwarders:
            forwarder.close()
        platform.stop()
    assert all(job["status"] == "completed" for job in jobs), [job["error"] for job in jobs]
    remote_log = log.read_text(errors="replace")
    assert TRANSCRIBED in remote_log, remote_log[-3000:]
    assert TRANSCRIBED in (tmp_path / "worker-gpu.log").read_text(errors="replace")
    assert len({job["text"] for job in jobs}) == 1  # the same recording, the same transcript, either host
