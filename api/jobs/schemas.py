"""Response bodies of the jobs API."""

import uuid
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from tingxie.models import WebhookDelivery
from tingxie.states import JobStatus
from tingxie.transcript import MAX_SPEAKERS, from_rows


class JobFields(Protocol):
    """What a job's response is made of: a `Job`, or the fast status poll's row (api/jobs/poll.py)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def language(self) -> str: ...
    @property
    def languages(self) -> list[str] | None: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def source_filename(self) -> str | None: ...
    @property
    def diarization(self) -> str | None: ...
    @property
    def chunks_done(self) -> int: ...
    @property
    def chunks_total(self) -> int | None: ...
    @property
    def chunks_cut(self) -> int: ...
    @property
    def prepared_s(self) -> float | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def segments(self) -> list[dict[str, Any]] | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...
    @property
    def warnings(self) -> list[dict[str, str]] | None: ...
    @property
    def webhook_url(self) -> str | None: ...
    @property
    def webhook_attempts(self) -> int: ...
    @property
    def webhook_last_status(self) -> int | None: ...
    @property
    def webhook_next_attempt_at(self) -> datetime | None: ...


class Progress(BaseModel):
    chunks_done: int
    chunks_total: int | None  # None until prepare has cut the whole recording into chunks
    chunks_cut: int  # cut and queued so far: transcription starts before the whole recording is decoded
    prepared_s: float | None  # seconds of audio prepare has decoded so far (of `duration_s`)


class WordOut(BaseModel):
    start: float
    end: float
    text: str


class SegmentOut(BaseModel):
    start: float
    end: float
    language: str | None
    text: str
    speaker: str | None = None  # "S1", "S2", ... when the job was diarized
    words: list[WordOut] = []  # word times, from engines that give them (GET /v1/engines: word_timestamps)


class ErrorOut(BaseModel):
    code: str
    message: str


class WarningOut(BaseModel):
    code: str
    message: str


class WebhookOut(BaseModel):
    url: str
    attempts: int
    last_status: int | None  # the HTTP status of the last attempt; None before one, or when none came
    next_attempt_at: datetime | None  # None once delivered, stopped by 410, or given up after a day

    @classmethod
    def of(cls, job: JobFields) -> "WebhookOut | None":
        if not job.webhook_url:
            return None
        return cls(
            url=job.webhook_url,
            attempts=job.webhook_attempts,
            last_status=job.webhook_last_status,
            next_attempt_at=job.webhook_next_attempt_at,
        )


class DeliveryOut(BaseModel):
    """One attempt to deliver a job's webhook."""

    webhook_id: str
    event_type: str
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    outcome: str  # delivered, retry, stopped (410 or a refused address), gave_up
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> "DeliveryOut":
        return cls.model_validate(delivery, from_attributes=True)


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


class JobOut(BaseModel):
    id: uuid.UUID
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    language: str
    languages: list[str] | None
    duration_s: float | None
    filename: str | None
    progress: Progress
    text: str | None
    segments: list[SegmentOut] | None
    error: ErrorOut | None
    warnings: list[WarningOut]  # what a completed transcript lacks: damaged or truncated audio, speakers
    diarization: str | None  # speaker labels: null (not asked for), pending, done or failed
    webhook: WebhookOut | None

    @classmethod
    def of(cls, job: JobFields) -> "JobOut":
        error = ErrorOut(code=job.error_code, message=job.error_message or "") if job.error_code else None
        # Only a completed job has a transcript: others never touch those columns (a status poll defers them).
        completed = job.status == JobStatus.COMPLETED
        rows = job.segments if completed else None
        return cls(
            id=job.id,
            status=job.status,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            language=job.language,
            languages=job.languages,
            duration_s=job.duration_s,
            filename=job.source_filename,
            progress=Progress(
                chunks_done=job.chunks_done,
                chunks_total=job.chunks_total,
                chunks_cut=job.chunks_cut,
                prepared_s=job.prepared_s,
            ),
            text=job.text if completed else None,
            segments=[SegmentOut(**s.as_dict()) for s in from_rows(rows)] if rows is not None else None,
            error=error,
            warnings=[WarningOut(**w) for w in job.warnings or []],
            diarization=job.diarization,
            webhook=WebhookOut.of(job),
        )


class JobByUrl(BaseModel):
    """POST /v1/jobs as JSON: a worker fetches the audio from `audio_url`, or it is a direct upload's
    (`upload_id`, from POST /v1/uploads)."""

    model_config = ConfigDict(extra="forbid")

    audio_url: str | None = None
    upload_id: uuid.UUID | None = None
    language: str = "auto"
    context: str | None = None
    webhook_url: str | None = None
    priority: str = "batch"
    retain_days: float | str | None = None
    diarize: bool | str | None = None
    speakers: int | str | None = None
    min_speakers: int | str | None = None
    max_speakers: int | str | None = None


class JobList(BaseModel):
    jobs: list[JobOut]
    next_after: uuid.UUID | None


def multipart_body(description: str, **fields: dict[str, object]) -> dict[str, object]:
    """An OpenAPI request body for a route that reads its multipart form itself (streaming the file
    part to storage), so that /docs and generated clients can send the form."""
    properties = {"file": {"type": "string", "format": "binary", "description": "the recording"}} | fields
    schema = {"type": "object", "required": ["file"], "properties": properties}
    body = {"required": True, "description": description, "content": {"multipart/form-data": {"schema": schema}}}
    return {"requestBody": body}


_TEXT = {"type": "string"}
_SPEAKER_COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_SPEAKERS}
JOB_FORM = multipart_body(
    "The recording and how to transcribe it.",
    language={**_TEXT, "default": "auto", "description": "`auto` or a language code (GET /v1/engines lists them)"},
    context={**_TEXT, "description": "names and terms the speech may contain, given to the model as a prompt"},
    priority={"type": "string", "enum": ["batch", "interactive"], "default": "batch"},
    retain_days={"type": "number", "description": "delete the job this many days after it finishes"},
    webhook_url={**_TEXT, "description": "called when the job ends, signed per Standard Webhooks"},
    diarize={
        "type": "boolean",
        "description": "label speakers (S1, S2, ...); default: TINGXIE_DIARIZATION",
    },
    speakers={**_SPEAKER_COUNT, "description": "the number of speakers, when known"},
    min_speakers=_SPEAKER_COUNT,
    max_speakers=_SPEAKER_COUNT,
)
OPENAI_FORM = multipart_body(
    "OpenAI's transcription form.",
    model={**_TEXT, "description": "accepted and ignored: the server's engine transcribes"},
    language={**_TEXT, "default": "auto"},
    prompt={**_TEXT, "description": "names and terms the speech may contain"},
    response_format={"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"], "default": "json"},
)

# The same route takes JSON naming the audio by URL.
JOB_FORM["requestBody"]["content"]["application/json"] = {"schema": JobByUrl.model_json_schema()}  # type: ignore[index]
