"""Outages of the broker and of the database while a backlog runs, on a platform of its own (the tiny
random-weight Qwen3-ASR) whose Redis and Postgres this module stops, starts and flushes (never the
machine's own, which the rest of the suite shares). While a service is down the API answers a JSON 503
with a code, at once; nothing a refused request streamed is left in storage; once the service is back,
every job accepted before completes with the transcript a run without faults gives.

Lease settings are scaled down (lease 3 s, renewed every second, the reconciler every second) so that
recovery fits a test; the shipped defaults are 120 s, 30 s and 30 s."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Platform
from tests.corpus import OSR
from tests.helpers import stored_sources, submit, wait_for
from tests.services import OwnPostgres, OwnRedis
from tingxie.runner import gpu_worker_command, worker_command

LEASES = {"TINGXIE_LEASE_SECONDS": "3", "TINGXIE_LEASE_RENEW_SECONDS": "1", "TINGXIE_RECONCILE_EVERY_SECONDS": "1"}
BACKLOG = 3
PROMPT_S = 10.0  # a 503 must come at once, not after a hang


@pytest.fixture(scope="module")
def broker() -> Iterator[OwnRedis]:
    redis_server = OwnRedis().start()
    yield redis_server
    redis_server.stop()


@pytest.fixture(scope="module")
def database() -> Iterator[OwnPostgres]:
    cluster = OwnPostgres().start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def outage_platform(
    service_env: dict[str, str],
    broker: OwnRedis,
    database: OwnPostgres,
    tiny_qwen3_asr: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    qwen = {"TINGXIE_ENGINE": "qwen3-asr", "TINGXIE_MODEL_PATH": str(tiny_qwen3_asr), "TINGXIE_DEVICE": "cpu"}
    services = {"TINGXIE_BROKER_URL": broker.url, "TINGXIE_DATABASE_URL": database.url}
    env = service_env | LEASES | qwen | services
    running = Platform(env, tmp_path_factory.mktemp("outage-logs"), reconciler=True).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def reference(outage_platform: Platform) -> dict[str, Any]:
    """The transcript of the same recording before any fault."""
    with outage_platform.client() as client:
        return wait_for(client, submit(client, OSR).json()["id"])


def _backlog(client: httpx.Client) -> list[str]:
    return [submit(client, OSR).json()["id"] for _ in range(BACKLOG)]


def _wait_until_transcribing(client: httpx.Client, ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(client.get(f"/v1/jobs/{job_id}").json()["progress"]["chunks_done"] for job_id in ids):
            return
        time.sleep(0.1)
    raise AssertionError("no chunk was transcribed")


def _in_flight(client: httpx.Client, ids: list[str]) -> bool:
    return any(client.get(f"/v1/jobs/{job_id}").json()["status"] != "completed" for job_id in ids)


def _refused(response: httpx.Response, code: str, started: float) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == code
    assert time.monotonic() - started < PROMPT_S


def _all_complete(client: httpx.Client, ids: list[str], reference: dict[str, Any]) -> None:
    for job_id in ids:
        job = wait_for(client, job_id, timeout=180)
        assert job["status"] == "completed", job["error"]
        assert job["segments"] == reference["segments"]  # every segment once, as without the fault


def test_a_broker_flushed_mid_backlog_loses_no_job(
    outage_platform: Platform, broker: OwnRedis, reference: dict[str, Any]
) -> None:
    with outage_platform.client() as client:
        ids = _backlog(client)
        _wait_until_transcribing(client, ids)
        broker.flush()
        assert _in_flight(client, ids), "the backlog finished before the fault"
        _all_complete(client, ids, reference)


def test_while_the_broker_is_down_submits_get_503_and_accepted_jobs_survive_its_restart(
    outage_platform: Platform, broker: OwnRedis, reference: dict[str, Any]
) -> None:
    with outage_platform.client() as client:
        ids = _backlog(client)
        _wait_until_transcribing(client, ids)
        broker.stop()  # no persistence: what it held is gone
        assert _in_flight(client, ids), "the backlog finished before the fault"
        try:
            jobs_before = len(client.get("/v1/jobs").json()["jobs"])
            sources_before = stored_sources()
            started = time.monotonic()
            _refused(submit(client, OSR), "broker_unavailable", started)
            assert len(client.get("/v1/jobs").json()["jobs"]) == jobs_before  # the refused job was withdrawn
            assert stored_sources() == sources_before  # and its upload deleted
            _refused(client.get("/readyz"), "broker_unavailable", time.monotonic())
        finally:
            broker.start()
        _restart_workers(outage_platform)
        _all_complete(client, ids, reference)


def _restart_workers(platform: Platform) -> None:
    """Kill and start again both workers, as compose's `restart: unless-stopped` does with a worker that
    died. A Celery worker whose Redis went away can die reconnecting: kombu raises AttributeError
    ('NoneType' object has no attribute 'hostname') acknowledging a message while it closes its event
    loop. What this test checks is that the jobs survive the restart, with the messages Redis lost."""
    for number, child in list(enumerate(platform.children))[1:3]:  # the cpu and gpu workers
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        name = "worker-cpu" if number == 1 else "worker-gpu"
        command = worker_command(platform.beat_schedule, log_level="INFO") if number == 1 else None
        platform.launch(f"{name}-again", command or gpu_worker_command(concurrency=4, log_level="INFO"))


def test_while_the_database_is_down_the_api_answers_503_and_jobs_complete_after(
    outage_platform: Platform, database: OwnPostgres, reference: dict[str, Any]
) -> None:
    with outage_platform.client() as client:
        ids = _backlog(client)
        _wait_until_transcribing(client, ids)
        sources_before = stored_sources()
        assert _in_flight(client, ids), "the backlog finished before the fault"
        database.stop()
        try:
            for path in (f"/v1/jobs/{ids[0]}", "/v1/jobs", f"/v1/jobs/{ids[0]}/transcript", "/metrics"):
                _refused(client.get(path), "database_unavailable", time.monotonic())
            _refused(submit(client, OSR), "database_unavailable", time.monotonic())
            assert stored_sources() == sources_before  # the refused upload was deleted
            _refused(client.get("/readyz"), "database_unavailable", time.monotonic())
            time.sleep(5)  # longer than a lease: the workers' leases run out meanwhile
        finally:
            database.start()
        _all_complete(client, ids, reference)
        _all_complete(client, [submit(client, OSR).json()["id"]], reference)
