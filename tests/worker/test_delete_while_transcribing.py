"""Deleting a job while a worker records one of its chunks: both finish, neither is a deadlock's victim.

The delete runs the API's own code in this process; the worker step runs in a thread of it, both against
the real Postgres (and the S3 server, and a Redis broker no worker consumes)."""

from concurrent.futures import ThreadPoolExecutor

import redis

from api.jobs.service import delete_job
from tests.conftest import _wait_until
from tests.corpus import OSR
from tests.helpers import stored_job, waiting_for_a_row_lock
from tingxie.db import get_engine, session_scope
from tingxie.models import Chunk, Job
from tingxie.storage import get_storage
from worker import service


def test_a_job_deleted_while_its_chunk_is_recorded_is_deleted_and_the_worker_moves_on(
    idle_broker: redis.Redis,
) -> None:
    job_id = stored_job(OSR)
    service.prepare(job_id)
    with ThreadPoolExecutor(max_workers=1) as pool, session_scope() as session:
        # DELETE /v1/jobs/{id} locks the job's row, then removes its chunks' rows by cascade.
        session.get(Job, job_id, with_for_update=True)
        transcribing = pool.submit(service.transcribe, job_id, 0)
        _wait_until(lambda: waiting_for_a_row_lock(get_engine()), what="the worker's commit of its chunk")
        delete_job(session, get_storage(), None, job_id)
    transcribing.result(timeout=60)  # a deadlock aborts one side: here the worker, or the delete above
    with session_scope() as session:
        assert session.get(Job, job_id) is None
        assert session.get(Chunk, (job_id, 0)) is None
