"""The S3 writer against moto_server: an upload's parts are sent while the next ones are received, at most
`PARTS_IN_FLIGHT` at once, and come back whole and in order; an abort or a failed part leaves nothing behind.

Where a test needs a part to be slow, it wraps the real client's `upload_part` so the call waits before it
goes to the server: the upload itself is real."""

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tingxie import storage as storage_module
from tingxie.errors import StorageError
from tingxie.storage import PARTS_IN_FLIGHT, S3Storage

PART = 5 * 1024 * 1024  # S3's smallest part
BLOCKED_S = 0.5  # long enough for a write that should wait to be seen waiting


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(storage_module, "PART_BYTES", PART)
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    yield client


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"storage-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


class HeldParts:
    """Holds every `upload_part` call until released, counting how many are waiting at once."""

    def __init__(self, s3: Any) -> None:
        self._send = s3.upload_part
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)
        self.waiting = self.most_waiting = 0

    def __call__(self, **params: Any) -> Any:
        with self._lock:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        self.arrived.release()
        self.release.wait(timeout=30)
        with self._lock:
            self.waiting -= 1
        return self._send(**params)


def _write_in_pieces(writer: storage_module.ObjectWriter, data: bytes, piece: int = 777_777) -> None:
    for start in range(0, len(data), piece):
        writer.write(data[start : start + piece])


def test_receiving_goes_on_while_parts_are_sent_and_waits_beyond_the_bound(s3: Any, bucket: str) -> None:
    held = HeldParts(s3)
    s3.upload_part = held
    data = os.urandom(PART * (PARTS_IN_FLIGHT + 1) + 12345)
    writer = S3Storage(s3, bucket).writer("job/source")

    # Every part up to the bound is handed off while none has reached the server yet.
    _write_in_pieces(writer, data[: PART * PARTS_IN_FLIGHT], piece=PART)
    for _ in range(PARTS_IN_FLIGHT):
        assert held.arrived.acquire(timeout=10), "a full part was not handed to a sender"

    # The next full part must wait for a free sender: memory stays bounded however fast the client is.
    beyond = threading.Thread(target=_write_in_pieces, args=(writer, data[PART * PARTS_IN_FLIGHT :]))
    beyond.start()
    beyond.join(timeout=BLOCKED_S)
    assert beyond.is_alive(), "a part beyond the bound was taken while all senders were busy"

    held.release.set()
    beyond.join(timeout=30)
    writer.close()
    assert S3Storage(s3, bucket).get_bytes("job/source") == data
    assert held.most_waiting == PARTS_IN_FLIGHT


def test_an_abort_with_parts_in_flight_leaves_no_object_and_no_upload(s3: Any, bucket: str) -> None:
    held = HeldParts(s3)
    s3.upload_part = held
    writer = S3Storage(s3, bucket).writer("job/source")
    _write_in_pieces(writer, os.urandom(PART * PARTS_IN_FLIGHT), piece=PART)
    for _ in range(PARTS_IN_FLIGHT):
        assert held.arrived.acquire(timeout=10)
    held.release.set()
    writer.abort()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_part_the_server_refuses_fails_the_upload(s3: Any, bucket: str) -> None:
    writer = S3Storage(s3, bucket).writer("job/source")
    _write_in_pieces(writer, os.urandom(PART + 1))  # the first part is on its way
    (upload,) = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    s3.abort_multipart_upload(Bucket=bucket, Key="job/source", UploadId=upload["UploadId"])
    with pytest.raises(StorageError):  # while writing, once the failed part is waited for, or at the latest on close
        _write_in_pieces(writer, os.urandom(PART * 2))
        writer.close()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_small_object_is_one_put(s3: Any, bucket: str) -> None:
    writer = S3Storage(s3, bucket).writer("job/small")
    writer.write(b"RIFF")
    writer.close()
    assert S3Storage(s3, bucket).get_bytes("job/small") == b"RIFF"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
