"""API keys: once a key exists, requests need one, and each key sees only its own jobs.

The app runs in this process (FastAPI's TestClient) against the same Postgres, broker and storage as the
platform; the keys are revoked at the end so the shared loopback platform is open again for other tests."""

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.main import create_app
from tests.corpus import OSR
from tingxie.db import session_scope
from tingxie.keys import hash_key
from tingxie.models import ApiKey, utcnow


@pytest.fixture
def key_secrets() -> tuple[str, str]:
    return f"tx_alice_{secrets.token_hex(8)}", f"tx_bob_{secrets.token_hex(8)}"


@pytest.fixture
def keyed_client(service_env: dict[str, str], key_secrets: tuple[str, str]) -> Iterator[TestClient]:
    with session_scope() as session:
        keys = [ApiKey(name=secret[:8], key_hash=hash_key(secret)) for secret in key_secrets]
        session.add_all(keys)
    with TestClient(create_app()) as http:
        yield http
    with session_scope() as session:
        session.execute(update(ApiKey).where(ApiKey.id.in_([k.id for k in keys])).values(revoked_at=utcnow()))


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_requests_need_a_key_once_keys_exist(keyed_client: TestClient) -> None:
    missing = keyed_client.get("/v1/jobs")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = keyed_client.get("/v1/jobs", headers=_auth("tx_not_a_key"))
    assert wrong.status_code == 401


def test_each_key_sees_only_its_own_jobs(keyed_client: TestClient, key_secrets: tuple[str, str]) -> None:
    alice, bob = (_auth(secret) for secret in key_secrets)
    with OSR.open("rb") as audio:
        created = keyed_client.post("/v1/jobs", files={"file": (OSR.name, audio)}, headers=alice)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert keyed_client.get(f"/v1/jobs/{job_id}", headers=alice).status_code == 200
    assert keyed_client.get(f"/v1/jobs/{job_id}", headers=bob).status_code == 404
    assert keyed_client.delete(f"/v1/jobs/{job_id}", headers=bob).status_code == 404
    listed = keyed_client.get("/v1/jobs", headers=bob).json()["jobs"]
    assert job_id not in [job["id"] for job in listed]


def test_idempotency_key_returns_the_same_job(keyed_client: TestClient, key_secrets: tuple[str, str]) -> None:
    headers = _auth(key_secrets[0]) | {"Idempotency-Key": "upload-42"}
    ids = []
    for _ in range(2):
        with OSR.open("rb") as audio:
            response = keyed_client.post("/v1/jobs", files={"file": (OSR.name, audio)}, headers=headers)
        assert response.status_code == 202
        ids.append(response.json()["id"])
    assert ids[0] == ids[1]
