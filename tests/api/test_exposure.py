"""The keyless local mode follows the addresses the API process really listens on, not TINGXIE_HOST: a bare
`uvicorn --host 0.0.0.0` (as an image would run it) with no keys created still requires a key, and keys
switched off explicitly on such an address make the server refuse to run. Real uvicorn processes on
embedded settings of their own (no keys exist there)."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.exposure import Exposure, _is_loopback
from tests.conftest import free_port
from tingxie.runner import api_command, spawn

START_SECONDS = 60


def _env(data_dir: Path, **settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    return clean | {"TINGXIE_DATA_DIR": str(data_dir)} | settings


def _start(host: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    subprocess.run([sys.executable, "-m", "tingxie.cli", "migrate"], env=env, check=True)
    port = free_port()
    with log.open("wb") as out:
        server = spawn(api_command(host, port, log_level="info"), env, stdout=out, stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}"


def _wait_healthy(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError("the API exited during start-up")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the API did not start")


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    server, url = _start(request.param, _env(tmp_path / "data"), tmp_path / "api.log")
    try:
        _wait_healthy(server, url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("served", ["0.0.0.0"], indirect=True)
def test_a_server_listening_on_every_address_requires_a_key(served: str) -> None:
    for path in ("/v1/jobs", "/metrics"):
        response = httpx.get(f"{served}{path}")
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
    assert httpx.get(f"{served}/healthz").status_code == 200


@pytest.mark.parametrize("served", ["127.0.0.1"], indirect=True)
def test_a_server_on_loopback_with_no_keys_serves_the_local_user(served: str) -> None:
    assert httpx.get(f"{served}/v1/jobs").status_code == 200
    assert httpx.get(f"{served}/metrics").status_code == 200


def test_keys_switched_off_on_a_public_address_stop_the_server(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    server, _url = _start("0.0.0.0", _env(tmp_path / "data", TINGXIE_AUTH_REQUIRED="false"), log)
    try:
        code = server.wait(timeout=START_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
    assert "refusing to serve" in log.read_text(errors="replace"), log.read_text(errors="replace")[-2000:]
    assert code is not None


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.7", False),
        ("fe80::1%eth0", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert _is_loopback(address) is loopback


def test_a_process_with_no_network_socket_counts_as_exposed() -> None:
    """A Unix socket is what a reverse proxy forwards the network to."""
    assert Exposure(()).public
    assert not Exposure(("127.0.0.1", "::1")).public
