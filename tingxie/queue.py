"""The Celery application and the one way to enqueue work: after the current transaction commits.

Task names are constants so the API can enqueue without importing the worker (and its engines). Queues:
`cpu` (prepare, diarize, finalize, webhook deliveries) and `gpu` (transcribe), and beside each a lane for
interactive jobs' steps (`cpu-interactive`, `gpu-interactive`). An interactive worker consumes only the
lanes, with an engine of its own, so an interactive job never waits for a thread or an engine call of
bulk work; the cpu and gpu workers consume the lanes too, so interactive jobs are done without one.
Postgres stays the source of truth: a lost message is re-enqueued by the reconciler (worker/reconcile.py),
and every task is idempotent.

Order is the Redis transport's priority steps, not a scheduler of our own: each queue is ten Redis lists,
one per step, and a worker always takes from the lowest non-empty step (FIFO within a step). A job's step
is fixed when it is submitted (`job_priority`): interactive work takes 0; batch work 3, plus one for each
job its key already has unfinished (at most MAX_BACKLOG_STEPS more), so a key with a deep backlog yields
to one with a single job. Chunks add one step per CHUNKS_PER_STEP of their index (`chunk_priority`), so
the later parts of a long recording yield to short recordings submitted after it. A message already
reserved by a worker (its prefetch) is not overtaken. The embedded SQLite broker has no priorities: it is FIFO."""

import logging
import uuid
from functools import lru_cache

import redis
from celery import Celery
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tingxie.db import after_commit, session_scope
from tingxie.errors import BrokerUnavailable
from tingxie.models import Job, utcnow
from tingxie.settings import Settings, get_settings

log = logging.getLogger(__name__)

PREPARE = "tingxie.prepare"
TRANSCRIBE = "tingxie.transcribe"
FINALIZE = "tingxie.finalize"
DIARIZE = "tingxie.diarize"
RECONCILE = "tingxie.reconcile"
DELIVER_WEBHOOK = "tingxie.deliver_webhook"

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
CPU_LANE = "cpu-interactive"
GPU_LANE = "gpu-interactive"
LANE_OF = {CPU_QUEUE: CPU_LANE, GPU_QUEUE: GPU_LANE}
JOB_STEPS = frozenset({PREPARE, TRANSCRIBE, FINALIZE, DIARIZE})  # the tasks an interactive job sends to a lane
QUEUE_OF = {
    PREPARE: CPU_QUEUE,
    TRANSCRIBE: GPU_QUEUE,
    FINALIZE: CPU_QUEUE,
    DIARIZE: CPU_QUEUE,
    RECONCILE: CPU_QUEUE,
    DELIVER_WEBHOOK: CPU_QUEUE,
}

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
        # A publish to a broker that is down fails within about a second (the API answers 503) instead
        # of Celery's default of retrying for longer.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5},
        worker_hijack_root_logger=False,
        beat_schedule={"reconcile": {"task": RECONCILE, "schedule": settings.reconcile_every_seconds}},
    )
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        # Only for Redis: the sqla transport would pass these to create_engine.
        app.conf.broker_transport_options = {
            "visibility_timeout": settings.visibility_timeout_seconds,
            # Every worker looks for messages past their visibility timeout this often (kombu's default,
            # 10 s x 10 calls, would add 100 s to a 600 s timeout).
            "unacked_restore_interval": restore_sweep_seconds(settings.visibility_timeout_seconds),
            "unacked_restore_throttle": 1,
            "priority_steps": PRIORITY_STEPS,
            "queue_order_strategy": "priority",
        }
    return app


def restore_sweep_seconds(visibility_timeout_seconds: int) -> int:
    """How often a worker returns messages a dead worker held: a fifth of the timeout, 1 to 30 s."""
    return max(1, min(30, visibility_timeout_seconds // 5))


def job_priority(interactive: bool, unfinished_jobs_of_key: int) -> int:
    """The priority step of a new job's prepare and finalize tasks."""
    if interactive:
        return INTERACTIVE_STEPS[0]
    return BATCH_STEPS[0] + min(MAX_BACKLOG_STEPS, unfinished_jobs_of_key)


def is_interactive(step: int) -> bool:
    return step <= INTERACTIVE_STEPS[1]


def queue_for(task: str, priority: int) -> str:
    """The queue of `task` sent at step `priority`: an interactive job's steps go to their lane."""
    queue = QUEUE_OF[task]
    return LANE_OF[queue] if task in JOB_STEPS and is_interactive(priority) else queue


def chunk_priority(job_step: int, index: int) -> int:
    """The step of chunk `index`'s transcribe task: later chunks of a long recording yield."""
    ceiling = INTERACTIVE_STEPS[1] if is_interactive(job_step) else BATCH_STEPS[1]
    return min(ceiling, job_step + index // CHUNKS_PER_STEP)


@lru_cache
def get_celery() -> Celery:
    return create_celery(get_settings())


def send_now(task: str, job_id: str, *args: str, priority: int = 0) -> None:
    """Publish at once; raises BrokerUnavailable when the broker cannot take the message."""
    try:
        get_celery().send_task(task, args=[job_id, *args], queue=queue_for(task, priority), priority=priority)
    except Exception as exc:
        raise BrokerUnavailable(f"the message broker is unreachable: {exc}") from exc


def enqueue(session: Session, task: str, job_id: str, *args: str, priority: int = 0) -> None:
    """Send `task` for `job_id` once `session` commits. The row is then durable, so a broker failure is
    not raised: the job is marked `resend_needed` and the reconciler sends its work again."""

    def send() -> None:
        try:
            send_now(task, job_id, *args, priority=priority)
        except BrokerUnavailable:
            log.exception("could not enqueue %s for job %s; the reconciler will resend it", task, job_id)
            _mark_resend_needed(job_id)

    after_commit(session, send)


def _mark_resend_needed(job_id: str) -> None:
    try:
        with session_scope() as session:
            session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(resend_needed=True))
    except SQLAlchemyError:
        log.exception("could not mark job %s for resending; the stalled-job sweep will find it", job_id)


BROKER_MARK = "tingxie:broker-mark"  # a key the broker keeps as long as it keeps its messages


def broker_lost_messages(settings: Settings) -> bool:
    """Whether the broker lost what it held since the last call: a Redis flushed, or restarted without
    persistence, loses this mark along with the messages. Setting the mark is the check itself, so
    exactly one caller sees each loss (and the first call ever counts as one). The embedded SQLite broker
    keeps its messages in a file beside the database and is never asked."""
    url = settings.resolved_broker_url
    if not url.startswith(("redis://", "rediss://")):
        return False
    with redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5) as client:
        return bool(client.set(BROKER_MARK, utcnow().isoformat(), nx=True))


def forget_broker_mark(settings: Settings) -> None:
    """Undo `broker_lost_messages` when the recovery it called for did not finish, so the next call
    sees the loss again."""
    with redis.Redis.from_url(settings.resolved_broker_url, socket_timeout=10, socket_connect_timeout=5) as client:
        client.delete(BROKER_MARK)
