"""A job's end: the one place that makes a job final (completed, failed or canceled), so that what goes
with it (the time it finished, the moment its own retention runs out) is never set in one place and
forgotten in another."""

from datetime import datetime, timedelta

from tingxie.models import Job, utcnow
from tingxie.states import JobStatus


def finish(job: Job, status: JobStatus, now: datetime | None = None) -> None:
    assert status.is_final, status
    job.status = status
    job.finished_at = now or utcnow()
    if job.retain_days is not None:
        job.expires_at = job.finished_at + timedelta(days=job.retain_days)
