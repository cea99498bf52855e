"""Response bodies of the jobs API."""

import uuid
from datetime import datetime

from pydantic import BaseModel

from tingxie.models import Job
from tingxie.transcript import from_rows


class Progress(BaseModel):
    chunks_done: int
    chunks_total: int | None  # None until prepare has cut the whole recording into chunks
    chunks_cut: int  # cut and queued so far: transcription starts before the whole recording is decoded
    prepared_s: float | None  # seconds of audio prepare has decoded so far (of `duration_s`)


class SegmentOut(BaseModel):
    start: float
    end: float
    language: str | None
    text: str


class ErrorOut(BaseModel):
    code: str
    message: str


class WarningOut(BaseModel):
    code: str
    message: str


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
    warnings: list[WarningOut]  # what a completed transcript lacks: damaged or truncated audio

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        error = ErrorOut(code=job.error_code, message=job.error_message or "") if job.error_code else None
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
            text=job.text,
            segments=[SegmentOut(**s.as_dict()) for s in from_rows(job.segments)] if job.segments is not None else None,
            error=error,
            warnings=[WarningOut(**w) for w in job.warnings or []],
        )


class JobList(BaseModel):
    jobs: list[JobOut]
    next_after: uuid.UUID | None
