"""api_keys.created_at defaults to CURRENT_TIMESTAMP, which SQLite knows, instead of now(), which it does not

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("created_at", server_default=sa.text("CURRENT_TIMESTAMP"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("created_at", server_default=sa.text("now()"))
