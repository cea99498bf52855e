"""The other end of the connections tingxie opens: a real HTTP server on a loopback port, answering each
path with its scripted answers in turn and recording every request; and the settings of a platform
allowed to reach it (TINGXIE_WEBHOOK_ALLOW_NETWORKS=127.0.0.1, nothing else private)."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the answer: longer than the platform's timeout makes a receiver that hangs
    declare_length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Peer:
    port: int = 0
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, *answers: Answer | int) -> str:
        """Answer requests to `path` with `answers` in turn (a bare status: an empty body), then 200."""
        self.scripts[path] = [Answer(a) if isinstance(a, int) else a for a in answers]
        return self.url(path)

    def requests_to(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests_to(path)) >= count:
                return self.requests_to(path)
            time.sleep(0.1)
        raise AssertionError(f"{path} got {len(self.requests_to(path))} requests, not {count}, in {timeout} s")

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in handler.headers.items()}
        self.received.append(Received(handler.command, handler.path, headers, body, time.monotonic()))
        script = self.scripts.get(handler.path, [])
        answer = script.pop(0) if script else Answer()
        time.sleep(answer.delay_s)
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        if answer.declare_length:
            handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading, as limits do
            handler.wfile.write(answer.body)


@contextmanager
def running_peer() -> Iterator[Peer]:
    peer = Peer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer.answer(self)

        def do_POST(self) -> None:
            peer.answer(self)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    peer.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()


def outbound_settings(data_dir: str, database_url: str, broker_url: str) -> dict[str, str]:
    """A platform of its own (database, broker, data directory) that may reach a loopback Peer, with
    webhook retries scaled down and the reconciler, which sends them, running every half second."""
    return {
        "TINGXIE_DATA_DIR": data_dir,
        "TINGXIE_DATABASE_URL": database_url,
        "TINGXIE_BROKER_URL": broker_url,
        "TINGXIE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1",
        "TINGXIE_WEBHOOK_RETRY_BASE_SECONDS": "0.3",
        "TINGXIE_WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT_S),
        "TINGXIE_RECONCILE_EVERY_SECONDS": "0.5",
    }
