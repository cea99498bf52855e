"""GPU workers (the tiny random-weight Qwen3-ASR) killed (SIGKILL) again and again while their thread
pools hold several chunks, whose windows share engine calls: the leases of every chunk a killed worker
held run out, the reconciler queues those chunks again, and every job completes once, with the
transcript a run without faults gives. A worker shut down in the other ways an operator or a container
runtime shuts it down hands its chunks back the same way and never fails a job.

A worker killed after it took a chunk's message but before it took the chunk's lease leaves nothing to run
out: that message comes back through the broker's redelivery timeout instead, and the job completes too.

A platform of its own on a broker no other worker consumes. The recovery settings are scaled down
(TINGXIE_LEASE_SECONDS 5, renewed every second, the reconciler every second, redelivery after 25 s: five
lease periods, as on the defaults) so the test is short; on the shipped defaults (120 s, 30 s, 30 s,
600 s) a leased chunk comes back in about two and a half minutes and an unleased one in about ten."""

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import Platform, RedisDatabases, _wait_until
from tests.corpus import OSR
from tests.helpers import submit, wait_for, waiting_for_a_row_lock
from tingxie.runner import gpu_worker_command

KILLS = 5
SHUTDOWN_JOBS = 3
JOBS = 8
RECOVERY = {
    "TINGXIE_LEASE_SECONDS": "5",
    "TINGXIE_LEASE_RENEW_SECONDS": "1",
    "TINGXIE_RECONCILE_EVERY_SECONDS": "1",
    "TINGXIE_VISIBILITY_TIMEOUT_SECONDS": "25",
}
IN_FLIGHT_S = 0.5  # after its engine is loaded, how long a worker runs before it is killed


def _crash_env(service_env: dict[str, str], redis_databases: RedisDatabases, tiny_qwen3_asr: Path) -> dict[str, str]:
    qwen = {"TINGXIE_ENGINE": "qwen3-asr", "TINGXIE_MODEL_PATH": str(tiny_qwen3_asr), "TINGXIE_DEVICE": "cpu"}
    return service_env | RECOVERY | qwen | {"TINGXIE_BROKER_URL": redis_databases.url(redis_databases.spare)}


@pytest.fixture
def crash_platform(
    service_env: dict[str, str], redis_databases: RedisDatabases, tiny_qwen3_asr: Path, tmp_path: Path
) -> Iterator[Platform]:
    env = _crash_env(service_env, redis_databases, tiny_qwen3_asr)
    # No interactive worker: every job here is batch work, and the gpu worker is children[2].
    running = Platform(env, tmp_path, reconciler=True, interactive_worker=False).start()
    yield running
    running.stop()


@pytest.fixture
def platform_without_gpu_worker(
    service_env: dict[str, str], redis_databases: RedisDatabases, tiny_qwen3_asr: Path, tmp_path: Path
) -> Iterator[Platform]:
    env = _crash_env(service_env, redis_databases, tiny_qwen3_asr)
    running = Platform(env, tmp_path, reconciler=True, gpu_workers=0, interactive_worker=False).start()
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


def _launch_gpu_worker(platform: Platform, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    platform.launch(name, gpu_worker_command(concurrency=4, log_level="INFO"))
    return platform.children[-1], platform.log_dir / f"{name}.log"


def test_gpu_workers_killed_mid_batch_have_their_chunks_redone(crash_platform: Platform) -> None:
    with crash_platform.client() as crashing:
        reference = wait_for(crashing, submit(crashing, OSR).json()["id"])  # before any fault
        ids = [submit(crashing, OSR).json()["id"] for _ in range(JOBS)]
        gpu, log = crash_platform.children[2], crash_platform.log_dir / "worker-gpu.log"
        for kill in range(KILLS):
            _wait_for_log(log, "loaded engine")  # its first chunks are in, their windows in the batcher
            time.sleep(IN_FLIGHT_S)
            gpu.send_signal(signal.SIGKILL)
            gpu.wait(timeout=10)
            assert _unfinished(crashing, ids), f"every job finished before kill {kill + 1}; nothing was in flight"
            gpu, log = _launch_gpu_worker(crash_platform, f"worker-gpu-{kill + 2}")
        jobs = [wait_for(crashing, job_id, timeout=300) for job_id in ids]
    for job in jobs:
        assert job["status"] == "completed", job["error"]
        assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"]
        assert job["segments"] == reference["segments"]  # every segment exactly once, as without the fault
    reconciler_log = (crash_platform.log_dir / "worker-cpu.log").read_text(errors="replace")
    assert "reconciler queued work again" in reconciler_log  # the leases, not the broker, brought them back


@dataclass(frozen=True)
class Shutdown:
    """Signals sent to a worker in the middle of a batch, each followed by a pause."""

    signals: tuple[tuple[signal.Signals, float], ...]


SHUTDOWNS = {
    "cold shutdown (SIGQUIT)": Shutdown(((signal.SIGQUIT, 0),)),
    # docker stop with a grace period shorter than the chunks in flight
    "warm shutdown cut short (SIGTERM, SIGKILL 1 s later)": Shutdown(((signal.SIGTERM, 1.0), (signal.SIGKILL, 0))),
    "Ctrl-C twice (SIGINT, SIGINT)": Shutdown(((signal.SIGINT, 0.2), (signal.SIGINT, 0))),
}


@pytest.mark.parametrize("shutdown", SHUTDOWNS.values(), ids=SHUTDOWNS.keys())
def test_a_gpu_worker_shut_down_mid_batch_hands_its_chunks_back(crash_platform: Platform, shutdown: Shutdown) -> None:
    with crash_platform.client() as client:
        reference = wait_for(client, submit(client, OSR).json()["id"])
        ids = [submit(client, OSR).json()["id"] for _ in range(SHUTDOWN_JOBS)]
        gpu = crash_platform.children[2]
        _wait_for_log(crash_platform.log_dir / "worker-gpu.log", "loaded engine")
        time.sleep(IN_FLIGHT_S)
        for signum, pause in shutdown.signals:
            gpu.send_signal(signum)
            time.sleep(pause)
        gpu.wait(timeout=60)
        statuses = {client.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in ids}
        assert "failed" not in statuses, "a shutdown failed a job instead of handing its work back"
        assert statuses != {"completed"}, "every job finished before the shutdown; nothing was in flight"
        _launch_gpu_worker(crash_platform, "worker-gpu-restarted")
        jobs = [wait_for(client, job_id, timeout=300) for job_id in ids]
    for job in jobs:
        assert job["status"] == "completed", job["error"]
        assert job["segments"] == reference["segments"]


@pytest.fixture
def database(platform_without_gpu_worker: Platform) -> Iterator[Engine]:
    engine = create_engine(platform_without_gpu_worker.env["TINGXIE_DATABASE_URL"])
    yield engine
    engine.dispose()


def test_a_worker_killed_before_taking_its_chunks_leases_has_them_redone(
    platform_without_gpu_worker: Platform, database: Engine
) -> None:
    platform = platform_without_gpu_worker
    with platform.client() as client:
        job_id = submit(client, OSR).json()["id"]
        _wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["progress"]["chunks_total"], what="the cut")
        with database.connect() as locker:
            # Holding the chunks' rows stops the worker's lease-taking UPDATE after Celery gave it the message.
            locker.execute(text("SELECT 1 FROM chunks WHERE job_id = :job FOR UPDATE"), {"job": job_id})
            gpu, _ = _launch_gpu_worker(platform, "worker-gpu")
            _wait_until(lambda: waiting_for_a_row_lock(database), what="a worker's lease on the chunks")
            gpu.send_signal(signal.SIGKILL)
            gpu.wait(timeout=10)
            locker.rollback()
        _wait_until(lambda: not waiting_for_a_row_lock(database), what="the killed worker's transaction to end")
        with database.connect() as connection:
            leased = connection.scalar(
                text("SELECT count(*) FROM chunks WHERE job_id = :job AND leased_by IS NOT NULL"), {"job": job_id}
            )
        assert leased == 0, "the killed worker took a lease after all: this is the lease path, not the race"
        _launch_gpu_worker(platform, "worker-gpu-2")
        job = wait_for(client, job_id, timeout=120)
        reference = wait_for(client, submit(client, OSR).json()["id"])  # a run without the fault
    assert job["status"] == "completed", job["error"]
    assert job["segments"] == reference["segments"]
