"""ORM models, all in one place. Tables are created by Alembic migrations, never by `create_all`."""

import base64
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tingxie.states import ChunkStatus, JobStatus, Priority

Json = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A time read back from the database, time zone included: SQLite keeps none (it was written in UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


WEBHOOK_SECRET_PREFIX = "whsec_"


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and 32 random bytes in base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: DateTime(timezone=True)}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the secret
    # Set here, not only by the database: SQLite (the embedded mode) has no now().
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.current_timestamp())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # The key's webhook signing secret (whsec_…). Kept as it is, not hashed: signing needs it. While a
    # rotation overlaps, deliveries carry a signature with the previous secret too.
    webhook_secret: Mapped[str] = mapped_column(Text, default=new_webhook_secret)
    previous_webhook_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    language: Mapped[str] = mapped_column(String(16), default="auto")  # requested: "auto" or a code
    priority: Mapped[str] = mapped_column(String(16), default=Priority.BATCH)  # as submitted
    # The broker's priority step for this job's tasks (0 first); see tingxie.queue.queue_priority.
    queue_priority: Mapped[int] = mapped_column(SmallInteger, default=3)  # the first batch step
    context: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)

    source_key: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text)  # submitted by URL: the worker fetches it to source_key
    source_filename: Mapped[str | None] = mapped_column(Text)
    source_bytes: Mapped[int] = mapped_column(BigInteger, default=0)

    duration_s: Mapped[float | None]  # declared by the container while preparing, then as decoded
    prepared_s: Mapped[float | None]  # audio decoded and cut into chunks so far
    chunks_total: Mapped[int | None]  # set once prepare has cut the whole recording
    chunks_cut: Mapped[int] = mapped_column(Integer, default=0)  # cut and queued so far
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)

    text: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    languages: Mapped[list[str] | None] = mapped_column(Json)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[dict[str, str]] | None] = mapped_column(Json)  # [{code, message}] from prepare
    # Diarization: None (not asked for), "pending", "done" or "failed"; the client's speaker count, if any;
    # the turns found ([{start, end, speaker}]), which finalize puts on the segments.
    diarization: Mapped[str | None] = mapped_column(String(16))
    speakers: Mapped[int | None] = mapped_column(SmallInteger)
    min_speakers: Mapped[int | None] = mapped_column(SmallInteger)
    max_speakers: Mapped[int | None] = mapped_column(SmallInteger)
    speaker_turns: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
    retain_days: Mapped[float | None]  # as submitted: keep this job so long once finished
    expires_at: Mapped[datetime | None] = mapped_column(index=True)  # finished_at + retain_days
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Prepare's lease (worker.leases): who is cutting the recording, until when unless renewed.
    leased_by: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    # A message for this job could not be sent (the broker was unreachable): the reconciler sends it.
    resend_needed: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Webhook delivery (tingxie.webhooks): the attempts made so far, the last one's HTTP status, and when
    # the next is due (None once delivered, stopped or given up). `webhook_retry_from` is the attempt count
    # at the last redelivery, from which the backoff starts again.
    webhook_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    webhook_retry_from: Mapped[int] = mapped_column(default=0, server_default="0")
    webhook_last_status: Mapped[int | None]
    webhook_next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)


class Upload(Base):
    """A direct upload (POST /v1/uploads): the object a client PUTs itself, until a job is made of it.
    Its id becomes the job's, and its object is already at that job's source key."""

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the token in the embedded mode's PUT URL
    filename: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)  # as declared
    multipart_id: Mapped[str | None] = mapped_column(Text)  # S3's UploadId, for one sent in parts
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Chunk(Base):
    """One queue chunk of a job: minutes of audio, transcribed by one `transcribe` task."""

    __tablename__ = "chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    start_s: Mapped[float]
    end_s: Mapped[float]
    audio_key: Mapped[str] = mapped_column(Text)
    windows: Mapped[list[list[float]]] = mapped_column(Json)  # [[start, end], ...] relative to the chunk
    status: Mapped[str] = mapped_column(String(16), default=ChunkStatus.PENDING)
    segments: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Transcribe's lease (worker.leases): the worker whose batch holds this chunk, until when.
    leased_by: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)


class WebhookDelivery(Base):
    """One attempt to deliver a job's webhook: the log behind GET /v1/jobs/{id}/webhook/deliveries."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    webhook_id: Mapped[str] = mapped_column(String(64))  # the `webhook-id` header: the same on every attempt
    event_type: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int]
    started_at: Mapped[datetime]
    duration_ms: Mapped[float]
    status_code: Mapped[int | None]  # None when no response came (timeout, refused connection)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # tingxie.webhooks.Outcome
    next_attempt_at: Mapped[datetime | None]
