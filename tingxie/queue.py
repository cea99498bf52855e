"""The Celery application and the one way to enqueue work: after the current transaction commits.

Task names are constants so the API can enqueue without importing the worker (and its engines). Queues:
`cpu` (prepare, finalize) and `gpu` (transcribe). Postgres stays the source of truth: a lost message is
re-enqueued by the reconciler, and every task is idempotent."""

import logging
from functools import lru_cache

from celery import Celery
from sqlalchemy.orm import Session

from tingxie.db import after_commit
from tingxie.settings import Settings, get_settings

log = logging.getLogger(__name__)

PREPARE = "tingxie.prepare"
TRANSCRIBE = "tingxie.transcribe"
FINALIZE = "tingxie.finalize"
RECONCILE = "tingxie.reconcile"

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
QUEUE_OF = {PREPARE: CPU_QUEUE, TRANSCRIBE: GPU_QUEUE, FINALIZE: CPU_QUEUE, RECONCILE: CPU_QUEUE}


def create_celery(settings: Settings) -> Celery:
    app = Celery("tingxie", broker=settings.resolved_broker_url)
    app.conf.update(
        task_acks_late=True,  # a worker that dies mid-task leaves the message for another
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # long tasks: never hoard messages another worker could run
        task_ignore_result=True,  # results live in Postgres
        task_default_queue=CPU_QUEUE,
        task_routes={name: {"queue": queue} for name, queue in QUEUE_OF.items()},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={"reconcile": {"task": RECONCILE, "schedule": settings.reconcile_every_seconds}},
    )
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        # Only for Redis: the sqla transport would pass these to create_engine.
        app.conf.broker_transport_options = {"visibility_timeout": settings.visibility_timeout_seconds}
    return app


@lru_cache
def get_celery() -> Celery:
    return create_celery(get_settings())


def send_now(task: str, *args: str) -> None:
    get_celery().send_task(task, args=list(args), queue=QUEUE_OF[task])


def enqueue(session: Session, task: str, *args: str) -> None:
    """Send `task` once `session` commits. A broker failure is logged, not raised: the row is already
    durable and the reconciler re-enqueues work that has no message."""

    def send() -> None:
        try:
            send_now(task, *args)
        except Exception:
            log.exception("could not enqueue %s%s; the reconciler will retry", task, args)

    after_commit(session, send)
