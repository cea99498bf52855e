"""The pipeline over the database: prepare -> transcribe (per chunk) -> finalize, with diarize beside
the transcription when the job asked for speaker labels (finalize waits for it).

Each step reloads state by id, exits quietly when the job is gone or already past it, keeps its
transactions short (nothing is held open while audio is decoded or the model runs) and only then writes,
so a redelivered task changes nothing."""

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from tingxie import lifecycle
from tingxie.db import session_scope
from tingxie.errors import JobWarning
from tingxie.models import Chunk, Job, utcnow
from tingxie.queue import DIARIZE, FINALIZE, PREPARE, TRANSCRIBE, chunk_priority, enqueue
from tingxie.settings import get_settings
from tingxie.states import ChunkStatus, Diarization, JobStatus
from tingxie.storage import Storage, get_storage, job_prefix
from tingxie.transcript import MAX_SPEAKERS, SpeakerTurn, TranscriptSegment, from_rows, to_rows
from worker.audio.decode import check_duration
from worker.audio.plan import Window, window_audio
from worker.audio.prepare import PreparedAudio, StoredChunk, plan_and_store
from worker.audio.wavio import decode_wav
from worker.batching import Prompt
from worker.diarization.clustering import SpeakerCount
from worker.diarization.diarize import Diarizer
from worker.diarization.encoder import speaker_encoder
from worker.diarization.labels import with_speakers
from worker.engines.registry import get_batcher
from worker.fetch import fetch_into
from worker.leases import Lease, get_lease_keeper
from worker.merge import detected_languages, join_text, merge_segments, window_segments

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 2.0  # how often prepare records how far it has got (and shows the job is alive)


# --- prepare -------------------------------------------------------------------------------------------


def prepare(job_id: uuid.UUID) -> None:
    """Cut the recording into chunks, under the job's lease: a second prepare of the same job (a
    duplicate message) is turned away while this one runs."""
    started = _start_processing(job_id)
    if started is None:
        return
    keeper = get_lease_keeper()
    with keeper.holding(started.lease):
        if started.fetch_from is not None:
            _fetch_source(job_id, started.fetch_from, started.source_key)
        plan = _plan_and_store(job_id, started.source_key, get_storage())
        with session_scope() as session:
            keeper.clear(session, started.lease)
            job = _lock_active_job(session, job_id)
            if job is not None and job.chunks_total is None:
                _record_plan(session, job, plan)


@dataclass(frozen=True)
class PrepareWork:
    source_key: str
    lease: Lease
    fetch_from: str | None  # the audio URL, until its body is stored as the source


def _fetch_source(job_id: uuid.UUID, url: str, source_key: str) -> None:
    """Fetch audio submitted by URL into the job's source object, once: a prepare run again after a
    crash finds its size recorded and reads the stored copy."""
    storage = get_storage()
    fetched = fetch_into(url, lambda: storage.writer(source_key), get_settings())
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(source_bytes=fetched.size))


def _start_processing(job_id: uuid.UUID) -> PrepareWork | None:
    """Mark the job processing and take its lease; None when there is nothing (more) to prepare."""
    with session_scope() as session:
        job = _lock_active_job(session, job_id)
        if job is None:
            return None
        if job.chunks_total is not None:  # redelivered after planning: resend what is unfinished
            enqueue_unfinished(session, job)
            return None
        lease = get_lease_keeper().take(session, job_id)
        if lease is None:
            return None  # another worker is preparing it
        lifecycle.start(session, job)
        fetch_from = job.source_url if job.source_url and not job.source_bytes else None
        return PrepareWork(job.source_key, lease, fetch_from)


def _plan_and_store(job_id: uuid.UUID, source_key: str, storage: Storage) -> PreparedAudio:
    """The source fetched to a temporary file, then decoded, planned and stored in one streaming pass,
    with its progress written to the job and each chunk queued for transcription as it is stored."""
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="tingxie-") as tmp:
        path = Path(tmp) / "source"
        storage.download(source_key, path)
        progress = _PrepareProgress(job_id, check_duration(path, settings.max_duration_seconds))
        prefix = f"{job_prefix(job_id)}chunks/"
        return plan_and_store(
            path, storage, prefix, settings, on_progress=progress.update, on_chunk=lambda c: _queue_chunk(job_id, c)
        )


def _queue_chunk(job_id: uuid.UUID, stored: StoredChunk) -> None:
    """Record a chunk as soon as it is stored and queue its transcription. A prepare that runs again
    (redelivered after a crash) cuts the same chunks: one already recorded is queued again unless done."""
    with session_scope() as session:
        job = _lock_active_job(session, job_id)
        if job is None:
            return
        chunk = session.get(Chunk, (job_id, stored.index))
        if chunk is None:
            chunk = _chunk_row(job_id, stored)
            session.add(chunk)
            job.chunks_cut += 1
        if chunk.status != ChunkStatus.DONE:
            enqueue_chunk(session, job_id, stored.index, job.queue_priority)


def _chunk_row(job_id: uuid.UUID, stored: StoredChunk) -> Chunk:
    return Chunk(
        job_id=job_id,
        index=stored.index,
        start_s=stored.start,
        end_s=stored.end,
        audio_key=stored.audio_key,
        windows=[[w.start, w.end] for w in stored.windows],
    )


def enqueue_chunk(session: Session, job_id: uuid.UUID, index: int, job_step: int) -> None:
    """Queue chunk `index`'s transcription at its step (`job_step` is the job's queue priority)."""
    enqueue(session, TRANSCRIBE, str(job_id), str(index), priority=chunk_priority(job_step, index))


class _PrepareProgress:
    """Records in the job how much audio prepare has decoded, at most every PROGRESS_INTERVAL_S, and first
    the duration the container declares, so a client can show how far a long recording has got."""

    def __init__(self, job_id: uuid.UUID, declared_s: float | None) -> None:
        self._job_id = job_id
        self._last = time.monotonic()
        _record_prepared(job_id, 0.0, declared_s)

    def update(self, prepared_s: float) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            _record_prepared(self._job_id, prepared_s)


def _record_prepared(job_id: uuid.UUID, prepared_s: float, declared_s: float | None = None) -> None:
    values: dict[str, float] = {"prepared_s": prepared_s}
    if declared_s is not None:
        values["duration_s"] = declared_s
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id, Job.chunks_total.is_(None)).values(**values))


def _record_plan(session: Session, job: Job, plan: PreparedAudio) -> None:
    """The whole recording is cut: its chunks are already recorded and queued, so what is left is their
    count; should every chunk be done by now, the job goes straight to finalize."""
    job.duration_s = job.prepared_s = plan.duration
    job.warnings = [warning.as_dict() for warning in plan.warnings]
    # The count is read back from the write itself: SQLite takes no row lock on the read above, so the
    # last chunk may have been counted since.
    done, total = session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(chunks_total=len(plan.chunks), chunks_cut=len(plan.chunks))
        .returning(Job.chunks_done, Job.chunks_total)
    ).one()
    if job.diarization == Diarization.PENDING:
        enqueue(session, DIARIZE, str(job.id), priority=job.queue_priority)
    _finalize_if_complete(session, job, done, total)


def enqueue_unfinished(session: Session, job: Job) -> None:
    """Queue again what the job still needs, except work a live lease shows running: prepare, when the
    recording is not cut yet; every chunk recorded and not done; finalize once every chunk is done."""
    now = utcnow()
    preparing = session.scalar(select(exists().where(Job.id == job.id, Job.lease_expires_at >= now)))
    if job.chunks_total is None and not preparing:
        enqueue(session, PREPARE, str(job.id), priority=job.queue_priority)
        return
    unfinished = session.execute(
        select(Chunk.index, Chunk.lease_expires_at >= now).where(
            Chunk.job_id == job.id, Chunk.status != ChunkStatus.DONE
        )
    ).all()
    for index, running in unfinished:
        if not running:
            enqueue_chunk(session, job.id, index, job.queue_priority)
    if job.chunks_total is not None and not unfinished:
        enqueue_finalize(session, job)
    enqueue_diarize_unless_running(session, job)


def enqueue_diarize_unless_running(session: Session, job: Job) -> None:
    """Queue the job's diarization again if it is still to be done and no live lease shows it running."""
    if job.diarization != Diarization.PENDING or job.chunks_total is None:
        return
    running = session.scalar(select(exists().where(Job.id == job.id, Job.lease_expires_at >= utcnow())))
    if not running:
        enqueue(session, DIARIZE, str(job.id), priority=job.queue_priority)


# --- transcribe ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkWork:
    """What transcribing one chunk needs, read from the database in one short transaction."""

    job_id: uuid.UUID
    index: int
    audio_key: str
    start: float  # the chunk's start in the recording
    windows: tuple[Window, ...]  # relative to the chunk
    prompt: Prompt
    priority: int  # the chunk's broker priority step: interactive work goes first in the batcher too
    lease: Lease


def transcribe(job_id: uuid.UUID, index: int) -> None:
    """One chunk, under its lease: its windows join the process's batcher (and whatever other chunks and
    jobs are in it), and the chunk's own results are committed; the task is acknowledged only after that."""
    work = _chunk_work(job_id, index)
    if work is None:
        return
    keeper = get_lease_keeper()
    with keeper.holding(work.lease):
        samples = decode_wav(get_storage().get_bytes(work.audio_key))
        results = get_batcher().transcribe(window_audio(samples, work.windows), work.prompt, work.priority)
        segments = window_segments(work.start, work.windows, results)
        _commit_chunk(work, segments)
        log.info("job %s chunk %d: %d segments", job_id, index, len(segments))


def _chunk_work(job_id: uuid.UUID, index: int) -> ChunkWork | None:
    """The chunk's work with its lease taken, or None when there is none: the job is gone or final, the
    chunk is done, or another worker holds it."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        chunk = session.get(Chunk, (job_id, index))
        if job is None or chunk is None or JobStatus(job.status).is_final:
            return None
        if chunk.status == ChunkStatus.DONE:
            _finalize_if_complete(session, job, job.chunks_done, job.chunks_total)
            return None
        lease = get_lease_keeper().take(session, job_id, index)
        if lease is None:
            return None
        return ChunkWork(
            job_id=job_id,
            index=index,
            audio_key=chunk.audio_key,
            start=chunk.start_s,
            windows=tuple(Window(start, end) for start, end in chunk.windows),
            prompt=Prompt(language=None if job.language == "auto" else job.language, context=job.context),
            priority=chunk_priority(job.queue_priority, index),
            lease=lease,
        )


def _commit_chunk(work: ChunkWork, segments: list[TranscriptSegment]) -> None:
    """The chunk's segments recorded and its lease ended, in one transaction that locks the job's row
    before the chunk's: the order in which deleting a job takes them (the job, then its chunks by
    cascade). Touching the chunk first deadlocks against a delete of the job at that moment."""
    with session_scope() as session:
        session.get(Job, work.job_id, with_for_update=True)
        get_lease_keeper().clear(session, work.lease)
        _record_chunk(session, work.job_id, work.index, segments)


def _record_chunk(session: Session, job_id: uuid.UUID, index: int, segments: list[TranscriptSegment]) -> None:
    """Mark the chunk done and count it, once: a redelivered task finds it done and changes nothing."""
    marked = session.execute(
        update(Chunk)
        .where(Chunk.job_id == job_id, Chunk.index == index, Chunk.status != ChunkStatus.DONE)
        .values(status=ChunkStatus.DONE, segments=to_rows(segments), updated_at=utcnow())
    )
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        return
    done, total = session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(chunks_done=Job.chunks_done + 1, updated_at=utcnow())
        .returning(Job.chunks_done, Job.chunks_total)
    ).one()
    job = session.get(Job, job_id)
    if job is not None:
        _finalize_if_complete(session, job, done, total)


def _finalize_if_complete(session: Session, job: Job, done: int, total: int | None) -> None:
    if total is not None and done >= total:
        enqueue_finalize(session, job)


def enqueue_finalize(session: Session, job: Job) -> None:
    """The one way finalize is queued: by the last chunk, the end of prepare, a redelivered task, or the
    reconciler, once every chunk of the job is done."""
    enqueue(session, FINALIZE, str(job.id), priority=job.queue_priority)


# --- diarize -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiarizeWork:
    chunks: tuple[tuple[float, str], ...]  # each stored chunk's start in the recording and its audio, in order
    count: SpeakerCount
    lease: Lease  # the job's own: prepare, which held it before, is over


def diarize(job_id: uuid.UUID) -> None:
    """Who spoke when, from the stored chunks, under the job's lease; the turns are recorded once, and
    finalize (which waits for them) is queued if every chunk is transcribed by then."""
    work = _diarize_work(job_id)
    if work is None:
        return
    keeper = get_lease_keeper()
    with keeper.holding(work.lease):
        turns = _speaker_turns(work)
        with session_scope() as session:
            keeper.clear(session, work.lease)
            job = _lock_active_job(session, job_id)
            if job is None or job.diarization != Diarization.PENDING:
                return
            job.speaker_turns = [turn.as_dict() for turn in turns]
            job.diarization = Diarization.DONE
            log.info("job %s: %d speaker turns", job_id, len(turns))
            _finalize_if_complete(session, job, job.chunks_done, job.chunks_total)


def _diarize_work(job_id: uuid.UUID) -> DiarizeWork | None:
    with session_scope() as session:
        job = _lock_active_job(session, job_id)
        if job is None or job.diarization != Diarization.PENDING or job.chunks_total is None:
            return None
        lease = get_lease_keeper().take(session, job_id)
        if lease is None:
            return None  # another worker is diarizing it
        chunks = session.execute(
            select(Chunk.start_s, Chunk.audio_key).where(Chunk.job_id == job_id).order_by(Chunk.index)
        ).all()
        count = SpeakerCount(
            exactly=job.speakers, at_least=job.min_speakers or 1, at_most=job.max_speakers or MAX_SPEAKERS
        )
        return DiarizeWork(tuple((start, key) for start, key in chunks), count, lease)


def _speaker_turns(work: DiarizeWork) -> list[SpeakerTurn]:
    """One stored chunk at a time through the diarizer: memory holds one chunk's samples and the pieces'
    embeddings, whatever the recording's length."""
    diarizer = Diarizer(speaker_encoder(get_settings()))
    storage = get_storage()
    for start, audio_key in work.chunks:
        diarizer.add(start, decode_wav(storage.get_bytes(audio_key)))
    return diarizer.turns(work.count)


def diarization_failed(job_id: uuid.UUID, message: str) -> None:
    """The transcript goes on without speakers: the job completes with a `diarization_failed` warning."""
    with session_scope() as session:
        job = _lock_active_job(session, job_id)
        if job is None or job.diarization != Diarization.PENDING:
            return
        log.warning("job %s: diarization failed, completing without speakers: %s", job_id, message)
        job.diarization = Diarization.FAILED
        warning = JobWarning("diarization_failed", f"no speaker labels: {message}")
        job.warnings = [*(job.warnings or []), warning.as_dict()]
        _finalize_if_complete(session, job, job.chunks_done, job.chunks_total)


# --- finalize and failure ------------------------------------------------------------------------------


def finalize(job_id: uuid.UUID) -> None:
    with session_scope() as session:
        job = _lock_active_job(session, job_id)
        if job is None:
            return
        if job.chunks_total is None:
            return  # prepare is still cutting the recording; its end enqueues finalize if all are done
        chunks = session.scalars(select(Chunk).where(Chunk.job_id == job_id).order_by(Chunk.index)).all()
        if any(chunk.status != ChunkStatus.DONE for chunk in chunks):
            return  # a late duplicate of finalize; the last chunk enqueues it again
        if job.diarization == Diarization.PENDING:
            return  # the end of diarize enqueues finalize
        segments = merge_segments(from_rows(chunk.segments) for chunk in chunks)
        if job.diarization == Diarization.DONE:
            segments = with_speakers(segments, [SpeakerTurn.from_dict(row) for row in job.speaker_turns or []])
        job.segments = to_rows(segments)
        job.text = join_text(segments)
        job.languages = detected_languages(segments)
        lifecycle.complete(session, job)
    # The chunks were only for transcribing; the source goes too unless it is to be kept.
    get_storage().delete_prefix(
        job_prefix(job_id) if not get_settings().keep_source else f"{job_prefix(job_id)}chunks/"
    )


def fail(job_id: uuid.UUID, code: str, message: str) -> None:
    with session_scope() as session:
        job = _lock_active_job(session, job_id)
        if job is None:
            return
        log.info("job %s failed: %s: %s", job_id, code, message)
        lifecycle.fail(session, job, code, message)


def _lock_active_job(session: Session, job_id: uuid.UUID) -> Job | None:
    """The job, row-locked, unless it is gone or already final."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or JobStatus(job.status).is_final:
        return None
    return job
