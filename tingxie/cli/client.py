"""The jobs API of a running server, as the command line uses it (httpx). Every failure, the server's
error bodies and connections that fail alike, becomes one `RemoteError` with a code and a message."""

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

FINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
# Connecting should be quick; a read may wait on a large upload's last part being stored.
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


class RemoteError(Exception):
    """The server answered with an error, or could not be reached (`status` None)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RemoteJob:
    """What the command line reads of a job; `body` is the API's object as it came, for `--json`."""

    id: uuid.UUID
    status: str
    created_at: datetime
    language: str  # as submitted: "auto" or a code
    languages: list[str]  # detected, once completed
    duration_s: float | None
    filename: str | None
    chunks_done: int
    chunks_total: int | None  # None until the recording is cut
    error: RemoteError | None
    body: dict[str, Any]

    @classmethod
    def of(cls, body: dict[str, Any]) -> "RemoteJob":
        error = body.get("error")
        progress = body.get("progress") or {}
        return cls(
            id=uuid.UUID(body["id"]),
            status=body["status"],
            created_at=_moment(body["created_at"]),
            language=body.get("language") or "auto",
            languages=body.get("languages") or [],
            duration_s=body.get("duration_s"),
            filename=body.get("filename"),
            chunks_done=progress.get("chunks_done", 0),
            chunks_total=progress.get("chunks_total"),
            error=RemoteError(error["code"], error["message"]) if error else None,
            body=body,
        )

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def _moment(text: str) -> datetime:
    """A time the API wrote: UTC, though an SQLite database hands it back without saying so."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class JobPage:
    jobs: list[RemoteJob]
    next_after: str | None  # pass as `after` for the next page
    body: dict[str, Any]


class _ReportingReader(io.BufferedReader):
    """A file that tells `on_read` how many bytes each read took, so an upload can show its progress
    while httpx streams it (and still finds its size, for Content-Length)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self._on_read(len(data))
        return data


class ApiClient:
    def __init__(self, server: str, key: str | None) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=TIMEOUT)

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    def submit_file(self, path: Path, fields: dict[str, str], on_sent: Callable[[int], None]) -> RemoteJob:
        """Upload `path` as the multipart form's `file`, streamed (never read whole into memory)."""
        try:
            reader = _ReportingReader(path, on_sent)
        except OSError as missing:
            raise RemoteError("file_not_found", f"cannot read {path}: {missing.strerror}") from missing
        with reader:
            return RemoteJob.of(self._json("POST", "/v1/jobs", files={"file": (path.name, reader)}, data=fields))

    def submit_url(self, audio_url: str, fields: dict[str, str]) -> RemoteJob:
        return RemoteJob.of(self._json("POST", "/v1/jobs", json={"audio_url": audio_url, **fields}))

    def job(self, job_id: uuid.UUID) -> RemoteJob:
        return RemoteJob.of(self._json("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, status: str | None, limit: int) -> JobPage:
        params: dict[str, str | int] = {"limit": limit} | ({"status": status} if status else {})
        body = self._json("GET", "/v1/jobs", params=params)
        return JobPage([RemoteJob.of(job) for job in body["jobs"]], body.get("next_after"), body)

    def transcript(self, job_id: uuid.UUID, format: str) -> str:
        return self._request("GET", f"/v1/jobs/{job_id}/transcript", params={"format": format}).text

    def cancel(self, job_id: uuid.UUID) -> RemoteJob:
        return RemoteJob.of(self._json("POST", f"/v1/jobs/{job_id}/cancel"))

    def delete(self, job_id: uuid.UUID) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def _json(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **options).json()
        return body

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except httpx.ConnectError as refused:
            raise RemoteError(
                "server_unreachable", f"cannot connect to {self.server} ({refused}); is the server running?"
            ) from refused
        except httpx.TransportError as failed:
            raise RemoteError("connection_failed", f"{method} {self.server}{path}: {failed!r}") from failed
        if response.is_error:
            raise _error_of(response)
        return response


def _error_of(response: httpx.Response) -> RemoteError:
    """The API's `{"error": {"code", "message"}}`; a proxy's page in front of it as `http_<status>`."""
    try:
        error = response.json()["error"]
        return RemoteError(str(error["code"]), str(error["message"]), response.status_code)
    except (ValueError, KeyError, TypeError):
        return RemoteError(f"http_{response.status_code}", response.text[:200].strip(), response.status_code)
