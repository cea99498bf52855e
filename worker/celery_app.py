"""Entry point for `celery -A worker.celery_app worker -Q cpu,gpu`."""

import os
import signal
from typing import Any

from celery.signals import beat_embedded_init

import worker.niceness  # (its signal handler: bulk workers yield the CPU)
import worker.tasks  # noqa: F401  (registers the tasks)
from tingxie.parent_death import die_with_parent
from tingxie.queue import get_celery

app = get_celery()
WORKER_PID = os.getpid()  # imported before the worker forks its beat: in the beat, its parent's pid


@beat_embedded_init.connect
def _beat_dies_with_its_worker(**_: Any) -> None:
    """The schedule a worker embeds (`--beat`) runs in a process it forks; a worker killed outright would
    otherwise leave it behind, sending reconcile tasks for a worker that is gone."""
    die_with_parent()
    if os.getppid() != WORKER_PID:  # the worker died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
