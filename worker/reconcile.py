"""The reconciler: Postgres is the source of truth, the broker may lose messages.

Periodically, work that has made no progress for longer than the broker's own redelivery timeout is
enqueued again. Every task is idempotent, so a message that was merely slow costs a duplicate run at
worst, never a wrong result."""

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tingxie.db import session_scope
from tingxie.models import Job, utcnow
from tingxie.queue import PREPARE, enqueue
from tingxie.settings import get_settings
from tingxie.states import JobStatus
from worker.service import enqueue_unfinished

log = logging.getLogger(__name__)

BATCH = 500  # stale jobs handled per run; the next run picks up the rest


def reconcile(now: datetime | None = None) -> int:
    """Re-enqueue the next step of every stalled job; returns how many jobs were touched."""
    stale_before = (now or utcnow()) - timedelta(seconds=get_settings().reconcile_after_seconds)
    with session_scope() as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.status.in_([JobStatus.QUEUED, JobStatus.PROCESSING]), Job.updated_at < stale_before)
            .order_by(Job.updated_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            _resume(session, job)
            job.updated_at = utcnow()  # not again until another full interval passes
    if jobs:
        log.warning("re-enqueued the next step of %d stalled jobs", len(jobs))
    return len(jobs)


def _resume(session: Session, job: Job) -> None:
    if job.chunks_total is None:
        enqueue(session, PREPARE, str(job.id), priority=job.queue_priority)
    else:
        enqueue_unfinished(session, job)
