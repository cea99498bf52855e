"""/v1/jobs: submit, poll, list, cancel, delete, and download transcripts."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from api import formats
from api.deps import CurrentKey, SessionDep, SettingsDep, StorageDep
from api.jobs import service
from api.jobs.schemas import JobList, JobOut
from api.jobs.upload import Upload, receive_upload
from tingxie.db import session_scope
from tingxie.errors import Conflict, InvalidRequest, TingxieError
from tingxie.models import Job
from tingxie.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202, response_model=JobOut)
async def submit_job(
    request: Request,
    settings: SettingsDep,
    storage: StorageDep,
    key: CurrentKey,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Multipart `file` (+ `language`, `context`, `webhook_url`). No transaction stays open while the
    upload streams: the job row is written in its own short transaction once the audio is stored."""
    existing = await run_in_threadpool(_find_idempotent, key, idempotency_key)
    if existing is not None:
        return _accepted(existing)
    job_id = uuid.uuid4()
    upload = await receive_upload(
        request, lambda: storage.writer(service.source_key(job_id)), settings.max_upload_bytes
    )
    try:
        job_request = _job_request(upload.fields, idempotency_key, settings.engine)
        if not upload.stored:
            raise InvalidRequest("the form has no 'file' part", code="missing_file")
        if upload.size == 0:
            raise InvalidRequest("the uploaded file is empty", code="empty_file")
    except TingxieError:
        storage.delete_prefix(service.source_key(job_id))
        raise
    try:
        job = await run_in_threadpool(_create, key, job_id, job_request, upload)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the race: answer with its job.
        storage.delete_prefix(service.source_key(job_id))
        winner = await run_in_threadpool(_find_idempotent, key, idempotency_key)
        if winner is None:
            raise
        return _accepted(winner)
    return _accepted(job)


def _find_idempotent(key: uuid.UUID | None, idempotency_key: str | None) -> Job | None:
    with session_scope() as session:
        return service.find_idempotent(session, key, idempotency_key)


def _create(key: uuid.UUID | None, job_id: uuid.UUID, request: service.JobRequest, upload: Upload) -> Job:
    with session_scope() as session:
        return service.create_job(session, key, job_id, request, upload.filename, upload.size)


def _job_request(fields: dict[str, str], idempotency_key: str | None, engine: str) -> service.JobRequest:
    return service.JobRequest(
        language=service.validate_language(fields.get("language", "auto"), engine),
        context=fields.get("context") or None,
        webhook_url=fields.get("webhook_url") or None,
        idempotency_key=idempotency_key,
    )


def _accepted(job: Job) -> JSONResponse:
    body = JobOut.of(job)
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{body.id}"})


@router.get("", response_model=JobList)
def list_jobs(
    session: SessionDep,
    key: CurrentKey,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
    after: uuid.UUID | None = None,
) -> JobList:
    jobs = service.list_jobs(session, key, status, limit, after)
    next_after = jobs[-1].id if len(jobs) == limit else None
    return JobList(jobs=[JobOut.of(job) for job in jobs], next_after=next_after)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, key: CurrentKey) -> JobOut:
    return JobOut.of(service.get_job(session, key, job_id))


@router.get("/{job_id}/transcript")
def get_transcript(
    job_id: uuid.UUID,
    session: SessionDep,
    key: CurrentKey,
    format: Annotated[str, Query(pattern="^(txt|json|srt|vtt)$")] = "txt",
) -> Response:
    job = service.get_job(session, key, job_id)
    if job.status != JobStatus.COMPLETED:
        raise Conflict(
            f"job {job_id} is {job.status}; the transcript is ready once it is completed",
            code="transcript_not_ready",
        )
    segments = job.segments or []
    if format == "json":
        return JSONResponse({"id": str(job.id), "text": job.text, "languages": job.languages, "segments": segments})
    render = {"txt": formats.to_txt, "srt": formats.to_srt, "vtt": formats.to_vtt}[format]
    media = {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}[format]
    return PlainTextResponse(render(segments), media_type=media)


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: uuid.UUID, session: SessionDep, key: CurrentKey) -> JobOut:
    return JobOut.of(service.cancel_job(session, key, job_id))


@router.delete("/{job_id}", status_code=204)
def delete_job(job_id: uuid.UUID, session: SessionDep, storage: StorageDep, key: CurrentKey) -> Response:
    service.delete_job(session, storage, key, job_id)
    return Response(status_code=204)
