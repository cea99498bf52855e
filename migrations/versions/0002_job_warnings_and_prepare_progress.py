"""job warnings (what a completed transcript lacks) and prepare progress

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column(
            "warnings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column("jobs", sa.Column("prepared_s", sa.Double(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "prepared_s")
    op.drop_column("jobs", "warnings")
