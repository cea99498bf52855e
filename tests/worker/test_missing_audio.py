"""Audio deleted from storage while its job is open fails the job with `audio_missing`.

Storage that answers "no such object" will not answer differently on a retry, so the job must not be retried,
handed back and re-run by the reconciler forever. The steps run in this process, through the Celery tasks'
own error handling, against the real Postgres, S3 server and a Redis broker that no worker consumes."""

import redis

from tests.corpus import OSR
from tests.helpers import job_and_chunks, stored_job
from tingxie.storage import get_storage
from worker import service, tasks


def test_source_deleted_before_prepare_fails_the_job(idle_broker: redis.Redis) -> None:
    job_id = stored_job(OSR)
    get_storage().delete_prefix(f"jobs/{job_id}/")

    tasks.prepare.apply(args=[str(job_id)]).get()

    job, chunks = job_and_chunks(job_id)
    assert job.status == "failed"
    assert job.error_code == "audio_missing"
    assert f"jobs/{job_id}/source" in (job.error_message or "")
    assert chunks == []


def test_chunk_audio_deleted_before_transcribe_fails_the_job(idle_broker: redis.Redis) -> None:
    job_id = stored_job(OSR)
    service.prepare(job_id)
    _, chunks = job_and_chunks(job_id)
    get_storage().delete_prefix(f"jobs/{job_id}/")

    tasks.transcribe.apply(args=[str(job_id), str(chunks[0].index)]).get()

    job, _ = job_and_chunks(job_id)
    assert job.status == "failed"
    assert job.error_code == "audio_missing"
