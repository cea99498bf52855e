"""Retention: the reconciler deletes finished jobs past TINGXIE_RETENTION_DAYS or their own `retain_days`,
storage first, leaving no object with the job's prefix and no row; unfinished jobs are never touched.
TINGXIE_KEEP_SOURCE=false drops the uploaded audio as soon as a job completes.

The worker's steps run in this process on the suite's Postgres and S3 server, with a broker no worker
consumes."""

import uuid
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, update

from tests.conftest import clear_caches
from tests.corpus import OSR
from tests.helpers import run_worker_steps, stored_job
from tingxie.db import session_scope
from tingxie.models import Chunk, Job, utcnow
from tingxie.states import JobStatus
from tingxie.storage import get_storage, job_prefix
from worker.reconcile import reconcile


def _objects(job_id: uuid.UUID) -> list[str]:
    storage = get_storage()
    listing = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=job_prefix(job_id))  # type: ignore[attr-defined]
    return [item["Key"] for item in listing.get("Contents", [])]


def _finished_days_ago(job_id: uuid.UUID, days: float) -> None:
    """Move a completed job's end back in time, its own retention with it, as if it had finished then."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == JobStatus.COMPLETED
        job.finished_at = utcnow() - timedelta(days=days)
        if job.retain_days is not None:
            job.expires_at = job.finished_at + timedelta(days=job.retain_days)


def _exists(job_id: uuid.UUID) -> bool:
    with session_scope() as session:
        chunks = session.scalar(select(func.count()).select_from(Chunk).where(Chunk.job_id == job_id))
        return session.get(Job, job_id) is not None or bool(chunks)


def test_jobs_past_the_retention_are_deleted_with_their_audio(
    idle_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINGXIE_RETENTION_DAYS", "7")
    clear_caches()
    old, recent, running = stored_job(OSR), stored_job(OSR), stored_job(OSR)
    for job_id in (old, recent):
        run_worker_steps(job_id)
    assert _objects(old) == [f"{job_prefix(old)}source"]  # the chunks went when it completed
    _finished_days_ago(old, 8)
    _finished_days_ago(recent, 6)
    with session_scope() as session:  # queued for weeks: unfinished work is never deleted
        session.execute(update(Job).where(Job.id == running).values(created_at=utcnow() - timedelta(days=30)))

    assert reconcile().expired >= 1
    assert not _exists(old) and not _objects(old)
    assert _exists(recent) and _objects(recent)
    assert _exists(running) and _objects(running)


def test_a_jobs_own_retain_days_applies_without_a_server_retention(idle_broker: redis.Redis) -> None:
    short, forever = stored_job(OSR), stored_job(OSR)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == short).values(retain_days=1.0))
    for job_id in (short, forever):
        run_worker_steps(job_id)
        _finished_days_ago(job_id, 2)

    assert reconcile().expired >= 1
    assert not _exists(short) and not _objects(short)
    assert _exists(forever)  # no TINGXIE_RETENTION_DAYS: kept


def test_the_source_can_go_as_soon_as_the_job_completes(
    idle_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINGXIE_KEEP_SOURCE", "false")
    clear_caches()
    job_id = stored_job(OSR)
    job, _ = run_worker_steps(job_id)
    assert job.status == "completed" and job.text is not None
    assert _objects(job_id) == []
