"""jobs.retain_days and jobs.expires_at (a job's own retention), and an index on finished_at for the
server-wide retention

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("retain_days", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_jobs_expires_at", "jobs", ["expires_at"])
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", "jobs")
    op.drop_index("ix_jobs_expires_at", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("retain_days")
