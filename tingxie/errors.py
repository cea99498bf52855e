"""The exception tree. Adapters translate third-party errors (botocore, PyAV, CUDA, redis) into these.

TingxieError                 code + message, rendered as {"error": {"code", "message"}}
├── NotFound                 404: unknown job, or another key's job
├── InvalidRequest           400/422: bad parameters
├── PayloadTooLarge          413: upload over TINGXIE_MAX_UPLOAD_BYTES
├── Unauthorized             401: missing or unknown API key
├── Conflict                 409: action not allowed in the job's current state
├── RateLimited              429: a key over one of its limits; says when to retry (Retry-After)
├── StorageError             503: object storage unreachable or failing
├── BrokerUnavailable        503: the message broker (Redis) unreachable
├── DatabaseUnavailable      503: the database unreachable
└── JobFailure               a job ends `failed` with this code (invalid_audio, no_audio_stream, ...)
    └── ObjectMissing        an object the job needs is gone from storage: retrying cannot bring it back

JobWarning is not an exception: a job that completes despite it (damaged packets skipped, say) carries it.
"""

from dataclasses import asdict, dataclass


class TingxieError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str]:
        """Response headers that go with the error."""
        return {}


class NotFound(TingxieError):
    status_code = 404
    code = "not_found"


class InvalidRequest(TingxieError):
    status_code = 422
    code = "invalid_request"


class PayloadTooLarge(TingxieError):
    status_code = 413
    code = "payload_too_large"


class Unauthorized(TingxieError):
    status_code = 401
    code = "unauthorized"


class Conflict(TingxieError):
    status_code = 409
    code = "conflict"


class RateLimited(TingxieError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = max(1, retry_after_s)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StorageError(TingxieError):
    status_code = 503
    code = "storage_unavailable"


class BrokerUnavailable(TingxieError):
    status_code = 503
    code = "broker_unavailable"


class DatabaseUnavailable(TingxieError):
    status_code = 503
    code = "database_unavailable"


class JobFailure(TingxieError):
    """Ends the job as `failed`; the code is part of the API contract."""

    status_code = 422
    code = "processing_failed"


class ObjectMissing(JobFailure):
    code = "audio_missing"


@dataclass(frozen=True)
class JobWarning:
    """Something the reader of a completed transcript should know; the code is part of the API contract."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
