"""Celery worker: audio preparation, engines and the tasks that drive a job to completion."""
