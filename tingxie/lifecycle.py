"""A job's lifecycle: the one module that changes a job's status.

queued -> processing (`start`) -> completed (`complete`) | failed (`fail`) | canceled (`cancel`).
Each change emits its event, `job.processing`, `job.completed`, `job.failed` or `job.canceled`, once
the transaction that made it commits: logged, and, for the final ones, the job's webhook
(tingxie.webhooks), whose first attempt is marked due in that same transaction so a lost message
cannot lose it. The live event stream (GET /v1/jobs/{id}/events) reads the committed state.

What goes with a job's end (when it finished, when its own retention runs out) is set here too, so it
is never set in one place and forgotten in another. Callers hold the job's row lock.
"""

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from tingxie import webhooks
from tingxie.db import after_commit
from tingxie.models import Job, utcnow
from tingxie.states import JobStatus

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 2000


def start(session: Session, job: Job) -> None:
    """Prepare has taken the job (again, after a crash: then nothing changes)."""
    if job.status == JobStatus.PROCESSING:
        return
    job.status = JobStatus.PROCESSING
    job.started_at = job.started_at or utcnow()
    _emit(session, job)


def complete(session: Session, job: Job) -> None:
    _finish(session, job, JobStatus.COMPLETED)


def fail(session: Session, job: Job, code: str, message: str) -> None:
    job.error_code, job.error_message = code, message[:MAX_ERROR_MESSAGE]
    _finish(session, job, JobStatus.FAILED)


def cancel(session: Session, job: Job) -> None:
    _finish(session, job, JobStatus.CANCELED)


def _finish(session: Session, job: Job, status: JobStatus) -> None:
    assert status.is_final and not JobStatus(job.status).is_final, (job.status, status)
    job.status = status
    job.finished_at = utcnow()
    if job.retain_days is not None:
        job.expires_at = job.finished_at + timedelta(days=job.retain_days)
    webhooks.schedule(session, job)
    _emit(session, job)


def _emit(session: Session, job: Job) -> None:
    event, job_id = webhooks.event_type(job.status), job.id
    after_commit(session, lambda: log.info("%s %s", event, job_id))
