"""Job operations for the API. Services flush; the request's session commits."""

import math
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select
from sqlalchemy.orm import Session, defer

from tingxie import lifecycle, webhooks
from tingxie.engines import KNOWN_CODES, engine_spec
from tingxie.errors import Conflict, InvalidRequest, NotFound
from tingxie.languages import normalize_code
from tingxie.models import Job, WebhookDelivery
from tingxie.queue import MAX_BACKLOG_STEPS, job_priority
from tingxie.states import Diarization, JobStatus, Priority
from tingxie.storage import Storage, job_prefix, source_key
from tingxie.transcript import MAX_SPEAKERS

MAX_PAGE = 200
MIN_RETAIN_DAYS = 1 / 24


@dataclass(frozen=True)
class SpeakerRequest:
    """Speaker labels asked for, with what the client knows of the number of speakers."""

    exactly: int | None = None
    at_least: int | None = None
    at_most: int | None = None


@dataclass(frozen=True)
class JobRequest:
    language: str = "auto"
    context: str | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    priority: Priority = Priority.BATCH
    retain_days: float | None = None
    speakers: SpeakerRequest | None = None  # None: no speaker labels


def validate_language(language: str, engine: str) -> str:
    """ "auto", or the canonical code of a language the configured engine transcribes."""
    language = language.strip() or "auto"
    if language == "auto":
        return language
    spec, code = engine_spec(engine), normalize_code(language)
    if spec.accepts(code):
        return code
    valid = ", ".join(("auto", *sorted(spec.languages)))
    if code in KNOWN_CODES:
        raise InvalidRequest(
            f"the {engine} engine does not transcribe {code!r}; valid values: {valid}", code="unsupported_language"
        )
    raise InvalidRequest(f"unknown language {language!r}; valid values: {valid}", code="invalid_language")


MAX_IDEMPOTENCY_KEY = 200  # the column's width
MAX_FILENAME = 255
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab and line breaks, and DEL


def validate_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or not value.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters", code="invalid_idempotency_key"
        )
    return value


def validate_context(context: str | None) -> str | None:
    """The engine prompt; control characters (NUL above all, which Postgres cannot store) are refused."""
    if not context or not context.strip():
        return None
    if _CONTROL.search(context):
        raise InvalidRequest("context must not contain control characters", code="invalid_context")
    return context


def clean_filename(name: str | None) -> str | None:
    """The name to show for an upload: its last path part, without control characters, at most 255."""
    if name is None:
        return None
    base = _CONTROL.sub("", name.replace("\\", "/")).rsplit("/", 1)[-1].strip()
    return base[:MAX_FILENAME] or None


def validate_priority(priority: str) -> Priority:
    try:
        return Priority(priority.strip() or Priority.BATCH)
    except ValueError:
        valid = ", ".join(Priority)
        raise InvalidRequest(f"unknown priority {priority!r}; valid values: {valid}", code="invalid_priority") from None


def validate_speakers(fields: dict[str, str], default_on: bool) -> SpeakerRequest | None:
    """`diarize` (true/false; the server's TINGXIE_DIARIZATION when absent) and the optional `speakers`,
    `min_speakers`, `max_speakers` (1 to MAX_SPEAKERS). Giving a count asks for diarization."""
    counts = {name: _speaker_count(fields.get(name), name) for name in ("speakers", "min_speakers", "max_speakers")}
    asked = _flag(fields.get("diarize"), "diarize")
    if asked is False:
        return None
    if not (asked or default_on or any(value is not None for value in counts.values())):
        return None
    exactly, at_least, at_most = counts["speakers"], counts["min_speakers"], counts["max_speakers"]
    if exactly is not None and (at_least is not None or at_most is not None):
        raise InvalidRequest("give speakers, or min_speakers and max_speakers, not both", code="invalid_speakers")
    if at_least is not None and at_most is not None and at_least > at_most:
        raise InvalidRequest("min_speakers is more than max_speakers", code="invalid_speakers")
    return SpeakerRequest(exactly, at_least, at_most)


def _flag(value: str | None, name: str) -> bool | None:
    if value is None or not value.strip():
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise InvalidRequest(f"{name} must be true or false, not {value!r}", code="invalid_diarize")


def _speaker_count(value: str | None, name: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SPEAKERS:
        raise InvalidRequest(f"{name} must be a whole number from 1 to {MAX_SPEAKERS}", code="invalid_speakers")
    return count


def validate_retain_days(value: str | None, retention_days: float | None) -> float | None:
    """Days to keep the job once finished: at least one hour's worth, at most TINGXIE_RETENTION_DAYS."""
    if value is None or not value.strip():
        return None
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not MIN_RETAIN_DAYS <= days <= (retention_days or math.inf):
        longest = f"{retention_days:g}, this server's retention" if retention_days else "any number"
        raise InvalidRequest(
            f"retain_days must be between {MIN_RETAIN_DAYS:.3g} (an hour) and {longest}", code="invalid_retain_days"
        )
    return days


# Built once: constructing the expression (the IN list's coercion above all) cost more than running it.
# Only the first MAX_BACKLOG_STEPS rows count toward a priority, so only those are read: a key with
# thousands of queued jobs costs its next submit no more than one with three.
_UNFINISHED = Job.status.in_([JobStatus.QUEUED, JobStatus.PROCESSING])


def _counted_up_to_backlog_steps(*where: ColumnElement[bool]) -> Select[int]:
    some = select(Job.id).where(*where).limit(MAX_BACKLOG_STEPS).subquery()
    return select(func.count()).select_from(some)


_UNFINISHED_OF_KEY = _counted_up_to_backlog_steps(Job.api_key_id == bindparam("key_id"), _UNFINISHED)
_UNFINISHED_KEYLESS = _counted_up_to_backlog_steps(Job.api_key_id.is_(None), _UNFINISHED)


def _unfinished_jobs(session: Session, key_id: uuid.UUID | None) -> int:
    if key_id is None:
        return session.scalar(_UNFINISHED_KEYLESS) or 0
    return session.scalar(_UNFINISHED_OF_KEY, {"key_id": key_id}) or 0


_STATUS_ONLY = (defer(Job.segments), defer(Job.text), defer(Job.speaker_turns))


def create_job(
    session: Session,
    key_id: uuid.UUID | None,
    job_id: uuid.UUID,
    request: JobRequest,
    filename: str | None,
    size: int,
    source_url: str | None = None,
) -> Job:
    job = Job(
        id=job_id,
        api_key_id=key_id,
        language=request.language,
        context=request.context,
        webhook_url=request.webhook_url,
        idempotency_key=request.idempotency_key,
        source_key=source_key(job_id),
        source_url=source_url,
        source_filename=filename,
        source_bytes=size,
        priority=request.priority,
        retain_days=request.retain_days,
        diarization=Diarization.PENDING if request.speakers else None,
        speakers=request.speakers.exactly if request.speakers else None,
        min_speakers=request.speakers.at_least if request.speakers else None,
        max_speakers=request.speakers.at_most if request.speakers else None,
        queue_priority=job_priority(request.priority == Priority.INTERACTIVE, _unfinished_jobs(session, key_id)),
    )
    session.add(job)
    session.flush()
    return job


def withdraw_job(session: Session, storage: Storage | None, job_id: uuid.UUID) -> None:
    """Remove a job that was never queued, and, given the storage, everything stored for it."""
    if storage is not None:
        storage.delete_prefix(job_prefix(job_id))
    session.execute(delete(Job).where(Job.id == job_id))


def find_idempotent(session: Session, key_id: uuid.UUID | None, idempotency_key: str | None) -> Job | None:
    if idempotency_key is None:
        return None
    return session.scalar(
        select(Job).where(
            Job.api_key_id.is_(key_id) if key_id is None else Job.api_key_id == key_id,
            Job.idempotency_key == idempotency_key,
        )
    )


def get_job(session: Session, key_id: uuid.UUID | None, job_id: uuid.UUID, *, lock: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=lock)
    if job is None or job.api_key_id != key_id:
        raise NotFound(f"no job {job_id}")
    return job


def job_status(session: Session, key_id: uuid.UUID | None, job_id: uuid.UUID) -> Job:
    """The job for a status poll: its transcript columns are read only if it is completed (they are
    loaded when first touched, in this session), so polling a long recording's job stays cheap."""
    owner = Job.api_key_id.is_(None) if key_id is None else Job.api_key_id == key_id
    query = select(Job).where(Job.id == job_id, owner).options(*_STATUS_ONLY)
    job = session.scalar(query)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    session: Session, key_id: uuid.UUID | None, status: JobStatus | None, limit: int, after: uuid.UUID | None
) -> list[Job]:
    """Newest first; `after` is the id of the last job of the previous page."""
    query = select(Job).where(Job.api_key_id.is_(None) if key_id is None else Job.api_key_id == key_id)
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        cursor = get_job(session, key_id, after)
        query = query.where(
            (Job.created_at < cursor.created_at) | ((Job.created_at == cursor.created_at) & (Job.id < cursor.id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(min(limit, MAX_PAGE))
    return list(session.scalars(query))


def cancel_job(session: Session, key_id: uuid.UUID | None, job_id: uuid.UUID) -> Job:
    job = get_job(session, key_id, job_id, lock=True)
    if JobStatus(job.status).is_final:
        raise Conflict(f"job {job_id} is already {job.status}", code="job_finished")
    lifecycle.cancel(session, job)
    return job


def webhook_deliveries(session: Session, key_id: uuid.UUID | None, job_id: uuid.UUID) -> list[WebhookDelivery]:
    job = get_job(session, key_id, job_id)
    query = select(WebhookDelivery).where(WebhookDelivery.job_id == job.id)
    return list(session.scalars(query.order_by(WebhookDelivery.started_at, WebhookDelivery.attempt)))


def redeliver_webhook(session: Session, key_id: uuid.UUID | None, job_id: uuid.UUID) -> Job:
    job = get_job(session, key_id, job_id, lock=True)
    if not job.webhook_url:
        raise Conflict(f"job {job_id} has no webhook_url", code="no_webhook")
    if not JobStatus(job.status).is_final:
        raise Conflict(f"job {job_id} is {job.status}; its webhook is sent once it ends", code="job_not_finished")
    webhooks.redeliver(session, job)
    return job


def delete_job(session: Session, storage: Storage, key_id: uuid.UUID | None, job_id: uuid.UUID) -> None:
    job = get_job(session, key_id, job_id, lock=True)
    storage.delete_prefix(job_prefix(job.id))
    session.delete(job)
