"""Redelivery is normal: running a task twice changes nothing.

The worker steps run in this process against the real Postgres, S3 server and a real Redis broker that no
worker consumes, so the test controls every delivery and can count what was enqueued."""

import redis

from tests.corpus import OSR
from tests.helpers import job_and_chunks, queued, stored_job
from worker import service


def test_redelivered_transcribe_leaves_one_set_of_segments(idle_broker: redis.Redis) -> None:
    job_id = stored_job(OSR)
    service.prepare(job_id)
    service.prepare(job_id)  # redelivered prepare: the plan is not made twice
    job, chunks = job_and_chunks(job_id)
    assert job.chunks_total == len(chunks) >= 3
    # The first prepare enqueued each chunk; the second re-sent the unfinished ones.
    assert len(queued(idle_broker, "gpu")) == 2 * len(chunks)

    service.transcribe(job_id, 0)
    first = job_and_chunks(job_id)[1][0].segments
    service.transcribe(job_id, 0)
    job, chunks = job_and_chunks(job_id)
    assert chunks[0].segments == first and first
    assert job.chunks_done == 1

    for chunk in chunks[1:]:
        service.transcribe(job_id, chunk.index)
    assert len(queued(idle_broker, "cpu")) == 1  # only the chunk that completed the set enqueued finalize
    service.finalize(job_id)
    service.finalize(job_id)
    job, chunks = job_and_chunks(job_id)
    assert job.status == "completed"
    assert job.chunks_done == job.chunks_total
    assert len(job.segments or []) == sum(len(chunk.segments or []) for chunk in chunks)
