"""Synchronous compatibility routes: they queue an ordinary job and wait for it.

- `POST /api/transcribe`: the seed's JSON API, `{"file": "<base64>", "language": "auto"}` -> `{"text", "language"}`.
- `POST /v1/audio/transcriptions`: OpenAI's multipart API (`file`, `model`, `language`, `prompt`,
  `response_format` json|text|srt|vtt|verbose_json, `timestamp_granularities[]` segment|word). Its errors
  carry OpenAI's `error.type` beside `code` and `message` (api/errors.py), so OpenAI's clients raise their
  usual exceptions.

A job that outlives the wait is not lost: the 504 names it, and `GET /v1/jobs/{id}` finishes the story."""

import asyncio
import base64
import binascii
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api import formats
from api.deps import CurrentKey, SettingsDep, StorageDep
from api.jobs import intake
from api.jobs.schemas import OPENAI_FORM
from tingxie.errors import InvalidRequest, JobFailure, TingxieError
from tingxie.models import Job
from tingxie.states import JobStatus, Priority
from tingxie.transcript import from_rows

router = APIRouter(tags=["compatibility"])

POLL_SECONDS = 0.25
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES_FIELD = "timestamp_granularities[]"
GRANULARITIES = ("segment", "word")


class SeedRequest(BaseModel):
    file: str  # base64 of the audio file
    language: str = "auto"


class WaitTimeout(TingxieError):
    status_code = 504
    code = "still_processing"


@router.post("/api/transcribe")
async def seed_transcribe(
    body: SeedRequest, settings: SettingsDep, storage: StorageDep, key: CurrentKey
) -> dict[str, Any]:
    data = _base64(body.file)
    fields = {"language": body.language, "priority": Priority.INTERACTIVE}
    job = await intake.accept_bytes(data, None, fields, settings, storage, key)
    job = await _wait(key, job.id, settings.sync_wait_seconds)
    return {"text": job.text or "", "language": _main_language(job)}


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("'file' must be base64-encoded audio", code="invalid_base64") from exc


@router.post("/v1/audio/transcriptions", openapi_extra=OPENAI_FORM)
async def openai_transcriptions(
    request: Request, settings: SettingsDep, storage: StorageDep, key: CurrentKey
) -> Response:
    aliases, defaults = {"prompt": "context"}, {"priority": str(Priority.INTERACTIVE)}
    job, fields = await intake.accept_multipart(
        request, settings, storage, key, field_aliases=aliases, defaults=defaults, check_fields=_check_format
    )
    job = await _wait(key, job.id, settings.sync_wait_seconds)
    return _openai_response(job, fields.get("response_format", "json"), _granularities(fields))


def _check_format(fields: dict[str, str]) -> None:
    if fields.get("response_format", "json") not in RESPONSE_FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", code="invalid_format")
    unknown = _granularities(fields) - set(GRANULARITIES)
    if unknown:
        raise InvalidRequest(
            f"timestamp_granularities[] must be among {', '.join(GRANULARITIES)}, not {', '.join(sorted(unknown))}",
            code="invalid_timestamp_granularities",
        )


def _granularities(fields: dict[str, str]) -> set[str]:
    """OpenAI's clients send the list as repeated `timestamp_granularities[]` fields (joined by the form
    parser); segment timestamps are the default."""
    given = {value.strip() for value in fields.get(GRANULARITIES_FIELD, "").split(",") if value.strip()}
    return given or {"segment"}


def _openai_response(job: Job, response_format: str, granularities: set[str]) -> Response:
    segments = from_rows(job.segments)
    if response_format == "text":
        return PlainTextResponse(job.text or "")
    if response_format in ("srt", "vtt"):
        render = formats.to_srt if response_format == "srt" else formats.to_vtt
        return PlainTextResponse(render(segments))
    if response_format == "json":
        return JSONResponse({"text": job.text or ""})
    verbose: dict[str, Any] = {
        "task": "transcribe",
        "language": _main_language(job),
        "duration": job.duration_s,
        "text": job.text or "",
    }
    if "segment" in granularities:
        verbose["segments"] = [{"id": number, **segment.as_dict()} for number, segment in enumerate(segments)]
    if "word" in granularities:
        # Empty from an engine without word times (GET /v1/engines: word_timestamps), as OpenAI's clients expect.
        verbose["words"] = [
            {"word": word.text, "start": word.start, "end": word.end} for segment in segments for word in segment.words
        ]
    return JSONResponse(verbose)


async def _wait(key: uuid.UUID | None, job_id: uuid.UUID, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = await run_in_threadpool(intake.load_job, key, job_id)
        if job.status == JobStatus.COMPLETED:
            return job
        if JobStatus(job.status).is_final:
            raise JobFailure(job.error_message or f"job {job.status}", code=job.error_code or job.status)
        if time.monotonic() > deadline:
            raise WaitTimeout(f"job {job_id} is still {job.status}; poll GET /v1/jobs/{job_id} for the result")
        await asyncio.sleep(POLL_SECONDS)


def _main_language(job: Job) -> str | None:
    if job.languages:
        return job.languages[0]
    return None if job.language == "auto" else job.language
