"""Leases on jobs (prepare) and chunks (transcribe), and jobs.resend_needed for a message the broker refused

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASED = ("jobs", "chunks")


def upgrade() -> None:
    for table in LEASED:
        op.add_column(table, sa.Column("leased_by", sa.String(120), nullable=True))
        op.add_column(table, sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        op.create_index(f"ix_{table}_lease_expires_at", table, ["lease_expires_at"])
    op.add_column("jobs", sa.Column("resend_needed", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("resend_needed")
    for table in LEASED:
        op.drop_index(f"ix_{table}_lease_expires_at", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_expires_at")
            batch.drop_column("leased_by")
