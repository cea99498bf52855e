"""Redelivery is normal: running a task twice changes nothing.

The worker steps run in this process against the real Postgres, S3 server and a real Redis broker that no
worker consumes, so the test controls every delivery and can count what was enqueued."""

import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select

from tests.conftest import IDLE_REDIS_DB, REDIS_HOST, clear_caches
from tests.helpers import OSR
from tingxie.db import session_scope
from tingxie.models import Chunk, Job
from tingxie.storage import get_storage
from worker import service


@pytest.fixture
def idle_broker(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    monkeypatch.setenv("TINGXIE_BROKER_URL", f"{REDIS_HOST}/{IDLE_REDIS_DB}")
    clear_caches()
    broker = redis.Redis.from_url(f"{REDIS_HOST}/{IDLE_REDIS_DB}")
    broker.flushdb()
    yield broker
    monkeypatch.undo()
    clear_caches()


def _stored_job() -> uuid.UUID:
    job_id = uuid.uuid4()
    key = f"jobs/{job_id}/source"
    get_storage().put_bytes(key, OSR.read_bytes())
    with session_scope() as session:
        session.add(Job(id=job_id, source_key=key, source_filename=OSR.name, source_bytes=OSR.stat().st_size))
    return job_id


def _job_and_chunks(job_id: uuid.UUID) -> tuple[Job, list[Chunk]]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        chunks = session.scalars(select(Chunk).where(Chunk.job_id == job_id).order_by(Chunk.index)).all()
        assert job is not None
        return job, list(chunks)


def test_redelivered_transcribe_leaves_one_set_of_segments(idle_broker: redis.Redis) -> None:
    job_id = _stored_job()
    service.prepare(job_id)
    service.prepare(job_id)  # redelivered prepare: the plan is not made twice
    job, chunks = _job_and_chunks(job_id)
    assert job.chunks_total == len(chunks) >= 3
    # The first prepare enqueued each chunk; the second re-sent the unfinished ones.
    assert idle_broker.llen("gpu") == 2 * len(chunks)

    service.transcribe(job_id, 0)
    first = _job_and_chunks(job_id)[1][0].segments
    service.transcribe(job_id, 0)
    job, chunks = _job_and_chunks(job_id)
    assert chunks[0].segments == first and first
    assert job.chunks_done == 1

    for chunk in chunks[1:]:
        service.transcribe(job_id, chunk.index)
    assert idle_broker.llen("cpu") == 1  # only the chunk that completed the set enqueued finalize
    service.finalize(job_id)
    service.finalize(job_id)
    job, chunks = _job_and_chunks(job_id)
    assert job.status == "completed"
    assert job.chunks_done == job.chunks_total
    assert len(job.segments or []) == sum(len(chunk.segments or []) for chunk in chunks)
