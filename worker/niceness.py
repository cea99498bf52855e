"""Bulk workers yield the CPU: a worker that takes bulk work (the `cpu` or `gpu` queue) lowers its
scheduling priority by `TINGXIE_BULK_NICENESS` when it starts, so that on a shared host the API, the
interactive worker and the services get the cores first while a backlog keeps every core busy. The
interactive worker, which consumes only the lanes, keeps its priority. The bulk workers lose nothing
when nothing else wants the cores: a nice value only orders runnable threads."""

import logging
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from celery.signals import celeryd_after_setup

from tingxie.queue import CPU_QUEUE, GPU_QUEUE
from tingxie.settings import get_settings

log = logging.getLogger(__name__)

BULK_QUEUES = frozenset({CPU_QUEUE, GPU_QUEUE})
LEAST_PRIORITY = 19  # the highest nice value Linux has
THREADS = Path("/proc/self/task")


def takes_bulk_work(queues: set[str]) -> bool:
    return bool(queues & BULK_QUEUES)


def lower_cpu_priority(by: int) -> int:
    """Raise this process's nice value by `by` (at most to 19) and return the new value. On Linux a nice
    value belongs to each thread and a new thread starts with its creator's, so every thread running now
    is lowered, and every later one (the pool's, torch's, ffmpeg's) starts lowered."""
    target = min(os.getpriority(os.PRIO_PROCESS, 0) + by, LEAST_PRIORITY)
    threads = [int(tid) for tid in os.listdir(THREADS)] if THREADS.is_dir() else [0]
    for thread in threads:
        with suppress(ProcessLookupError):  # the thread ended since it was listed
            os.setpriority(os.PRIO_PROCESS, thread, target)
    return target


@celeryd_after_setup.connect
def _yield_to_interactive_work(instance: Any, **_: Any) -> None:
    """After `-Q` has picked the queues and before the pool and the engine start their threads."""
    queues = set(instance.app.amqp.queues.consume_from)
    by = get_settings().bulk_niceness
    if by and takes_bulk_work(queues):
        log.info("bulk worker (%s): nice %d", ",".join(sorted(queues)), lower_cpu_priority(by))
