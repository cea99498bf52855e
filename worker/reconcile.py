"""The reconciler: Postgres is the source of truth, workers die and the broker may lose messages.

Run every TINGXIE_RECONCILE_EVERY_SECONDS (30) by Celery beat. Each run queues again:

- work whose lease ran out (worker/leases.py): a prepare or a chunk whose worker died or was stopped;
- finalize for a job whose chunks are all done while it is still processing (a finalize that crashed);
- everything a job still needs when a message for it could not be sent (`jobs.resend_needed`);
- everything every unfinished job still needs when the broker lost its messages (a Redis flushed, or
  restarted without persistence: `tingxie.queue.broker_lost_messages`);
- last, the next step of any job with no progress for TINGXIE_RECONCILE_AFTER_SECONDS.

It sends webhook attempts whose time has come (retries, and attempts whose message or worker was lost).

It also deletes direct uploads no job was made of once they expire, and finished jobs past their
retention (TINGXIE_RETENTION_DAYS, or the job's own `retain_days`): storage first, then the rows, so
nothing with the job's prefix outlives its record. Once every TINGXIE_ORPHAN_AFTER_SECONDS it deletes
what is stored under `jobs/<id>/` for an id that is neither a job nor an upload and was not written to
for that long: objects nothing would ever find again.

Work a live lease shows running is left alone. Every task is idempotent and turned away while another
worker holds its lease, so a message sent twice costs a skipped task at worst, never a wrong result."""

import logging
import time
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select, update
from sqlalchemy.orm import Session

from tingxie import webhooks
from tingxie.db import session_scope
from tingxie.errors import StorageError
from tingxie.models import Chunk, Job, Upload, utcnow
from tingxie.queue import PREPARE, broker_lost_messages, enqueue, forget_broker_mark
from tingxie.settings import get_settings
from tingxie.states import FINAL_STATES, ChunkStatus, JobStatus
from tingxie.storage import JOBS_PREFIX, StoredFolder, get_storage, job_prefix, source_key
from worker.leases import UNSYNCHRONIZED
from worker.service import enqueue_chunk, enqueue_diarize_unless_running, enqueue_finalize, enqueue_unfinished

log = logging.getLogger(__name__)

BATCH = 500  # rows handled per query and run; the next run picks up the rest
UNFINISHED = (JobStatus.QUEUED, JobStatus.PROCESSING)


@dataclass(frozen=True)
class Reconciled:
    """What one run queued again, by reason."""

    prepares: int = 0  # prepare's lease ran out
    chunks: int = 0  # a chunk's lease ran out
    finalizes: int = 0  # every chunk done, the job still processing
    resends: int = 0  # jobs whose message the broker refused
    after_broker_loss: int = 0  # unfinished jobs resumed because the broker lost its messages
    stalled: int = 0  # jobs with no progress for reconcile_after_seconds
    expired: int = 0  # finished jobs deleted: their retention ran out
    webhooks: int = 0  # webhook attempts sent: retries that came due, attempts lost on the way
    uploads: int = 0  # direct uploads no job was made of, deleted when they expired
    orphans: int = 0  # stored folders of no job or upload, deleted

    @property
    def total(self) -> int:
        return sum(getattr(self, field.name) for field in fields(self))


def reconcile(now: datetime | None = None) -> Reconciled:
    now = now or utcnow()
    with session_scope() as session:
        prepares = _expired_prepares(session, now)
        chunks = _expired_chunks(session, now)
        finalizes = _unfinalized(session, now)
        resends = _resend_requested(session)
        due_webhooks = _due_webhooks(session, now)
    done = Reconciled(
        prepares,
        chunks,
        finalizes,
        resends,
        _after_broker_loss(),
        _stalled(now),
        _expire(now),
        due_webhooks,
        _expire_uploads(now),
        _orphans_if_due(now),
    )
    routine = done.expired + done.webhooks + done.uploads + done.orphans
    if done.total - routine:
        log.warning("reconciler queued work again: %s", done)
    elif routine:
        log.info("reconciler: %s", done)
    return done


def _expired_prepares(session: Session, now: datetime) -> int:
    jobs = session.scalars(_locked(select(Job).where(Job.status.in_(UNFINISHED), Job.lease_expires_at < now))).all()
    for job in jobs:
        _clear_lease(session, Job, Job.id == job.id)
        if job.chunks_total is None:
            enqueue(session, PREPARE, str(job.id), priority=job.queue_priority)
        else:
            enqueue_diarize_unless_running(session, job)  # the lease was diarize's
    return len(jobs)


def _expired_chunks(session: Session, now: datetime) -> int:
    rows = session.execute(
        _locked(
            select(Chunk.job_id, Chunk.index, Job.queue_priority)
            .join(Job, Job.id == Chunk.job_id)
            .where(Chunk.lease_expires_at < now, Chunk.status != ChunkStatus.DONE, Job.status.in_(UNFINISHED)),
            of=Chunk,
        )
    ).all()
    for job_id, index, queue_priority in rows:
        _clear_lease(session, Chunk, Chunk.job_id == job_id, Chunk.index == index)
        enqueue_chunk(session, job_id, index, queue_priority)
    return len(rows)


def _unfinalized(session: Session, now: datetime) -> int:
    """Jobs whose last chunk is done but which are still processing a lease period later."""
    quiet_since = now - timedelta(seconds=get_settings().lease_seconds)
    jobs = session.scalars(
        _locked(
            select(Job).where(
                Job.status == JobStatus.PROCESSING,
                Job.chunks_total.is_not(None),
                Job.chunks_done >= Job.chunks_total,
                Job.updated_at < quiet_since,
            )
        )
    ).all()
    for job in jobs:
        enqueue_finalize(session, job)
        enqueue_diarize_unless_running(session, job)  # finalize waits for it: handed back, it is sent again
        job.updated_at = now  # not again until another lease period passes
    return len(jobs)


def _resend_requested(session: Session) -> int:
    jobs = session.scalars(_locked(select(Job).where(Job.resend_needed, Job.status.in_(UNFINISHED)))).all()
    for job in jobs:
        job.resend_needed = False
        enqueue_unfinished(session, job)
    return len(jobs)


def _due_webhooks(session: Session, now: datetime) -> int:
    jobs = session.scalars(_locked(select(Job).where(Job.webhook_next_attempt_at <= now))).all()
    for job in jobs:
        webhooks.send_due(session, job)
    return len(jobs)


def _after_broker_loss() -> int:
    settings = get_settings()
    if not broker_lost_messages(settings):
        return 0
    try:
        return _resume_all_unfinished()
    except BaseException:
        forget_broker_mark(settings)  # the next run sees the loss again and finishes the job
        raise


def _resume_all_unfinished() -> int:
    resumed, after = 0, None
    while True:
        with session_scope() as session:
            query = select(Job).where(Job.status.in_(UNFINISHED)).order_by(Job.id).limit(BATCH)
            if after is not None:
                query = query.where(Job.id > after)
            jobs = session.scalars(query).all()
            for job in jobs:
                enqueue_unfinished(session, job)
        resumed += len(jobs)
        if len(jobs) < BATCH:
            return resumed
        after = jobs[-1].id


def _stalled(now: datetime) -> int:
    stale_before = now - timedelta(seconds=get_settings().reconcile_after_seconds)
    with session_scope() as session:
        jobs = session.scalars(
            _locked(
                select(Job).where(Job.status.in_(UNFINISHED), Job.updated_at < stale_before).order_by(Job.updated_at)
            )
        ).all()
        for job in jobs:
            enqueue_unfinished(session, job)
            job.updated_at = now  # not again until another full interval passes
    return len(jobs)


Columns = TypeVarTuple("Columns")


def _locked(query: Select[*Columns], of: type[Chunk] | None = None) -> Select[*Columns]:
    """At most BATCH rows, skipping those another reconciler (or a worker) holds locked."""
    return query.limit(BATCH).with_for_update(skip_locked=True, of=of)


def _clear_lease(session: Session, table: type[Job] | type[Chunk], *row: ColumnElement[bool]) -> None:
    session.execute(
        update(table).where(*row).values(leased_by=None, lease_expires_at=None), execution_options=UNSYNCHRONIZED
    )


def _expire(now: datetime) -> int:
    """Delete finished jobs past their retention: storage first, so a failure there leaves the row for the
    next run instead of objects nobody can find."""
    settings = get_settings()
    expired = Job.expires_at < now
    if settings.retention_days is not None:
        cutoff = now - timedelta(days=settings.retention_days)
        by_setting = and_(Job.status.in_(FINAL_STATES), Job.retain_days.is_(None), Job.finished_at < cutoff)
        expired = or_(expired, by_setting)
    with session_scope() as session:
        ids = session.scalars(select(Job.id).where(expired).limit(BATCH)).all()
    storage = get_storage()
    deleted = 0
    for job_id in ids:
        try:
            storage.delete_prefix(job_prefix(job_id))
        except StorageError as exc:
            log.warning("could not delete the stored objects of expired job %s yet: %s", job_id, exc)
            continue
        with session_scope() as session:
            session.execute(delete(Job).where(Job.id == job_id))
        deleted += 1
    return deleted


def _expire_uploads(now: datetime) -> int:
    with session_scope() as session:
        expired = session.execute(
            select(Upload.id, Upload.multipart_id).where(Upload.expires_at < now).limit(BATCH)
        ).all()
    storage, deleted = get_storage(), 0
    for upload_id, multipart_id in expired:
        try:
            storage.abort_upload(source_key(upload_id), multipart_id)
        except StorageError as exc:
            log.warning("could not delete expired upload %s yet: %s", upload_id, exc)
            continue
        with session_scope() as session:
            session.execute(delete(Upload).where(Upload.id == upload_id))
        deleted += 1
    return deleted


_next_orphan_sweep = 0.0  # time.monotonic() of this process's next sweep


def _orphans_if_due(now: datetime) -> int:
    global _next_orphan_sweep
    if time.monotonic() < _next_orphan_sweep:
        return 0
    _next_orphan_sweep = time.monotonic() + get_settings().orphan_after_seconds
    try:
        return sweep_orphans(now)
    except StorageError as exc:
        log.warning("could not look for orphaned objects: %s", exc)
        return 0


def sweep_orphans(now: datetime) -> int:
    """Delete the stored folders of ids that are no job and no upload, last written before the cutoff.
    The age keeps a request that is still between storing its upload and recording its job safe."""
    storage = get_storage()
    cutoff = now - timedelta(seconds=get_settings().orphan_after_seconds)
    named = [_folder_id(folder) for folder in storage.folders(JOBS_PREFIX) if folder.last_written < cutoff]
    stale = [folder_id for folder_id in named if folder_id is not None]  # other names are not tingxie's
    deleted = 0
    for ids in _batches(stale):
        for orphan in sorted(set(ids) - _owned(ids)):
            storage.delete_prefix(job_prefix(orphan))
            log.warning("deleted the stored objects of %s: no job or upload has that id", orphan)
            deleted += 1
    return deleted


def _folder_id(folder: StoredFolder) -> uuid.UUID | None:
    try:
        return uuid.UUID(folder.name)
    except ValueError:
        return None


def _batches(ids: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    return [ids[start : start + BATCH] for start in range(0, len(ids), BATCH)]


def _owned(ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with session_scope() as session:
        jobs = session.scalars(select(Job.id).where(Job.id.in_(ids))).all()
        uploads = session.scalars(select(Upload.id).where(Upload.id.in_(ids))).all()
    return {*jobs, *uploads}
