"""Entry point for `celery -A worker.celery_app worker -Q cpu,gpu`."""

import worker.niceness
import worker.tasks  # noqa: F401  (registers the tasks)
from tingxie.queue import get_celery

app = get_celery()
