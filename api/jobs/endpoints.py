"""/v1/jobs: submit, poll, list, cancel, delete, download transcripts, and the job's webhook."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api import formats
from api.deps import AUTHORIZATION_PARAMETER, CurrentKey, SessionDep, SettingsDep, StorageDep, resolve_key
from api.jobs import intake, service
from api.jobs.poll import StatusReader
from api.jobs.schemas import JOB_FORM, DeliveryList, DeliveryOut, JobList, JobOut, WebhookOut
from tingxie.db import read_scope
from tingxie.errors import Conflict
from tingxie.models import Job
from tingxie.settings import Settings, get_settings
from tingxie.states import JobStatus
from tingxie.transcript import from_rows, to_rows

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=202, response_model=JobOut, openapi_extra=JOB_FORM)
async def submit_job(
    request: Request,
    settings: SettingsDep,
    storage: StorageDep,
    key: CurrentKey,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Multipart `file` (+ `language`, `context`, `priority`, `retain_days`, `webhook_url`), or JSON with
    `audio_url` instead of a file; optional `Idempotency-Key` header."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        return _accepted(await intake.accept_json(request, settings, storage, key, idempotency_key))
    job, _ = await intake.accept_multipart(request, settings, storage, key, idempotency_key)
    return _accepted(job)


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


@router.get("/{job_id}", response_model=JobOut, openapi_extra=AUTHORIZATION_PARAMETER)
async def get_job(job_id: uuid.UUID, request: Request) -> Response:
    # The hot path of every polling client: on Postgres, a job not yet completed is read on the event
    # loop (api/jobs/poll.py); otherwise one thread hop and one query with no transaction around it, the
    # transcript read only once the job is completed (service.job_status). No dependencies: each one is
    # work per request, and a sync one (settings) a thread hop of its own.
    settings = get_settings()
    authorization = request.headers.get("authorization")

    async def through_session() -> JobOut:
        return await run_in_threadpool(_job_status, settings, authorization, job_id)

    reader: StatusReader | None = getattr(request.app.state, "status_reader", None)
    if reader is None:
        job = await through_session()
    else:
        job = await reader.status(settings, authorization, job_id, through_session)
    # Serialized once, here: returning the model would have FastAPI validate it a second time.
    return Response(job.model_dump_json(), media_type="application/json")


def _job_status(settings: Settings, authorization: str | None, job_id: uuid.UUID) -> JobOut:
    with read_scope() as session:
        key = resolve_key(session, settings, authorization)
        return JobOut.of(service.job_status(session, key, job_id))


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
    segments = from_rows(job.segments)
    if format == "json":
        rows = to_rows(segments)
        return JSONResponse({"id": str(job.id), "text": job.text, "languages": job.languages, "segments": rows})
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


@router.get("/{job_id}/webhook/deliveries", response_model=DeliveryList)
def list_webhook_deliveries(job_id: uuid.UUID, session: SessionDep, key: CurrentKey) -> DeliveryList:
    """Every attempt to deliver the job's webhook, oldest first."""
    deliveries = service.webhook_deliveries(session, key, job_id)
    return DeliveryList(deliveries=[DeliveryOut.of(delivery) for delivery in deliveries])


@router.post("/{job_id}/webhook/redeliver", status_code=202, response_model=WebhookOut)
def redeliver_webhook(job_id: uuid.UUID, session: SessionDep, key: CurrentKey) -> WebhookOut | None:
    """Send the finished job's webhook again, with the same `webhook-id`, retried like the first time."""
    return WebhookOut.of(service.redeliver_webhook(session, key, job_id))
