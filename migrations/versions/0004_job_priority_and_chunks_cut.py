"""job priority (interactive | batch), its broker priority step, and the chunks cut so far

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.String(length=16), server_default="batch", nullable=False))
    # Jobs queued before priorities existed are batch jobs: the first batch step.
    op.add_column("jobs", sa.Column("queue_priority", sa.SmallInteger(), server_default="3", nullable=False))
    op.add_column("jobs", sa.Column("chunks_cut", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("chunks_cut")
        batch.drop_column("queue_priority")
        batch.drop_column("priority")
