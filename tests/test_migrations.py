"""The schema comes from Alembic: it applies to an empty database and matches the models exactly."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from tests.conftest import PG_ADMIN
from tingxie import migrate


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"tingxie_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url: str) -> set[str]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def test_migrations_apply_to_an_empty_database_without_drift(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    assert {"jobs", "chunks", "api_keys", "webhook_deliveries"} <= _tables(empty_database)
    command.check(migrate.alembic_config(empty_database))  # raises if the models drifted


def test_migrations_downgrade_cleanly(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    command.downgrade(migrate.alembic_config(empty_database), "base")
    assert _tables(empty_database) == {"alembic_version"}
