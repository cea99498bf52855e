"""Celery tasks: thin wrappers that take ids, call the service, and turn errors into job state.

Transient infrastructure errors (storage, database, broker) are retried with backoff; a `JobFailure`
ends the job with its code; anything else ends it as `internal_error` so that no job is left stuck."""

import logging
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from tingxie.errors import JobFailure, StorageError
from tingxie.queue import FINALIZE, PREPARE, RECONCILE, TRANSCRIBE, get_celery
from worker import reconcile as reconciler
from worker import service

log = logging.getLogger(__name__)
app = get_celery()

TRANSIENT = (StorageError, OperationalError, ConnectionError)
MAX_RETRIES = 5
RETRY_BASE_SECONDS = 5


def _run(task: Task, job_id: str, step: Callable[..., None], *args: Any) -> None:
    job = uuid.UUID(job_id)
    try:
        step(job, *args)
    except JobFailure as exc:
        service.fail(job, exc.code, exc.message)
    except TRANSIENT as exc:
        if task.request.retries >= MAX_RETRIES:
            service.fail(job, "internal_error", f"gave up after {MAX_RETRIES} retries: {exc}")
            return
        raise task.retry(exc=exc, countdown=RETRY_BASE_SECONDS * 2**task.request.retries) from exc
    except Exception as exc:
        log.exception("%s failed for job %s", task.name, job_id)
        service.fail(job, "internal_error", f"{type(exc).__name__}: {exc}")


@app.task(name=PREPARE, bind=True, max_retries=MAX_RETRIES)
def prepare(self: Task, job_id: str) -> None:
    _run(self, job_id, service.prepare)


@app.task(name=TRANSCRIBE, bind=True, max_retries=MAX_RETRIES)
def transcribe(self: Task, job_id: str, index: str) -> None:
    _run(self, job_id, service.transcribe, int(index))


@app.task(name=FINALIZE, bind=True, max_retries=MAX_RETRIES)
def finalize(self: Task, job_id: str) -> None:
    _run(self, job_id, service.finalize)


@app.task(name=RECONCILE)
def reconcile() -> int:
    return reconciler.reconcile()
