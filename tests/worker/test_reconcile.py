"""The reconciler finishes jobs whose messages were lost: it re-enqueues each stalled job's next step."""

from datetime import timedelta

import redis
from sqlalchemy import update

from tests.corpus import OSR
from tests.helpers import clear_queues, job_and_chunks, queued, stored_job
from tingxie.db import session_scope
from tingxie.models import Chunk, Job, utcnow
from tingxie.settings import get_settings
from worker import service
from worker.reconcile import reconcile


def _age(job_id: object, seconds: float) -> None:
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow() - timedelta(seconds=seconds)))


def test_stalled_jobs_get_their_next_step_again(idle_broker: redis.Redis) -> None:
    stale = get_settings().reconcile_after_seconds + 60
    lost_prepare = stored_job(OSR)
    lost_chunk = stored_job(OSR)
    service.prepare(lost_chunk)
    chunks = job_and_chunks(lost_chunk)[1]
    for chunk in chunks[1:]:
        service.transcribe(lost_chunk, chunk.index)
    fresh = stored_job(OSR)
    clear_queues(idle_broker, "cpu", "gpu")
    for job_id in (lost_prepare, lost_chunk):
        _age(job_id, stale)

    assert reconcile() == 2
    cpu, gpu = queued(idle_broker, "cpu"), queued(idle_broker, "gpu")
    assert len(cpu) == 1 and str(lost_prepare).encode() in cpu[0]  # prepare again
    assert len(gpu) == 1 and str(lost_chunk).encode() in gpu[0]  # only the unfinished chunk
    assert str(fresh).encode() not in b"".join(cpu + gpu)
    assert reconcile() == 0  # touched jobs wait another full interval

    with session_scope() as session:  # once every chunk is done, the missing step is finalize
        session.execute(update(Chunk).where(Chunk.job_id == lost_chunk).values(status="done", segments=[]))
    _age(lost_chunk, stale)
    clear_queues(idle_broker, "cpu", "gpu")
    assert reconcile() == 1
    assert len(queued(idle_broker, "cpu")) == 1 and not queued(idle_broker, "gpu")
