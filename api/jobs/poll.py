"""The status poll on the event loop: no thread, no ORM session, one prepared query on a pooled
asynchronous Postgres connection.

Polling is how most clients integrate, so `GET /v1/jobs/{id}` is the busiest route. Through a worker
thread and a SQLAlchemy session it cost about 3 ms of the API process's CPU, where the query itself is a
fraction of that: the thread hop, the contention of forty threads for the GIL, and the ORM's statement
handling made up most of it (bench/README.md). Here the key comes from the key cache (api/key_cache.py)
and the job's row from one statement, compiled once from the ORM model so that the two cannot disagree.

This path answers only what it can answer alone: a key the cache knows (or the keyless mode the cache
knows about) and a job that is not completed. Anything else (a key to look up, a completed job and its
transcript, SQLite, a connection that failed) goes the ordinary way, `fallback`, with the same answers
and errors."""

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import psycopg
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import ColumnElement, bindparam, make_url, null, select
from sqlalchemy.dialects import postgresql

from api.deps import cached_caller
from api.jobs.schemas import JobFields, JobOut
from tingxie.db import CONNECT_TIMEOUT_S
from tingxie.errors import NotFound
from tingxie.models import Job
from tingxie.settings import Settings
from tingxie.states import JobStatus

log = logging.getLogger(__name__)

POOL_MIN = 4
POOL_MAX = 20  # polls are short: twenty at once keep a 2-core API busy, and Postgres sessions are dear
# A poll waits no longer for a connection of this pool (all busy, or the database gone) before it takes
# the session path, which has its own pool and answers 503 when the database is down.
POOL_WAIT_S = 1.0
# A status poll never reads these: only a completed job has a transcript, and the speaker turns are
# only for finalize.
_TRANSCRIPT = {"segments", "text", "speaker_turns"}


@dataclass(frozen=True)
class _Statements:
    of_key: str
    keyless: str


def _compile_statements() -> _Statements:
    # Every column but the transcript's, which read as NULL: the row stands in for a Job (JobFields).
    columns = [null().label(column.key) if column.key in _TRANSCRIPT else column for column in Job.__table__.columns]

    def compiled(owner: ColumnElement[bool]) -> str:
        query = select(*columns).where(Job.id == bindparam("job_id"), owner)
        return str(query.compile(dialect=postgresql.psycopg.dialect()))

    return _Statements(
        of_key=compiled(Job.api_key_id == bindparam("key_id")),
        keyless=compiled(Job.api_key_id.is_(None)),
    )


class StatusReader:
    """The connection pool and statements of the fast path; one per API process, opened by its lifespan."""

    def __init__(self, database_url: str) -> None:
        conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._statements = _compile_statements()
        self.rows_read = 0  # polls this path answered from its own query (tests tell the two paths apart)
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            open=False,
            timeout=POOL_WAIT_S,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        )

    async def open(self) -> None:
        # Not waiting: an API whose database is down still starts, and its polls fall back (503).
        await self._pool.open(wait=False)

    async def wait_connected(self, timeout: float) -> None:
        """Until the pool has its first connections: before that, polls take the session path."""
        await self._pool.wait(timeout)

    async def close(self) -> None:
        await self._pool.close()

    async def status(
        self,
        settings: Settings,
        authorization: str | None,
        job_id: uuid.UUID,
        fallback: Callable[[], Awaitable[JobOut]],
    ) -> JobOut:
        caller = cached_caller(settings, authorization)
        if caller is None:
            return await fallback()
        try:
            row = await self._row(caller.key_id, job_id)
        except (psycopg.Error, TimeoutError) as error:
            log.debug("status poll falls back to the session path: %s", error)
            return await fallback()
        self.rows_read += 1
        if row is None:
            raise NotFound(f"no job {job_id}")
        if row.status == JobStatus.COMPLETED:
            return await fallback()
        return JobOut.of(row)

    async def _row(self, key_id: uuid.UUID | None, job_id: uuid.UUID) -> JobFields | None:
        statement = self._statements.keyless if key_id is None else self._statements.of_key
        async with self._pool.connection() as conn, conn.cursor(row_factory=namedtuple_row) as cursor:
            await cursor.execute(statement, {"job_id": job_id, "key_id": key_id})
            # A named tuple of the columns above, which are Job's: it has JobFields' attributes.
            return cast(JobFields | None, await cursor.fetchone())
