"""Direct uploads: POST /v1/uploads hands out where to PUT the file (a presigned URL of the S3 server,
here moto_server; the API itself in the embedded mode), then POST /v1/jobs {"upload_id"} makes the job,
so the recording never passes through the API process."""

import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.conftest import MAX_UPLOAD_BYTES, Platform
from tests.corpus import OSR
from tests.helpers import wait_for
from tingxie import storage as storage_module
from tingxie.db import session_scope
from tingxie.errors import ObjectMissing
from tingxie.models import Upload, utcnow
from tingxie.storage import get_storage, source_key
from worker.reconcile import reconcile


def _create(client: httpx.Client, size: int, filename: str = OSR.name) -> httpx.Response:
    return client.post("/v1/uploads", json={"size": size, "filename": filename})


def _upload_and_submit(client: httpx.Client) -> tuple[str, dict[str, object]]:
    data = OSR.read_bytes()
    created = _create(client, len(data))
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["url"] is not None and upload["parts"] == []
    put = httpx.put(upload["url"], content=data, timeout=60)
    assert put.status_code == 200, put.text
    job = client.post("/v1/jobs", json={"upload_id": upload["upload_id"], "language": "en"})
    assert job.status_code == 202, job.text
    return upload["url"], job.json()


def test_a_file_put_straight_to_s3_becomes_a_job(client: httpx.Client, s3_endpoint: str) -> None:
    url, job = _upload_and_submit(client)
    assert urlsplit(url).netloc == urlsplit(s3_endpoint).netloc  # the bytes went to the S3 server, not the API
    done = wait_for(client, str(job["id"]))
    assert done["status"] == "completed" and done["text"] and done["filename"] == OSR.name
    again = client.post("/v1/jobs", json={"upload_id": str(job["id"])})  # the same upload: the same job
    assert again.status_code == 202 and again.json()["id"] == job["id"]


def test_the_embedded_mode_takes_the_put_itself(embedded_platform: Platform) -> None:
    with embedded_platform.client() as client:
        url, job = _upload_and_submit(client)
        assert url.startswith(embedded_platform.url + "/v1/uploads/")
        assert wait_for(client, str(job["id"]))["status"] == "completed"


def test_the_embedded_put_needs_its_token_and_keeps_to_the_declared_size(embedded_platform: Platform) -> None:
    with embedded_platform.client() as client:
        upload = _create(client, 1000).json()
        forged = upload["url"].split("?")[0] + "?token=guessed"
        assert httpx.put(forged, content=b"x" * 10).status_code == 404
        too_long = httpx.put(upload["url"], content=b"x" * 1001)
        assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "payload_too_large"
        not_yet = client.post("/v1/jobs", json={"upload_id": upload["upload_id"]})
        assert not_yet.status_code == 409 and not_yet.json()["error"]["code"] == "upload_incomplete"


def test_refusals(client: httpx.Client) -> None:
    too_big = _create(client, MAX_UPLOAD_BYTES + 1)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"
    assert _create(client, 0).status_code == 422
    upload = _create(client, 1000).json()
    not_yet = client.post("/v1/jobs", json={"upload_id": upload["upload_id"]})
    assert not_yet.status_code == 409 and not_yet.json()["error"]["code"] == "upload_incomplete"
    unknown = client.post("/v1/jobs", json={"upload_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    both = client.post("/v1/jobs", json={"upload_id": upload["upload_id"], "audio_url": "https://example.org/a"})
    assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_body"


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Parts of 5 MiB (S3's smallest) above 6 MiB, so a multipart upload needs only a few MiB here."""
    monkeypatch.setattr(storage_module, "SINGLE_PUT_BYTES", 6 * 1024 * 1024)
    monkeypatch.setattr(storage_module, "DIRECT_PART_BYTES", 5 * 1024 * 1024)
    yield


def test_a_large_file_goes_in_presigned_parts_that_s3_puts_together(
    service_env: dict[str, str], small_parts: None
) -> None:
    storage = get_storage()
    key = source_key(uuid.uuid4())
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256 + 1000)
    target = storage.presign_upload(key, len(data), 600)
    assert target is not None and target.url is None and target.part_bytes == 5 * 1024 * 1024
    assert [part.number for part in target.parts] == [1, 2, 3]
    for part in target.parts:
        start = (part.number - 1) * target.part_bytes
        assert httpx.put(part.url, content=data[start : start + target.part_bytes], timeout=60).status_code == 200
    assert storage.finish_upload(key, target.multipart_id) == len(data)
    assert storage.get_bytes(key) == data
    storage.delete_prefix(key)


def test_an_upload_no_job_was_made_of_is_deleted_when_it_expires(idle_broker: redis.Redis) -> None:
    upload_id = uuid.uuid4()
    storage = get_storage()
    storage.put_bytes(source_key(upload_id), b"abandoned")
    with session_scope() as session:
        session.add(Upload(id=upload_id, token_hash="0" * 64, size=9, expires_at=utcnow() - timedelta(minutes=1)))
    assert reconcile().uploads >= 1
    with session_scope() as session:
        assert session.get(Upload, upload_id) is None
    with pytest.raises(ObjectMissing):
        storage.get_bytes(source_key(upload_id))
