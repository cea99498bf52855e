"""Job and chunk states. A job moves queued -> processing -> completed | failed | canceled."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


class Priority(StrEnum):
    """How a job is queued: interactive work (the synchronous routes, the web page) goes ahead of bulk."""

    INTERACTIVE = "interactive"
    BATCH = "batch"


class ChunkStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"


class Diarization(StrEnum):
    """A job's speaker labelling, when it was asked for: its own step beside transcription. A failure
    never costs the transcript: the job completes without speakers and with a `diarization_failed` warning."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
