"""A GPU worker killed (SIGKILL) while its thread pool holds several chunks, whose windows share engine
calls: every chunk it held is transcribed again by another worker, and every job completes once, with the
transcript a run without the fault gives. A platform of its own on a broker no other worker consumes, with
the broker's redelivery timeout scaled down (TINGXIE_VISIBILITY_TIMEOUT_SECONDS) so the test is short."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Platform, RedisDatabases
from tests.corpus import OSR
from tests.helpers import submit, wait_for
from tingxie.runner import gpu_worker_command

VISIBILITY_TIMEOUT_S = 6
JOBS = 3


@pytest.fixture
def crash_platform(service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path: Path) -> Iterator[Platform]:
    env = service_env | {
        "TINGXIE_BROKER_URL": redis_databases.url(redis_databases.spare),
        "TINGXIE_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT_S),
    }
    running = Platform(env, tmp_path).start()
    yield running
    running.stop()


def _wait_for_log(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never logged {text!r}")


def _unfinished(client: httpx.Client, ids: list[str]) -> list[str]:
    return [job_id for job_id in ids if client.get(f"/v1/jobs/{job_id}").json()["status"] != "completed"]


def test_a_gpu_worker_killed_mid_batch_has_its_chunks_redone(crash_platform: Platform, client: httpx.Client) -> None:
    reference = wait_for(client, submit(client, OSR).json()["id"])  # the shared platform, no faults
    with crash_platform.client() as crashing:
        ids = [submit(crashing, OSR).json()["id"] for _ in range(JOBS)]
        _wait_for_log(crash_platform.log_dir / "worker-gpu.log", "engine call:")
        gpu = crash_platform.children[2]
        gpu.send_signal(signal.SIGKILL)
        gpu.wait(timeout=10)
        assert _unfinished(crashing, ids), "every job finished before the kill; nothing was in flight"
        time.sleep(VISIBILITY_TIMEOUT_S + 1)
        crash_platform.launch("worker-gpu-2", gpu_worker_command(concurrency=4, log_level="INFO"))
        jobs = [wait_for(crashing, job_id, timeout=240) for job_id in ids]
    for job in jobs:
        assert job["status"] == "completed", job["error"]
        assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"]
        assert job["segments"] == reference["segments"]  # every segment exactly once, as without the fault
