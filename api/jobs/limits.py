"""Limits per API key, checked before an upload streams, so a key over one spends no bandwidth on it.

Counted from the jobs table itself (Postgres is the one truth every API replica shares): the key's
unfinished jobs, the jobs it submitted in the last minute, and the audio of those it submitted in the last
24 hours. Two requests racing past a limit at the same instant may both get in; a limit is a guard
against a runaway client, not an invoice. The keyless local mode has no limits."""

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tingxie.db import session_scope
from tingxie.errors import RateLimited
from tingxie.models import Job, as_utc, utcnow
from tingxie.settings import Settings
from tingxie.states import JobStatus

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
RETRY_ACTIVE_S = 30  # when the limit is jobs running at once, no one knows when the next finishes


@dataclass(frozen=True)
class Window:
    """What a key submitted within a trailing window: how much, and when the oldest of it was."""

    amount: float
    oldest: datetime | None

    def retry_after_s(self, span: timedelta, now: datetime) -> int:
        """Seconds until the oldest submission leaves the window."""
        if self.oldest is None:
            return 1
        return math.ceil((as_utc(self.oldest) + span - now).total_seconds())


def limits_apply(key_id: uuid.UUID | None, settings: Settings) -> bool:
    """Whether `check_limits` has anything to count (the database need not be asked otherwise)."""
    limits = (settings.max_active_jobs_per_key, settings.max_submits_per_minute, settings.max_audio_hours_per_day)
    return key_id is not None and any(limits)


def check_limits(session: Session, key_id: uuid.UUID | None, settings: Settings) -> None:
    """Raise RateLimited when a new job for `key_id` would go over one of the key's limits."""
    if not limits_apply(key_id, settings):
        return
    now = utcnow()
    mine = Job.api_key_id == key_id
    if settings.max_active_jobs_per_key:
        unfinished = Job.status.in_([JobStatus.QUEUED, JobStatus.PROCESSING])
        active = session.scalar(select(func.count()).where(mine, unfinished)) or 0
        if active >= settings.max_active_jobs_per_key:
            raise RateLimited(
                f"this key has {active} unfinished jobs, its limit; retry once some have finished",
                retry_after_s=RETRY_ACTIVE_S,
            )
    if settings.max_submits_per_minute:
        recent = _window(session, mine, func.count(), now - MINUTE)
        if recent.amount >= settings.max_submits_per_minute:
            raise RateLimited(
                f"this key submitted {int(recent.amount)} jobs in the last minute, its limit",
                retry_after_s=recent.retry_after_s(MINUTE, now),
            )
    if settings.max_audio_hours_per_day:
        audio = _window(session, mine, func.coalesce(func.sum(Job.duration_s), 0.0), now - DAY)
        if audio.amount >= settings.max_audio_hours_per_day * 3600:
            raise RateLimited(
                f"this key submitted {audio.amount / 3600:.2f} hours of audio in the last 24 hours, "
                f"its quota of {settings.max_audio_hours_per_day:g}",
                retry_after_s=audio.retry_after_s(DAY, now),
                code="quota_exceeded",
            )


def check_key_limits(key_id: uuid.UUID | None, settings: Settings) -> None:
    """`check_limits` in a short transaction of its own."""
    with session_scope() as session:
        check_limits(session, key_id, settings)


def _window(session: Session, mine: ColumnElement[bool], amount: ColumnElement[Any], since: datetime) -> Window:
    total, oldest = session.execute(select(amount, func.min(Job.created_at)).where(mine, Job.created_at >= since)).one()
    return Window(float(total or 0), oldest)
