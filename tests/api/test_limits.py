"""Limits per key: jobs at once, submissions per minute and audio per day give 429 with Retry-After before
the upload streams, for that key only; the keyless local mode has none.

The app runs in this process (FastAPI's TestClient) against the suite's Postgres and storage, on a broker
no worker consumes, so submitted jobs stay queued; the keys are revoked at the end."""

import secrets
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import update

from api.jobs.limits import check_limits
from api.main import create_app
from tests.conftest import clear_caches
from tests.corpus import OSR
from tests.helpers import stored_sources
from tingxie.db import get_sessionmaker, session_scope
from tingxie.keys import hash_key
from tingxie.models import ApiKey, Job, utcnow
from tingxie.settings import Settings


@pytest.fixture
def limited(idle_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Every limit off; a test switches on the one it checks, then calls `app()`."""
    for name in ("MAX_ACTIVE_JOBS_PER_KEY", "MAX_SUBMITS_PER_MINUTE", "MAX_AUDIO_HOURS_PER_DAY"):
        monkeypatch.setenv(f"TINGXIE_{name}", "0")
    yield monkeypatch
    clear_caches()


@pytest.fixture
def two_keys() -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    secrets_ = [f"tx_limits_{secrets.token_hex(8)}" for _ in range(2)]
    keys = [ApiKey(name="limits", key_hash=hash_key(secret)) for secret in secrets_]
    with session_scope() as session:
        session.add_all(keys)
    yield tuple({"Authorization": f"Bearer {secret}"} for secret in secrets_)  # type: ignore[misc]
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id.in_([key.id for key in keys])).values(revoked_at=utcnow()))


def _app() -> TestClient:
    clear_caches()
    return TestClient(create_app())


def _submit(http: TestClient, headers: dict[str, str] | None = None) -> Response:
    with OSR.open("rb") as audio:
        return http.post("/v1/jobs", files={"file": (OSR.name, audio)}, headers=headers)


def _limited(response: Response, code: str = "rate_limited") -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    return int(response.headers["Retry-After"])


def test_submissions_per_minute(limited: pytest.MonkeyPatch, two_keys: tuple[dict[str, str], ...]) -> None:
    limited.setenv("TINGXIE_MAX_SUBMITS_PER_MINUTE", "2")
    alice, bob = two_keys
    with _app() as http:
        assert [_submit(http, alice).status_code for _ in range(2)] == [202, 202]
        sources = stored_sources()
        assert 1 <= _limited(_submit(http, alice)) <= 60  # until the first of the two is a minute old
        assert stored_sources() == sources  # refused before anything was stored
        assert _submit(http, bob).status_code == 202  # another key is not held back


def test_jobs_at_once(limited: pytest.MonkeyPatch, two_keys: tuple[dict[str, str], ...]) -> None:
    limited.setenv("TINGXIE_MAX_ACTIVE_JOBS_PER_KEY", "1")
    alice, _ = two_keys
    with _app() as http:
        first = _submit(http, alice)
        assert first.status_code == 202
        assert _limited(_submit(http, alice)) > 0
        assert http.post(f"/v1/jobs/{first.json()['id']}/cancel", headers=alice).status_code == 200
        assert _submit(http, alice).status_code == 202  # one finished: room again


def test_audio_hours_per_day(limited: pytest.MonkeyPatch, two_keys: tuple[dict[str, str], ...]) -> None:
    limited.setenv("TINGXIE_MAX_AUDIO_HOURS_PER_DAY", "1")
    alice, _ = two_keys
    with _app() as http:
        first = _submit(http, alice)
        with session_scope() as session:  # as if prepare had found an hour of audio in it
            session.execute(update(Job).where(Job.id == first.json()["id"]).values(duration_s=3600.0))
        retry_after = _limited(_submit(http, alice), "quota_exceeded")
        assert 23 * 3600 < retry_after <= 24 * 3600


def test_the_keyless_local_mode_has_no_limits() -> None:
    strict = Settings(max_active_jobs_per_key=1, max_submits_per_minute=1, max_audio_hours_per_day=0.001)
    with get_sessionmaker()() as session:  # rolled back: the jobs exist only for the count
        session.add_all([Job(source_key="jobs/x/source", duration_s=3600.0) for _ in range(2)])
        session.flush()
        check_limits(session, None, strict)  # no key: the single local user
        session.rollback()
