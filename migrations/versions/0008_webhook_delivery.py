"""webhook delivery: a signing secret per API key (with the one it replaces, while a rotation overlaps),
the delivery state of each job's webhook, and webhook_deliveries as a log of every attempt

webhook_deliveries, created in 0001 with one row per event, was never written: it is replaced by the
attempt log. Keys made before this revision get a secret here; its owner sees it by rotating it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:30:00.000000
"""

import base64
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _new_secret() -> str:
    # Frozen here rather than imported from tingxie.webhooks, so that this revision never changes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("webhook_secret", sa.Text(), nullable=True))
    op.add_column("api_keys", sa.Column("previous_webhook_secret", sa.Text(), nullable=True))
    op.add_column("api_keys", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True))
    keys = sa.table("api_keys", sa.column("id", sa.Uuid()), sa.column("webhook_secret", sa.Text()))
    connection = op.get_bind()
    for (key_id,) in connection.execute(sa.select(keys.c.id)).all():
        connection.execute(sa.update(keys).where(keys.c.id == key_id).values(webhook_secret=_new_secret()))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("webhook_secret", existing_type=sa.Text(), nullable=False)

    op.add_column("jobs", sa.Column("webhook_attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("webhook_retry_from", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("webhook_last_status", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("webhook_next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_jobs_webhook_next_attempt_at", "jobs", ["webhook_next_attempt_at"])

    op.drop_index("ix_webhook_deliveries_job_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_job_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id"])
    op.drop_index("ix_jobs_webhook_next_attempt_at", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("webhook_next_attempt_at", "webhook_last_status", "webhook_retry_from", "webhook_attempts"):
            batch.drop_column(column)
    with op.batch_alter_table("api_keys") as batch:
        for column in ("previous_secret_expires_at", "previous_webhook_secret", "webhook_secret"):
            batch.drop_column(column)
