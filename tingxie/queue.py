"""The Celery application and the one way to enqueue work: after the current transaction commits.

Task names are constants so the API can enqueue without importing the worker (and its engines). Queues:
`cpu` (prepare, finalize) and `gpu` (transcribe). Postgres stays the source of truth: a lost message is
re-enqueued by the reconciler, and every task is idempotent.

Order is the Redis transport's priority steps, not a scheduler of our own: each queue is ten Redis lists,
one per step, and a worker always takes from the lowest non-empty step (FIFO within a step). A job's step
is fixed when it is submitted (`job_priority`): interactive work takes 0; batch work 3, plus one for each
job its key already has unfinished (at most MAX_BACKLOG_STEPS more), so a key with a deep backlog yields
to one with a single job. Chunks add one step per CHUNKS_PER_STEP of their index (`chunk_priority`), so
the later parts of a long recording yield to short recordings submitted after it. A message already
reserved by a worker (its prefetch) is not overtaken. The embedded SQLite broker has no priorities: it is FIFO."""

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

PRIORITY_STEPS = list(range(10))  # 0 is taken first
INTERACTIVE_STEPS = (0, 2)  # lowest and highest step of interactive work
BATCH_STEPS = (3, 9)
MAX_BACKLOG_STEPS = 3  # a key's unfinished jobs lower its next batch job by at most this many steps
CHUNKS_PER_STEP = 4  # 20 minutes of a recording at the default chunk length


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
        app.conf.broker_transport_options = {
            "visibility_timeout": settings.visibility_timeout_seconds,
            "priority_steps": PRIORITY_STEPS,
            "queue_order_strategy": "priority",
        }
    return app


def job_priority(interactive: bool, unfinished_jobs_of_key: int) -> int:
    """The priority step of a new job's prepare and finalize tasks."""
    if interactive:
        return INTERACTIVE_STEPS[0]
    return BATCH_STEPS[0] + min(MAX_BACKLOG_STEPS, unfinished_jobs_of_key)


def chunk_priority(job_step: int, index: int) -> int:
    """The step of chunk `index`'s transcribe task: later chunks of a long recording yield."""
    ceiling = INTERACTIVE_STEPS[1] if job_step <= INTERACTIVE_STEPS[1] else BATCH_STEPS[1]
    return min(ceiling, job_step + index // CHUNKS_PER_STEP)


@lru_cache
def get_celery() -> Celery:
    return create_celery(get_settings())


def send_now(task: str, *args: str, priority: int = 0) -> None:
    get_celery().send_task(task, args=list(args), queue=QUEUE_OF[task], priority=priority)


def enqueue(session: Session, task: str, *args: str, priority: int = 0) -> None:
    """Send `task` once `session` commits. A broker failure is logged, not raised: the row is already
    durable and the reconciler re-enqueues work that has no message."""

    def send() -> None:
        try:
            send_now(task, *args, priority=priority)
        except Exception:
            log.exception("could not enqueue %s%s; the reconciler will retry", task, args)

    after_commit(session, send)
