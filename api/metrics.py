"""Prometheus metrics. Job counts come from Postgres at scrape time, so every API replica reports the
same truth and nothing is lost when one restarts."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select
from starlette.responses import Response

from api.deps import CurrentKey, SessionDep
from tingxie.models import Job
from tingxie.states import JobStatus


def metrics(session: SessionDep, _key: CurrentKey) -> Response:
    """Platform-wide counts, so a key is needed unless the keyless local mode is on (Prometheus sends one
    with `authorization: {credentials: ...}` in its scrape config)."""
    registry = CollectorRegistry()
    jobs = Gauge("tingxie_jobs", "Jobs by status", ["status"], registry=registry)
    audio = Gauge("tingxie_audio_seconds", "Seconds of audio in completed jobs", registry=registry)
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).tuples().all())
    for status in JobStatus:
        jobs.labels(status=status.value).set(counts.get(status.value, 0))
    completed = select(func.coalesce(func.sum(Job.duration_s), 0.0)).where(Job.status == JobStatus.COMPLETED)
    audio.set(float(session.scalar(completed) or 0.0))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
