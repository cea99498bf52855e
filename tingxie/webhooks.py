"""Webhook delivery, the way Standard Webhooks (standardwebhooks.com) specifies it.

When a job ends, `schedule` (called by tingxie.lifecycle in the job's final transaction) marks its
webhook due and sends the first attempt once that transaction commits. An attempt (`deliver`, run by a
cpu-queue task) POSTs a thin body, `{"type", "timestamp", "data": {"id", "status"}}`, signed with the
job's API key's secret (and, while a rotation overlaps, with the previous one too, space-separated).
The `webhook-id` is the same on every attempt, so a receiver can tell a retry from a new event.

2xx ends it; 410 Gone stops it; anything else (429, 5xx, another status, a redirect, which is not
followed, a timeout, a refused connection) is retried with exponential backoff and jitter over about a
day. Every attempt is logged in `webhook_deliveries`. Postgres holds when the next attempt is due; the
reconciler sends it then, so a lost message or a worker killed mid-attempt delays a delivery, never
loses it. An attempt holds the job for `TINGXIE_LEASE_SECONDS`: a duplicate message finds the attempt
already taken and does nothing.
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

import httpcore
from sqlalchemy import update
from sqlalchemy.orm import Session

from tingxie.db import after_commit, session_scope
from tingxie.errors import BrokerUnavailable
from tingxie.models import WEBHOOK_SECRET_PREFIX, ApiKey, Job, WebhookDelivery, as_utc, new_webhook_secret, utcnow
from tingxie.outbound import Guard, UrlNotAllowed, connection_pool
from tingxie.queue import DELIVER_WEBHOOK, send_now
from tingxie.settings import Settings, get_settings
from tingxie.states import FINAL_STATES

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 13  # per series: the first attempt and 12 retries
MAX_DELAY_S = 6 * 3600.0
JITTER = 0.2  # each delay is drawn from ±20 % of its nominal value, so failed receivers are not hit in step
USER_AGENT = "tingxie-webhooks/1"


class Outcome(StrEnum):
    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # failed; another attempt is scheduled
    STOPPED = "stopped"  # 410 Gone, or the URL now resolves to an address the guard refuses
    GAVE_UP = "gave_up"  # failed, and the series had its MAX_ATTEMPTS


# --- secrets and signatures ----------------------------------------------------------------------------


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of `{id}.{timestamp}.{body}`, under the spec's secret format."""
    key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(signing_secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret, webhook_id, timestamp, body) for secret in signing_secrets)


def keyless_secret(settings: Settings) -> str:
    """The keyless local mode's secret: TINGXIE_WEBHOOK_SECRET, or one generated into the data directory
    on first use (readable by its owner only) and kept there."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    path = settings.data_dir.absolute() / "webhook-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return _write_once(path, new_webhook_secret())


def _write_once(path: Path, secret: str) -> str:
    """Create `path` with `secret`, unless another process just did: then theirs is the secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        time.sleep(0.05)  # the other process may not have written it yet
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return secret


def signing_secrets(session: Session, key_id: uuid.UUID | None, now: datetime) -> list[str]:
    """The secrets a delivery for this key is signed with: the current one, and the previous one while
    its rotation overlaps."""
    if key_id is None:
        return [keyless_secret(get_settings())]
    key = session.get(ApiKey, key_id)
    if key is None:
        return []
    found = [key.webhook_secret]
    expires = key.previous_secret_expires_at
    if key.previous_webhook_secret and expires is not None and as_utc(expires) > now:
        found.append(key.previous_webhook_secret)
    return found


# --- events --------------------------------------------------------------------------------------------


def webhook_id(job_id: uuid.UUID) -> str:
    """One logical event per job (its end), so its id follows from the job's."""
    return f"msg_{job_id.hex}"


def event_type(status: str) -> str:
    return f"job.{status}"


def event_body(job: Job) -> bytes:
    finished = job.finished_at or utcnow()
    data = {"id": str(job.id), "status": job.status}
    body = {"type": event_type(job.status), "timestamp": as_utc(finished).isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


# --- scheduling ----------------------------------------------------------------------------------------


def schedule(session: Session, job: Job) -> None:
    """The job has just ended: send its webhook's first attempt once this transaction commits."""
    if job.webhook_url:
        _send_after_commit(session, job, job.webhook_attempts + 1)


def redeliver(session: Session, job: Job) -> None:
    """Send the webhook again, with the same webhook-id, and start its backoff series afresh."""
    job.webhook_retry_from = job.webhook_attempts
    _send_after_commit(session, job, job.webhook_attempts + 1)


def send_due(session: Session, job: Job) -> None:
    """The reconciler's part: an attempt whose time has come."""
    _send_after_commit(session, job, job.webhook_attempts + 1)


def _send_after_commit(session: Session, job: Job, attempt: int) -> None:
    # Marked taken for a lease period: the reconciler sends it again only if this message was lost.
    job.webhook_next_attempt_at = utcnow() + timedelta(seconds=get_settings().lease_seconds)
    job_id = str(job.id)

    def send() -> None:
        try:
            send_now(DELIVER_WEBHOOK, job_id, str(attempt))
        except BrokerUnavailable:
            log.warning("could not send webhook attempt %d of job %s; the reconciler will", attempt, job_id)

    after_commit(session, send)


def retry_delay(retry: int, base_seconds: float) -> float:
    """Seconds before retry number `retry` (1 for the first) of a series."""
    nominal = min(MAX_DELAY_S, base_seconds * 2 ** (retry - 1))
    return nominal * random.uniform(1 - JITTER, 1 + JITTER)


# --- an attempt ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one attempt sends, read in one short transaction once the attempt is taken."""

    job_id: uuid.UUID
    number: int
    retries_before: int  # attempts of the series before this one
    url: str
    webhook_id: str
    event_type: str
    body: bytes
    signing_secrets: list[str]


@dataclass(frozen=True)
class Response:
    status_code: int | None
    error: str | None
    duration_ms: float
    stop: bool = False  # the guard refused the address: retrying cannot help


def deliver(job_id: uuid.UUID, number: int) -> Outcome | None:
    """Attempt `number` of the job's webhook; None when it is not this message's to make (taken by a
    duplicate, overtaken by a redelivery, or the job is gone)."""
    attempt = _take(job_id, number)
    if attempt is None:
        return None
    started = utcnow()
    response = _post(attempt, get_settings())
    return _record(attempt, started, response)


def _take(job_id: uuid.UUID, number: int) -> Attempt | None:
    now = utcnow()
    held_until = now + timedelta(seconds=get_settings().lease_seconds)
    with session_scope() as session:
        taken = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.webhook_attempts == number - 1,
                Job.webhook_next_attempt_at.is_not(None),
                Job.status.in_(FINAL_STATES),
            )
            .values(webhook_attempts=number, webhook_next_attempt_at=held_until)
            .returning(Job.webhook_retry_from)
        ).first()
        job = session.get(Job, job_id)
        if taken is None or job is None or not job.webhook_url:
            return None
        return Attempt(
            job_id=job_id,
            number=number,
            retries_before=number - 1 - taken[0],
            url=job.webhook_url,
            webhook_id=webhook_id(job_id),
            event_type=event_type(job.status),
            body=event_body(job),
            signing_secrets=signing_secrets(session, job.api_key_id, now),
        )


def _post(attempt: Attempt, settings: Settings) -> Response:
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": attempt.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(attempt.signing_secrets, attempt.webhook_id, timestamp, attempt.body),
    }
    timeout = settings.webhook_timeout_seconds
    timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    began = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - began) * 1000

    try:
        with (
            connection_pool(Guard.of(settings)) as pool,
            pool.stream(
                "POST",
                attempt.url,
                headers=list(headers.items()),
                content=attempt.body,
                extensions={"timeout": timeouts},
            ) as response,
        ):
            # The body is never read: a receiver cannot make the worker download anything.
            return Response(response.status, None, elapsed())
    except UrlNotAllowed as refused:
        return Response(None, refused.message, elapsed(), stop=True)
    except httpcore.TimeoutException as exc:
        return Response(None, f"timed out after {timeout:g} s ({type(exc).__name__})", elapsed())
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        return Response(None, f"{type(exc).__name__}: {exc}", elapsed())


def _outcome(attempt: Attempt, response: Response) -> Outcome:
    if response.status_code is not None and 200 <= response.status_code < 300:
        return Outcome.DELIVERED
    if response.stop or response.status_code == 410:
        return Outcome.STOPPED
    if attempt.retries_before + 1 >= MAX_ATTEMPTS:
        return Outcome.GAVE_UP
    return Outcome.RETRY


def _describe(response: Response) -> str | None:
    if response.error is not None:
        return response.error
    status = response.status_code
    if status is not None and 300 <= status < 400:
        return f"redirected ({status}): redirects are not followed"
    return None


def _record(attempt: Attempt, started: datetime, response: Response) -> Outcome:
    outcome = _outcome(attempt, response)
    next_at = None
    if outcome is Outcome.RETRY:
        delay = retry_delay(attempt.retries_before + 1, get_settings().webhook_retry_base_seconds)
        next_at = utcnow() + timedelta(seconds=delay)
    with session_scope() as session:
        if session.get(Job, attempt.job_id) is None:
            return outcome  # deleted while the attempt ran: its log went with it
        session.add(
            WebhookDelivery(
                job_id=attempt.job_id,
                webhook_id=attempt.webhook_id,
                event_type=attempt.event_type,
                attempt=attempt.number,
                started_at=started,
                duration_ms=round(response.duration_ms, 1),
                status_code=response.status_code,
                error=_describe(response),
                outcome=outcome,
                next_attempt_at=next_at,
            )
        )
        # Unless a redelivery has taken over the job's webhook since this attempt began.
        session.execute(
            update(Job)
            .where(Job.id == attempt.job_id, Job.webhook_attempts == attempt.number)
            .values(webhook_last_status=response.status_code, webhook_next_attempt_at=next_at)
        )
    log.info("webhook %s attempt %d: %s (%s)", attempt.webhook_id, attempt.number, outcome, response.status_code)
    return outcome
