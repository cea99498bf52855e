"""The status poll's event-loop path (api/jobs/poll.py) and the key cache it relies on (api/key_cache.py).

The app runs in this process (FastAPI's TestClient, its lifespan included) against the suite's Postgres:
the fast path must answer exactly as the session path does, hand completed jobs to it, and stop
honouring a key the moment it is revoked, by whatever SQL."""

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from api.jobs.poll import StatusReader
from api.jobs.schemas import JobOut
from api.key_cache import key_cache
from api.main import create_app
from tests.conftest import _wait_until
from tingxie.db import session_scope
from tingxie.keys import hash_key
from tingxie.models import ApiKey, Job, utcnow
from tingxie.states import JobStatus

NOTIFICATION_WAIT_S = 2.0  # a revocation reaches the listener in milliseconds; this is a generous bound


@dataclass(frozen=True)
class Keyed:
    http: TestClient
    reader: StatusReader
    key_id: uuid.UUID
    headers: dict[str, str]


@pytest.fixture
def keyed(service_env: dict[str, str]) -> Iterator[Keyed]:
    secret = f"tx_poll_{secrets.token_hex(8)}"
    with session_scope() as session:
        key = ApiKey(name="poll", key_hash=hash_key(secret))
        session.add(key)
    with TestClient(create_app()) as http:
        reader = http.app.state.status_reader  # type: ignore[attr-defined]
        # The pool and the key listener connect in the background; on a loaded machine the first polls
        # would take the session path until they have.
        assert http.portal is not None
        http.portal.call(reader.wait_connected, 30.0)
        _wait_until(lambda: key_cache.live, what="the key change listener", timeout=30)
        yield Keyed(http, reader, key.id, {"Authorization": f"Bearer {secret}"})
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=utcnow()))


def _job(key_id: uuid.UUID | None, status: JobStatus, **fields: object) -> uuid.UUID:
    job = Job(api_key_id=key_id, status=status, source_key=f"test/{uuid.uuid4()}", **fields)
    with session_scope() as session:
        session.add(job)
    return job.id


def _session_answer(job_id: uuid.UUID) -> dict[str, object]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return JobOut.of(job).model_dump(mode="json")


def _poll(keyed: Keyed, job_id: uuid.UUID) -> tuple[int, dict[str, object], int]:
    """Status code, body, and how many rows the fast path read for it (0: the session path answered)."""
    before = keyed.reader.rows_read
    response = keyed.http.get(f"/v1/jobs/{job_id}", headers=keyed.headers)
    return response.status_code, response.json(), keyed.reader.rows_read - before


def test_a_poll_read_on_the_event_loop_answers_as_the_session_path(keyed: Keyed) -> None:
    started = utcnow() - timedelta(seconds=30)
    processing = _job(
        keyed.key_id,
        JobStatus.PROCESSING,
        source_filename="会议.wav",
        duration_s=612.5,
        prepared_s=300.0,
        chunks_cut=2,
        chunks_done=1,
        started_at=started,
        warnings=[{"code": "audio_truncated", "message": "the last 2 s could not be decoded"}],
        webhook_url="https://hooks.example.com/tingxie",
        webhook_attempts=2,
        webhook_last_status=500,
        webhook_next_attempt_at=utcnow() + timedelta(minutes=1),
    )
    failed = _job(
        keyed.key_id,
        JobStatus.FAILED,
        started_at=started,
        finished_at=utcnow(),
        error_code="audio_undecodable",
        error_message="no audio stream",
    )
    keyed.http.get(f"/v1/jobs/{processing}", headers=keyed.headers)  # the first poll caches the key
    for job_id in (processing, failed):
        status, body, rows_read = _poll(keyed, job_id)
        assert (status, rows_read) == (200, 1)
        assert body == _session_answer(job_id)
    assert _poll(keyed, processing)[1]["webhook"] == {
        "url": "https://hooks.example.com/tingxie",
        "attempts": 2,
        "last_status": 500,
        "next_attempt_at": _session_answer(processing)["webhook"]["next_attempt_at"],  # type: ignore[index]
    }


def test_a_completed_job_is_answered_with_its_transcript_by_the_session_path(keyed: Keyed) -> None:
    segments = [{"start": 0.0, "end": 2.5, "language": "zh", "text": "你好"}]
    job_id = _job(keyed.key_id, JobStatus.COMPLETED, text="你好", segments=segments, languages=["zh"])
    keyed.http.get(f"/v1/jobs/{job_id}", headers=keyed.headers)
    status, body, rows_read = _poll(keyed, job_id)
    assert (status, rows_read) == (200, 1)  # read once, then handed over for the transcript columns
    assert body == _session_answer(job_id)
    # A row stored before segments had words and speakers reads back with none.
    assert body["text"] == "你好" and body["segments"] == [segments[0] | {"speaker": None, "words": []}]


def test_another_keys_job_and_a_missing_one_are_not_found(keyed: Keyed) -> None:
    theirs = _job(None, JobStatus.QUEUED)  # the keyless local user's
    try:
        keyed.http.get(f"/v1/jobs/{theirs}", headers=keyed.headers)
        for job_id in (theirs, uuid.uuid4()):
            status, body, rows_read = _poll(keyed, job_id)
            assert (status, rows_read) == (404, 1)
            assert body["error"]["code"] == "not_found"  # type: ignore[index]
    finally:
        with session_scope() as session:
            session.execute(delete(Job).where(Job.id == theirs))


def test_a_key_revoked_by_plain_sql_is_refused_at_once(keyed: Keyed) -> None:
    job_id = _job(keyed.key_id, JobStatus.QUEUED)
    keyed.http.get(f"/v1/jobs/{job_id}", headers=keyed.headers)
    assert _poll(keyed, job_id)[::2] == (200, 1)  # answered from the cached key
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id == keyed.key_id).values(revoked_at=utcnow()))
    revoked = time.monotonic()
    while (status := _poll(keyed, job_id)[0]) == 200 and time.monotonic() - revoked < NOTIFICATION_WAIT_S:
        time.sleep(0.005)
    assert status == 401
    assert time.monotonic() - revoked < NOTIFICATION_WAIT_S
