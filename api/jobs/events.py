"""GET /v1/jobs/{id}/events: a job's status and progress as Server-Sent Events, until it ends.

Events are snapshots of the committed job, read every POLL_SECONDS in one short query of a few columns
(never the transcript), and sent when they change: `job.queued`, `job.processing` and the final
`job.completed`, `job.failed` or `job.canceled` when the status changes, `job.progress` when only the
progress does. Each event's id names the state it shows, so a client that reconnects with
`Last-Event-ID` gets the current state at once if it moved on, and nothing until it does otherwise. A
finished job answers its final event at once and closes; asked again with that event's id, it answers
204, which tells an EventSource to stop reconnecting. Reading the database, rather than a channel the
workers publish on, works the same in every deployment, the embedded one included."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentKey
from tingxie.db import session_scope
from tingxie.errors import NotFound
from tingxie.models import Job
from tingxie.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0  # a comment line, so proxies do not close a quiet stream
RETRY_MS = 1000  # how soon an EventSource reconnects after the connection drops


@dataclass(frozen=True)
class Snapshot:
    job_id: uuid.UUID
    status: str
    chunks_done: int
    chunks_total: int | None
    chunks_cut: int
    prepared_s: float | None
    error_code: str | None
    error_message: str | None

    @property
    def event_id(self) -> str:
        prepared = -1 if self.prepared_s is None else round(self.prepared_s * 10)
        return f"{self.status}.{self.chunks_done}.{self.chunks_cut}.{self.chunks_total}.{prepared}"

    @property
    def is_final(self) -> bool:
        return JobStatus(self.status).is_final

    def event(self, previous: "Snapshot | None") -> str:
        """This snapshot as one SSE event; `previous` decides whether it is a status change."""
        kind = "job.progress" if previous is not None and previous.status == self.status else f"job.{self.status}"
        data: dict[str, object] = {"id": str(self.job_id), "status": self.status, "progress": self._progress()}
        if self.error_code is not None:
            data["error"] = {"code": self.error_code, "message": self.error_message or ""}
        return f"id: {self.event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

    def _progress(self) -> dict[str, object]:
        return {
            "chunks_done": self.chunks_done,
            "chunks_total": self.chunks_total,
            "chunks_cut": self.chunks_cut,
            "prepared_s": self.prepared_s,
        }


_COLUMNS = (
    Job.status,
    Job.chunks_done,
    Job.chunks_total,
    Job.chunks_cut,
    Job.prepared_s,
    Job.error_code,
    Job.error_message,
)


def _read(key: uuid.UUID | None, job_id: uuid.UUID) -> Snapshot | None:
    owner = Job.api_key_id.is_(None) if key is None else Job.api_key_id == key
    with session_scope() as session:
        row = session.execute(select(*_COLUMNS).where(Job.id == job_id, owner)).first()
    return None if row is None else Snapshot(job_id, *row)


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def job_events(
    job_id: uuid.UUID,
    request: Request,
    key: CurrentKey,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """`text/event-stream` of the job's status and progress until it ends; `Last-Event-ID` resumes."""
    first = await run_in_threadpool(_read, key, job_id)
    if first is None:
        raise NotFound(f"no job {job_id}")
    if first.is_final and first.event_id == last_event_id:
        return Response(status_code=204)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx: pass each event on at once
    stream = _stream(request, key, first, last_event_id)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _stream(
    request: Request, key: uuid.UUID | None, current: Snapshot, last_event_id: str | None
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    sent: Snapshot | None = None
    quiet_since = time.monotonic()
    while True:
        if current.event_id != (sent.event_id if sent is not None else last_event_id):
            yield current.event(sent)
            sent, quiet_since = current, time.monotonic()
        if current.is_final:
            return
        if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected():
            return
        latest = await run_in_threadpool(_read, key, current.job_id)
        if latest is None:  # deleted meanwhile
            yield f"event: job.deleted\ndata: {json.dumps({'id': str(current.job_id)})}\n\n"
            return
        current = latest
