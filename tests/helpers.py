"""Shared test helpers: real speech from ../shared/speech, WER, and a client that waits for jobs."""

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import jiwer
import redis
from sqlalchemy import Engine, select, text

from tingxie.db import session_scope
from tingxie.models import Chunk, Job
from tingxie.queue import PRIORITY_STEPS
from tingxie.settings import get_settings
from tingxie.storage import get_storage
from worker import service

FINAL = ("completed", "failed", "canceled")
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis transport: queue "gpu" at step 3 is the list "gpu\x06\x163"


def queued(broker: redis.Redis, queue: str) -> list[bytes]:
    """Every message waiting in `queue`, at any priority step, most urgent step first."""
    keys = [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
    return [message for key in keys for message in reversed(broker.lrange(key, 0, -1))]


def task_of(message: bytes) -> tuple[str, list[str]]:
    """A queued Celery message's task name and arguments."""
    envelope = json.loads(message)
    args = json.loads(base64.b64decode(envelope["body"]))[0]
    return envelope["headers"]["task"], args


def clear_queues(broker: redis.Redis, *queues: str) -> None:
    for queue in queues:
        broker.delete(*(queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS))


def stored_sources() -> int:
    """Uploaded recordings in the deployment's S3 bucket (only the API stores those; workers add and drop
    chunks), for checks that a refused request kept nothing."""
    settings = get_settings()
    assert settings.s3_access_key is not None and settings.s3_secret_key is not None
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key.get_secret_value(),
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket, Prefix="jobs/")
    try:
        return sum(item["Key"].endswith("/source") for page in pages for item in page.get("Contents", []))
    except s3.exceptions.NoSuchBucket:  # made on the first upload
        return 0


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", text.lower())).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def submit(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as handle:
        return client.post("/v1/jobs", files={"file": (path.name, handle)}, data=fields)


def wait_for(client: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {job}")


def stored_job(source: Path, language: str = "auto", context: str | None = None, **columns: Any) -> uuid.UUID:
    """A queued job whose source is in storage, as the API leaves it, for tests that run the worker steps
    (`columns`: more of the job's columns, as the API would set them)."""
    job_id = uuid.uuid4()
    key = f"jobs/{job_id}/source"
    get_storage().put_bytes(key, source.read_bytes())
    with session_scope() as session:
        session.add(
            Job(
                id=job_id,
                source_key=key,
                source_filename=source.name,
                source_bytes=source.stat().st_size,
                language=language,
                context=context,
                **columns,
            )
        )
    return job_id


def job_and_chunks(job_id: uuid.UUID) -> tuple[Job, list[Chunk]]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        chunks = session.scalars(select(Chunk).where(Chunk.job_id == job_id).order_by(Chunk.index)).all()
        assert job is not None
        return job, list(chunks)


def run_worker_steps(job_id: uuid.UUID) -> tuple[Job, list[Chunk]]:
    """prepare -> transcribe every chunk -> finalize, in this process, as the Celery tasks would."""
    service.prepare(job_id)
    for chunk in job_and_chunks(job_id)[1]:
        service.transcribe(job_id, chunk.index)
    service.finalize(job_id)
    return job_and_chunks(job_id)


def proc_stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc/<pid>/stat (or task/<tid>/stat) file from the third on (state, ppid, ...):
    what follows the command name, which may itself hold spaces and parentheses."""
    return stat.read_text().rsplit(")", 1)[1].split()


def waiting_for_a_row_lock(database: Engine) -> bool:
    """Whether some session of `database` is waiting for a lock another one holds."""
    with database.connect() as connection:
        waiting = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)
