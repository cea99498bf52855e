"""A transaction Postgres aborts to resolve a conflict is told apart from a database that is down: a
deadlock answers `503 database_busy` with `Retry-After`, a refused connection `503 database_unavailable`.

No route is known to deadlock any more, so the conflict is made for real between two connections to the
suite's Postgres (advisory locks taken in opposite orders) and the exception it raised is answered by the
API's own error handlers, installed on an app whose one route re-raises what it is given."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from api.errors import install_error_handlers, is_transaction_conflict


def _deadlock_victim(postgres_url: str) -> OperationalError:
    """Two transactions each hold one advisory lock and ask for the other's; Postgres aborts one of them."""
    engine = create_engine(postgres_url)
    both_hold_one = threading.Barrier(2, timeout=30)

    def take(first: int, second: int) -> OperationalError | None:
        with engine.connect() as connection:
            try:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": first})
                both_hold_one.wait()
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": second})
            except OperationalError as aborted:
                return aborted
            finally:
                connection.rollback()
        return None

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = [pool.submit(take, 1, 2), pool.submit(take, 2, 1)]
            victims = [error for outcome in outcomes if (error := outcome.result(timeout=60)) is not None]
    finally:
        engine.dispose()
    assert len(victims) == 1, "Postgres aborts exactly one side of a deadlock"
    return victims[0]


def _refused_connection() -> OperationalError:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    return refused.value


def _answer_to(error: Exception) -> httpx.Response:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/jobs")
    def fail() -> object:
        raise error

    client = TestClient(app, raise_server_exceptions=False)
    return client.get("/v1/jobs")


def test_a_deadlock_victim_answers_database_busy_with_retry_after(postgres_url: str) -> None:
    victim = _deadlock_victim(postgres_url)
    assert is_transaction_conflict(victim)
    answer = _answer_to(victim)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_busy"
    assert answer.headers["Retry-After"] == "1"


def test_a_refused_connection_still_answers_database_unavailable() -> None:
    refused = _refused_connection()
    assert not is_transaction_conflict(refused)
    answer = _answer_to(refused)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_unavailable"
    assert "Retry-After" not in answer.headers
