"""Turning a request into a stored source and a queued job, shared by the v1, seed and OpenAI routes.

No transaction stays open while an upload streams: the audio goes to storage first, then the job row is
written in its own short transaction, and the prepare task is sent after that commit (a broker that
refuses it turns the request into a 503 and removes the job again)."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.jobs import service
from api.jobs.limits import check_key_limits, limits_apply
from api.jobs.schemas import JobByUrl
from api.jobs.upload import receive_upload
from api.jobs.uploads import claim_upload, forget_upload
from tingxie.db import session_scope
from tingxie.errors import BrokerUnavailable, InvalidRequest, PayloadTooLarge
from tingxie.models import Job
from tingxie.outbound import Guard, check_submitted
from tingxie.queue import PREPARE, send_now
from tingxie.settings import Settings
from tingxie.states import Priority
from tingxie.storage import Storage


async def accept_multipart(
    request: Request,
    settings: Settings,
    storage: Storage,
    key: uuid.UUID | None,
    idempotency_key: str | None = None,
    field_aliases: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
    check_fields: Callable[[dict[str, str]], None] | None = None,
) -> tuple[Job, dict[str, str]]:
    """Stream the `file` part to storage and queue a job; returns the job and the form's text fields
    (`defaults` for those the form leaves out). The key's limits are checked before the upload streams;
    `check_fields` validates the route's own fields before the job exists."""
    idempotency_key = service.validate_idempotency_key(idempotency_key)
    existing = await _find_idempotent(key, idempotency_key)
    if existing is not None:
        return existing, {}
    await _check_key_limits(key, settings)
    job_id = uuid.uuid4()
    source = service.source_key(job_id)
    async with _discard_on_error(storage, source):  # whatever fails after the file part was stored
        upload = await receive_upload(request, lambda: storage.writer(source), settings.max_upload_bytes)
        given = {(field_aliases or {}).get(name, name): value for name, value in upload.fields.items()}
        fields = (defaults or {}) | given
        if not upload.stored:
            raise InvalidRequest("the form has no 'file' part", code="missing_file")
        job_request = await _job_request(fields, idempotency_key, settings)
        if check_fields is not None:
            check_fields(fields)
        _check_size(upload.size, settings)
        filename = service.clean_filename(upload.filename)
        return await _create_or_join(storage, key, job_id, job_request, filename, upload.size), fields


MAX_JSON_BYTES = 256 * 1024


async def accept_json(
    request: Request, settings: Settings, storage: Storage, key: uuid.UUID | None, idempotency_key: str | None
) -> Job:
    """A job whose audio is a URL a worker fetches (checked here by the SSRF guard; nothing is
    downloaded here), or a direct upload's object (POST /v1/uploads)."""
    body = await _json_body(request)
    if (body.audio_url is None) == (body.upload_id is None):
        raise InvalidRequest("give either audio_url or upload_id", code="invalid_body")
    idempotency_key = service.validate_idempotency_key(idempotency_key)
    existing = await _find_idempotent(key, idempotency_key)
    if existing is not None:
        return existing
    given = body.model_dump(exclude={"audio_url", "upload_id"}, exclude_none=True)
    fields = {name: str(value) for name, value in given.items()}
    if body.upload_id is not None:
        return await _accept_upload(body.upload_id, fields, idempotency_key, settings, storage, key)
    await _check_key_limits(key, settings)
    job_request = await _job_request(fields, idempotency_key, settings)
    audio_url = await _checked_url(body.audio_url or "", settings, "audio URL")
    filename = service.clean_filename(unquote(urlsplit(audio_url).path)) or urlsplit(audio_url).hostname
    return await _create_or_join(storage, key, uuid.uuid4(), job_request, filename, 0, source_url=audio_url)


async def _accept_upload(
    upload_id: uuid.UUID,
    fields: dict[str, str],
    idempotency_key: str | None,
    settings: Settings,
    storage: Storage,
    key: uuid.UUID | None,
) -> Job:
    """The job of a direct upload: its id is the upload's, so asking twice answers the same job. The key's
    limits were checked when the upload was made."""
    made = await run_in_threadpool(_find_winner, key, upload_id, None)
    if made is not None:
        return made
    job_request = await _job_request(fields, idempotency_key, settings)
    upload = await run_in_threadpool(claim_upload, storage, key, upload_id, settings.max_upload_bytes)
    job = await _create_or_join(storage, key, upload_id, job_request, upload.filename, upload.size, from_upload=True)
    await run_in_threadpool(forget_upload, upload_id)
    return job


async def _json_body(request: Request) -> JobByUrl:
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_JSON_BYTES:
            raise PayloadTooLarge(f"a JSON job request is at most {MAX_JSON_BYTES} bytes")
    try:
        return JobByUrl.model_validate_json(bytes(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"invalid JSON job request: {problems}", code="invalid_body") from None


async def accept_bytes(
    data: bytes,
    filename: str | None,
    fields: dict[str, str],
    settings: Settings,
    storage: Storage,
    key: uuid.UUID | None,
) -> Job:
    """A source that arrived whole (base64 in JSON): store it and queue a job."""
    job_request = await _job_request(fields, None, settings)
    _check_size(len(data), settings)
    await _check_key_limits(key, settings)
    job_id = uuid.uuid4()
    source = service.source_key(job_id)
    async with _discard_on_error(storage, source):
        await run_in_threadpool(storage.put_bytes, source, data)
        return await _create_or_join(storage, key, job_id, job_request, filename, len(data))


def _check_size(size: int, settings: Settings) -> None:
    if size == 0:
        raise InvalidRequest("the uploaded file is empty", code="empty_file")
    if size > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the upload is larger than the limit of {settings.max_upload_bytes} bytes")


@asynccontextmanager
async def _discard_on_error(storage: Storage, key: str) -> AsyncIterator[None]:
    """Delete the stored source if the request fails after it was streamed (invalid, or a service down)."""
    try:
        yield
    except Exception:
        await run_in_threadpool(storage.delete_prefix, key)
        raise


async def _job_request(fields: dict[str, str], idempotency_key: str | None, settings: Settings) -> service.JobRequest:
    webhook_url = fields.get("webhook_url", "").strip() or None
    if webhook_url is not None:
        webhook_url = await _checked_url(webhook_url, settings, "webhook URL")
    return service.JobRequest(
        language=service.validate_language(fields.get("language", "auto"), settings.engine),
        context=service.validate_context(fields.get("context")),
        webhook_url=webhook_url,
        idempotency_key=idempotency_key,
        priority=service.validate_priority(fields.get("priority", Priority.BATCH)),
        retain_days=service.validate_retain_days(fields.get("retain_days"), settings.retention_days),
        speakers=service.validate_speakers(fields, settings.diarization == "on"),
    )


async def _checked_url(url: str, settings: Settings, what: str) -> str:
    """The URL's host is resolved: off the event loop."""
    return await run_in_threadpool(lambda: check_submitted(url, Guard.of(settings), what=what))


async def _create_or_join(
    storage: Storage,
    key: uuid.UUID | None,
    job_id: uuid.UUID,
    request: service.JobRequest,
    filename: str | None,
    size: int,
    source_url: str | None = None,
    from_upload: bool = False,
) -> Job:
    """Create the job and queue it. `from_upload`: its source is a direct upload's object, which only
    the job, once queued, may delete: a failure here leaves it for the client to try again."""
    try:
        job = await run_in_threadpool(
            _create_and_queue, storage, key, job_id, request, filename, size, source_url, not from_upload
        )
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key, or for the same upload, won the race.
        if not from_upload:
            await run_in_threadpool(storage.delete_prefix, service.source_key(job_id))
        winner = await run_in_threadpool(_find_winner, key, job_id, request.idempotency_key)
        if winner is None:
            raise
        return winner
    return job


def _find_winner(key: uuid.UUID | None, job_id: uuid.UUID, idempotency_key: str | None) -> Job | None:
    with session_scope() as session:
        same_id = session.get(Job, job_id)
        if same_id is not None and same_id.api_key_id == key:
            return same_id
        return service.find_idempotent(session, key, idempotency_key)


def _queue_or_withdraw(storage: Storage, job: Job, delete_source: bool) -> None:
    """Queue the job's prepare now, so that a broker that is down is answered with 503
    `broker_unavailable` and the job withdrawn, instead of a 202 for a job no worker hears of."""
    try:
        send_now(PREPARE, str(job.id), priority=job.queue_priority)
    except BrokerUnavailable:
        with session_scope() as session:
            service.withdraw_job(session, storage if delete_source else None, job.id)
        raise


async def _find_idempotent(key: uuid.UUID | None, idempotency_key: str | None) -> Job | None:
    if idempotency_key is None:
        return None  # without a thread hop: most submits have no Idempotency-Key
    return await run_in_threadpool(_find_idempotent_in_session, key, idempotency_key)


def _find_idempotent_in_session(key: uuid.UUID | None, idempotency_key: str) -> Job | None:
    with session_scope() as session:
        return service.find_idempotent(session, key, idempotency_key)


async def _check_key_limits(key: uuid.UUID | None, settings: Settings) -> None:
    if limits_apply(key, settings):
        await run_in_threadpool(check_key_limits, key, settings)


def _create_and_queue(
    storage: Storage,
    key: uuid.UUID | None,
    job_id: uuid.UUID,
    request: service.JobRequest,
    filename: str | None,
    size: int,
    source_url: str | None,
    delete_source: bool,
) -> Job:
    """The job's row committed, then its prepare sent: one trip to a worker thread for both."""
    with session_scope() as session:
        job = service.create_job(session, key, job_id, request, filename, size, source_url)
    _queue_or_withdraw(storage, job, delete_source)
    return job


def load_job(key: uuid.UUID | None, job_id: uuid.UUID) -> Job:
    with session_scope() as session:
        return service.get_job(session, key, job_id)
