"""The interactive lane: an interactive job's steps go to queues of their own, which the interactive
worker consumes with an engine of its own, so bulk work never holds the threads or the engine calls it
waits for; the cpu and gpu workers consume the lanes too, so a deployment without an interactive worker
still completes interactive jobs. Each test runs a platform of its own (real API, Redis, workers) on a
fresh database and a Redis database no other platform uses."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Platform, RedisDatabases, _flush_keeping_claim, _wait_until, fresh_database
from tests.corpus import SPEECH
from tests.helpers import proc_stat_fields, submit, wait_for
from tingxie.queue import (
    CPU_LANE,
    CPU_QUEUE,
    DELIVER_WEBHOOK,
    DIARIZE,
    FINALIZE,
    GPU_LANE,
    GPU_QUEUE,
    PREPARE,
    RECONCILE,
    TRANSCRIBE,
    chunk_priority,
    job_priority,
    queue_for,
)
from tingxie.runner import gpu_worker_command

SHORT = SPEECH / "en" / "jfk.wav"  # 11 s: one chunk


def test_an_interactive_jobs_steps_go_to_the_lanes_and_everything_else_stays() -> None:
    interactive, batch = job_priority(True, 0), job_priority(False, 0)
    for step in (interactive, chunk_priority(interactive, 40)):
        assert queue_for(TRANSCRIBE, step) == GPU_LANE
        assert {queue_for(task, step) for task in (PREPARE, FINALIZE, DIARIZE)} == {CPU_LANE}
    for step in (batch, chunk_priority(batch, 40)):
        assert queue_for(TRANSCRIBE, step) == GPU_QUEUE
        assert {queue_for(task, step) for task in (PREPARE, FINALIZE, DIARIZE)} == {CPU_QUEUE}
    # Webhook deliveries and the reconciler are nobody's job step: they stay on the cpu queue.
    assert {queue_for(task, 0) for task in (DELIVER_WEBHOOK, RECONCILE)} == {CPU_QUEUE}


@pytest.fixture
def lane_env(service_env: dict[str, str], redis_databases: RedisDatabases, tmp_path: Path) -> Iterator[dict[str, str]]:
    _flush_keeping_claim(redis_databases.spare)
    with fresh_database() as database:
        yield service_env | {
            "TINGXIE_DATABASE_URL": database,
            "TINGXIE_BROKER_URL": redis_databases.url(redis_databases.spare),
            "TINGXIE_DATA_DIR": str(tmp_path / "data"),
        }
    _flush_keeping_claim(redis_databases.spare)


def _chunks_logged(platform: Platform, worker: str, job_id: str) -> int:
    """How many chunks of the job `worker` transcribed, by its log (`job <id> chunk <n>: ...`)."""
    return (platform.log_dir / f"{worker}.log").read_text(errors="replace").count(f"job {job_id} chunk ")


def test_the_interactive_worker_does_interactive_jobs_and_nothing_else(
    lane_env: dict[str, str], tmp_path: Path
) -> None:
    """With no gpu worker running, an interactive job completes through the interactive worker while a
    batch job waits; a gpu worker started afterwards does the batch job."""
    platform = Platform(lane_env, tmp_path, gpu_workers=0).start()
    try:
        with platform.client() as client:
            waiting = submit(client, SHORT, language="en", priority="batch").json()["id"]
            urgent = submit(client, SHORT, language="en", priority="interactive").json()["id"]
            job = wait_for(client, urgent, timeout=120)
            assert job["status"] == "completed", job
            assert "what you can do for your" in job["text"].lower()
            assert _chunks_logged(platform, "worker-interactive", urgent) == job["progress"]["chunks_total"]
            held = _once_cut(client, waiting)
            assert held["status"] == "processing" and held["progress"]["chunks_done"] == 0, held
            platform.launch("worker-gpu", gpu_worker_command(concurrency=4, log_level="INFO"))
            assert wait_for(client, waiting, timeout=120)["status"] == "completed"
        assert _chunks_logged(platform, "worker-interactive", waiting) == 0
        assert _chunks_logged(platform, "worker-gpu", waiting) > 0
        # Bulk workers yield the cores: every thread each has once it has worked, the engine's included.
        niceness = {name: _nice_values(platform.processes[name].pid) for name in platform.processes}
        assert niceness["worker-cpu"] == niceness["worker-gpu"] == {10}, niceness
        assert niceness["worker-interactive"] == niceness["api"] == {0}, niceness
    finally:
        platform.stop()


def _nice_values(pid: int) -> set[int]:
    """The nice value of each of the process's threads (field 19 of /proc/<pid>/task/<tid>/stat)."""
    stats = Path(f"/proc/{pid}/task").glob("*/stat")
    return {int(proc_stat_fields(stat)[16]) for stat in stats}


def test_without_an_interactive_worker_the_gpu_worker_does_interactive_jobs(
    lane_env: dict[str, str], tmp_path: Path
) -> None:
    platform = Platform(lane_env, tmp_path, interactive_worker=False).start()
    try:
        with platform.client() as client:
            response = _transcribe_now(client, SHORT)
        assert response.status_code == 200, response.text
        assert "what you can do for your" in response.json()["text"].lower()
    finally:
        platform.stop()


def _once_cut(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once prepare has cut all of it."""
    _wait_until(lambda: _job(client, job_id)["progress"]["chunks_total"] is not None, f"cutting job {job_id}")
    return _job(client, job_id)


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return job


def _transcribe_now(client: httpx.Client, path: Path) -> httpx.Response:
    """The synchronous route: its jobs are interactive."""
    with path.open("rb") as audio:
        return client.post("/v1/audio/transcriptions", files={"file": (path.name, audio)}, data={"model": "x"})
