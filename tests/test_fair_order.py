"""Order on a busy platform: behind one key's backlog, another key's short job and an interactive job
finish first. Jobs go to the shared test platform (real API app, Redis broker, workers) under two real
keys, which are revoked at the end so the loopback platform is open again for other tests."""

import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from api.jobs.service import JobRequest, create_job
from api.main import create_app
from tests.conftest import Platform
from tests.corpus import OSR, SPEECH
from tests.helpers import FINAL
from tingxie.db import session_scope
from tingxie.keys import hash_key
from tingxie.models import ApiKey, Job, utcnow
from tingxie.queue import BATCH_STEPS, INTERACTIVE_STEPS, MAX_BACKLOG_STEPS
from tingxie.states import Priority

SHORT = SPEECH / "en" / "jfk.wav"  # 11 s: one chunk
BACKLOG_JOBS = 3  # of 35.5 s each, three chunks apiece
WAIT_S = 300


@pytest.fixture
def two_keys(platform: Platform) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    alice, bob = (f"tx_{name}_{secrets.token_hex(8)}" for name in ("alice", "bob"))
    with session_scope() as session:
        keys = [ApiKey(name=secret[:8], key_hash=hash_key(secret)) for secret in (alice, bob)]
        session.add_all(keys)
    with TestClient(create_app()) as http:
        yield http, _auth(alice), _auth(bob)
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id.in_([k.id for k in keys])).values(revoked_at=utcnow()))


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _submit(http: TestClient, headers: dict[str, str], path: Path, priority: str = "batch") -> str:
    with path.open("rb") as audio:
        response = http.post(
            "/v1/jobs", files={"file": (path.name, audio)}, data={"priority": priority}, headers=headers
        )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _finished(http: TestClient, headers: dict[str, str], job_id: str) -> datetime:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in FINAL:
            assert job["status"] == "completed", job["error"]
            return datetime.fromisoformat(job["finished_at"])
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not finish within {WAIT_S} s")


def test_a_short_job_of_another_key_and_an_interactive_job_pass_a_backlog(
    two_keys: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    http, alice, bob = two_keys
    backlog = [_submit(http, alice, OSR) for _ in range(BACKLOG_JOBS)]
    bobs = _submit(http, bob, SHORT)
    urgent = _submit(http, alice, SHORT, priority="interactive")
    last_of_backlog = max(_finished(http, alice, job_id) for job_id in backlog)
    assert _finished(http, bob, bobs) < last_of_backlog
    assert _finished(http, alice, urgent) < last_of_backlog


def test_an_unknown_priority_is_refused(client: httpx.Client) -> None:
    with OSR.open("rb") as audio:
        response = client.post("/v1/jobs", files={"file": (OSR.name, audio)}, data={"priority": "urgent"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_priority"


def test_a_keys_unfinished_jobs_lower_its_next_batch_job_by_at_most_the_backlog_steps(platform: Platform) -> None:
    with session_scope() as session:
        key = ApiKey(name="backlog", key_hash=hash_key(f"tx_backlog_{secrets.token_hex(8)}"), revoked_at=utcnow())
        session.add(key)
    steps = []
    for interactive in [False] * (MAX_BACKLOG_STEPS + 3) + [True]:
        request = JobRequest(priority=Priority.INTERACTIVE if interactive else Priority.BATCH)
        with session_scope() as session:
            steps.append(create_job(session, key.id, uuid.uuid4(), request, None, 1).queue_priority)
    first = BATCH_STEPS[0]
    assert steps == [first, first + 1, first + 2, first + 3, first + 3, first + 3, INTERACTIVE_STEPS[0]]
    with session_scope() as session:
        session.execute(delete(Job).where(Job.api_key_id == key.id))
        session.execute(delete(ApiKey).where(ApiKey.id == key.id))
