"""Diarization per job: whether it was asked for and how far it is (jobs.diarization), the speaker count
the client gave, and the speaker turns found (jobs.speaker_turns), kept until finalize labels the segments

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 02:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("diarization", "speakers", "min_speakers", "max_speakers", "speaker_turns")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("diarization", sa.String(16), nullable=True))
    op.add_column("jobs", sa.Column("speakers", sa.SmallInteger(), nullable=True))
    op.add_column("jobs", sa.Column("min_speakers", sa.SmallInteger(), nullable=True))
    op.add_column("jobs", sa.Column("max_speakers", sa.SmallInteger(), nullable=True))
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.add_column("jobs", sa.Column("speaker_turns", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
