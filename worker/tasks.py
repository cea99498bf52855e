"""Celery tasks: thin wrappers that take ids, call the service, and turn errors into job state.

A `JobFailure` ends the job with its code. Transient infrastructure errors (storage, database, broker)
are retried with backoff and then handed back: the step's lease is released (or runs out, with the
database down) and the reconciler queues the work again once the service is back, so an outage never
fails a job. An error while the worker is shutting down (a cold shutdown abandons its tasks) hands the
work back too. Anything else ends the job as `internal_error`, so that no job is left stuck.

A webhook attempt never changes its job: whatever goes wrong there, the reconciler sends the attempt
again once its lease runs out."""

import logging
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.signals import worker_shutdown
from celery.worker import state as worker_state
from sqlalchemy.exc import InterfaceError, OperationalError

from tingxie import webhooks
from tingxie.errors import BrokerUnavailable, JobFailure, StorageError
from tingxie.queue import DELIVER_WEBHOOK, DIARIZE, FINALIZE, PREPARE, RECONCILE, TRANSCRIBE, get_celery
from worker import reconcile as reconciler
from worker import service
from worker.leases import get_lease_keeper

log = logging.getLogger(__name__)
app = get_celery()

TRANSIENT = (StorageError, BrokerUnavailable, OperationalError, InterfaceError, ConnectionError)
MAX_RETRIES = 5
RETRY_BASE_SECONDS = 5


def _run(
    task: Task,
    job_id: str,
    step: Callable[..., None],
    *args: Any,
    on_failure: Callable[[uuid.UUID, str], None] | None = None,
) -> None:
    """Run a step; `on_failure(job, message)`, when given, stands in for failing the job."""
    job = uuid.UUID(job_id)
    try:
        step(job, *args)
    except JobFailure as exc:
        if on_failure is not None:
            on_failure(job, exc.message)
        else:
            service.fail(job, exc.code, exc.message)
    except TRANSIENT as exc:
        if task.request.retries >= MAX_RETRIES:
            log.warning("%s for job %s handed back after %d retries: %s", task.name, job_id, MAX_RETRIES, exc)
            return
        raise task.retry(exc=exc, countdown=RETRY_BASE_SECONDS * 2**task.request.retries) from exc
    except Exception as exc:
        if _shutting_down():
            log.warning("%s for job %s handed back: the worker is shutting down (%r)", task.name, job_id, exc)
            return
        log.exception("%s failed for job %s", task.name, job_id)
        if on_failure is not None:
            on_failure(job, f"{type(exc).__name__}: {exc}")
        else:
            service.fail(job, "internal_error", f"{type(exc).__name__}: {exc}")


def _shutting_down() -> bool:
    return any(flag not in (None, False) for flag in (worker_state.should_stop, worker_state.should_terminate))


@app.task(name=PREPARE, bind=True, max_retries=MAX_RETRIES)
def prepare(self: Task, job_id: str) -> None:
    _run(self, job_id, service.prepare)


@app.task(name=TRANSCRIBE, bind=True, max_retries=MAX_RETRIES)
def transcribe(self: Task, job_id: str, index: str) -> None:
    _run(self, job_id, service.transcribe, int(index))


@app.task(name=DIARIZE, bind=True, max_retries=MAX_RETRIES)
def diarize(self: Task, job_id: str) -> None:
    """Speaker labels never cost the transcript: a failure here (other than a transient one, which is
    retried and handed back like any step's) completes the job without them, with a warning."""
    _run(self, job_id, service.diarize, on_failure=service.diarization_failed)


@app.task(name=FINALIZE, bind=True, max_retries=MAX_RETRIES)
def finalize(self: Task, job_id: str) -> None:
    _run(self, job_id, service.finalize)


@app.task(name=DELIVER_WEBHOOK)
def deliver_webhook(job_id: str, attempt: str) -> None:
    try:
        webhooks.deliver(uuid.UUID(job_id), int(attempt))
    except Exception:
        log.exception("webhook attempt %s of job %s did not run; it is sent again later", attempt, job_id)


@app.task(name=RECONCILE)
def reconcile() -> int:
    return reconciler.reconcile().total


@worker_shutdown.connect
def _hand_back_leases(**_: Any) -> None:
    """Whatever a stopping worker still holds goes back now, not when its leases run out."""
    get_lease_keeper().release_all()
