"""A notification on channel tingxie_keys whenever api_keys changes in a way that decides who may call
(a key made or deleted, its hash or revocation changed), so API processes drop their cached key lookups
(api/key_cache.py) at once, whoever made the change. Postgres only: SQLite has no NOTIFY, and nothing is
cached there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 01:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION tingxie_notify_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tingxie_keys', TG_OP);
    RETURN NULL;
END
$$
"""
# Statement-level: one notification per statement, delivered when its transaction commits. last_used_at,
# written once a minute per key in use, is left out on purpose: it changes nobody's access.
TRIGGERS = (
    "CREATE TRIGGER api_keys_made_or_deleted AFTER INSERT OR DELETE OR TRUNCATE ON api_keys "
    "FOR EACH STATEMENT EXECUTE FUNCTION tingxie_notify_key_change()",
    "CREATE TRIGGER api_keys_access_changed AFTER UPDATE OF key_hash, revoked_at ON api_keys "
    "FOR EACH STATEMENT EXECUTE FUNCTION tingxie_notify_key_change()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS api_keys_access_changed ON api_keys")
    op.execute("DROP TRIGGER IF EXISTS api_keys_made_or_deleted ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS tingxie_notify_key_change()")
