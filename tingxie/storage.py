"""Object storage: S3 (or MinIO / any S3-protocol server) in production, a local directory when embedded.

Objects are written through a writer that streams: S3 gets a multipart upload fed part by part, the local
store a temporary file renamed into place on close, so an upload is never held in memory and a half-written
object never becomes visible. botocore errors are translated into `StorageError` here."""

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tingxie.errors import ObjectMissing, StorageError
from tingxie.settings import Settings, get_settings

PART_BYTES = 8 * 1024 * 1024  # S3 multipart parts must be >= 5 MiB, all but the last
PARTS_IN_FLIGHT = 2  # parts of one upload sent to S3 at once while the next is received
SINGLE_PUT_BYTES = 512 * 1024 * 1024  # a direct upload larger than this is sent in parts
DIRECT_PART_BYTES = 64 * 1024 * 1024
MAX_PARTS = 10_000  # S3's limit
S3_POOL_CONNECTIONS = 40  # one per API thread that may store an upload at once (botocore's default: 10)
DOWNLOAD_BLOCK_BYTES = 1024 * 1024


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


@dataclass(frozen=True)
class PresignedPart:
    number: int  # 1-based; every part is `part_bytes` long but the last
    url: str


@dataclass(frozen=True)
class PresignedUpload:
    """Where a client PUTs an object itself: one URL, or one per part of a multipart upload."""

    url: str | None
    parts: tuple[PresignedPart, ...] = ()
    part_bytes: int | None = None
    multipart_id: str | None = None  # S3's UploadId, completed by `finish_upload`


@dataclass(frozen=True)
class StoredFolder:
    """The objects under one prefix's next level (`jobs/<id>/`), and when the newest was written."""

    name: str  # the folder's own name: `<id>`
    last_written: datetime


class Storage(Protocol):
    def writer(self, key: str) -> ObjectWriter: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def download(self, key: str, path: Path) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def folders(self, prefix: str) -> list[StoredFolder]: ...
    def check(self) -> None: ...
    # Direct uploads: None when the storage cannot hand out URLs (the local directory: the API takes the PUT).
    def presign_upload(self, key: str, size: int, expires_s: int) -> PresignedUpload | None: ...
    def finish_upload(self, key: str, multipart_id: str | None) -> int: ...
    def abort_upload(self, key: str, multipart_id: str | None) -> None: ...


MISSING_CODES = ("NoSuchKey", "404")  # what S3 answers for an object that is not there


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError, OSError) as exc:
        raise StorageError(f"object storage failed to {action}: {exc}") from exc


@contextmanager
def reading(key: str) -> Iterator[None]:
    """As `storage_errors`, except that an object that is not there is `ObjectMissing`: the storage
    answered, and no retry will bring the object back (deleted outside tingxie, or a lifecycle rule)."""
    try:
        yield
    except FileNotFoundError as exc:
        raise _missing(key) from exc
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING_CODES:
            raise _missing(key) from exc
        raise StorageError(f"object storage failed to read {key}: {exc}") from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"object storage failed to read {key}: {exc}") from exc


def _missing(key: str) -> ObjectMissing:
    return ObjectMissing(f"the stored object {key} is gone: it was deleted from storage while the job was open")


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError(f"invalid object key {key!r}")
        return path

    def writer(self, key: str) -> ObjectWriter:
        return _LocalWriter(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        writer = self.writer(key)
        writer.write(data)
        writer.close()

    def get_bytes(self, key: str) -> bytes:
        with reading(key):
            return self._path(key).read_bytes()

    def download(self, key: str, path: Path) -> None:
        with reading(key):
            shutil.copyfile(self._path(key), path)

    def delete_prefix(self, prefix: str) -> None:
        """Every object whose key starts with `prefix`, as on S3: `jobs/<id>/` is a directory, while
        `jobs/<id>/source` is a file (and any other whose name starts so)."""
        path = self._path(prefix)
        folder, stem = (path, "") if prefix.endswith("/") else (path.parent, path.name)
        with storage_errors("delete"):
            if not folder.is_dir():
                return
            for entry in folder.iterdir():
                if entry.name.startswith(stem):
                    _remove(entry)
            _remove_if_empty(folder)

    def folders(self, prefix: str) -> list[StoredFolder]:
        """Every directory under `prefix`; a write in progress (a `.part-` file) counts as written now."""
        path = self._path(prefix)
        with storage_errors("list"):
            if not path.is_dir():
                return []
            return [StoredFolder(entry.name, _newest_write(entry)) for entry in path.iterdir() if entry.is_dir()]

    def check(self) -> None:
        with storage_errors("reach the storage directory"):
            if not os.access(self.root, os.W_OK):
                raise OSError(f"{self.root} is not writable")

    def presign_upload(self, key: str, size: int, expires_s: int) -> PresignedUpload | None:
        return None

    def finish_upload(self, key: str, multipart_id: str | None) -> int:
        """The size of the object a direct upload stored."""
        with reading(key):
            return self._path(key).stat().st_size

    def abort_upload(self, key: str, multipart_id: str | None) -> None:
        self.delete_prefix(key)


def _newest_write(folder: Path) -> datetime:
    times = [entry.stat().st_mtime for entry in folder.rglob("*") if entry.is_file()]
    return datetime.fromtimestamp(max(times, default=folder.stat().st_mtime), UTC)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_if_empty(folder: Path) -> None:
    """An emptied job directory goes too, as S3 has no directories to leave behind."""
    with suppress(OSError):  # not empty: another object of the job is still there
        folder.rmdir()


class _LocalWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        # Closed by close() or abort(): the writer outlives any one `with` block.
        self._file: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=path.parent, prefix=".part-", delete=False
        )

    def write(self, data: bytes) -> None:
        with storage_errors("write"):
            self._file.write(data)

    def close(self) -> None:
        with storage_errors("write"):
            self._file.close()
            os.replace(self._file.name, self._path)

    def abort(self) -> None:
        self._file.close()
        Path(self._file.name).unlink(missing_ok=True)


class S3Storage:
    def __init__(self, client: Any, bucket: str, presigner: Any | None = None) -> None:
        self.client = client
        self.bucket = bucket
        # Signs the URLs clients upload to: an endpoint they can reach (S3_PUBLIC_ENDPOINT_URL), which the
        # signature covers, and which may differ from the one this process uses.
        self.presigner = presigner or client

    def presign_upload(self, key: str, size: int, expires_s: int) -> PresignedUpload | None:
        """One PUT up to SINGLE_PUT_BYTES; above that a multipart upload, a URL for each part."""
        with storage_errors("prepare an upload"):
            if size <= SINGLE_PUT_BYTES:
                url = self._sign("put_object", {"Key": key}, expires_s)
                return PresignedUpload(url=url)
            part_bytes = max(DIRECT_PART_BYTES, -(-size // MAX_PARTS))
            multipart_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            numbers = range(1, -(-size // part_bytes) + 1)
            parts = tuple(
                PresignedPart(
                    n, self._sign("upload_part", {"Key": key, "UploadId": multipart_id, "PartNumber": n}, expires_s)
                )
                for n in numbers
            )
            return PresignedUpload(url=None, parts=parts, part_bytes=part_bytes, multipart_id=multipart_id)

    def _sign(self, operation: str, params: dict[str, Any], expires_s: int) -> str:
        url: str = self.presigner.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires_s
        )
        return url

    def finish_upload(self, key: str, multipart_id: str | None) -> int:
        """Complete a multipart direct upload from the parts S3 holds (the client need not report their
        ETags), and return the object's size."""
        with reading(key):
            if multipart_id is not None:
                self._complete(key, multipart_id)
            size: int = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
            return size

    def abort_upload(self, key: str, multipart_id: str | None) -> None:
        """Drop an upload never made into a job: its object, and the parts of one sent in parts (which
        S3 keeps, unlisted, until aborted)."""
        with storage_errors("abort an upload"):
            if multipart_id is not None:
                with suppress(ClientError):  # completed or aborted already
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        self.delete_prefix(key)

    def _complete(self, key: str, multipart_id: str) -> None:
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        parts = [
            {"PartNumber": part["PartNumber"], "ETag": part["ETag"]} for page in pages for part in page.get("Parts", [])
        ]
        if not parts:
            raise ObjectMissing(f"no part of {key} was uploaded")
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=multipart_id, MultipartUpload={"Parts": parts}
        )

    def ensure_bucket(self) -> None:
        with storage_errors("create the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError:
                self.client.create_bucket(Bucket=self.bucket)

    def writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self.client, self.bucket, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        with storage_errors("write"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get_bytes(self, key: str) -> bytes:
        with reading(key):
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body

    def download(self, key: str, path: Path) -> None:
        """Streamed in this thread, DOWNLOAD_BLOCK_BYTES at a time. boto3's download_file runs a pool of
        threads with queued buffers, and the memory they take stays with the worker after the job ends."""
        with reading(key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with path.open("wb") as out:
                for block in body.iter_chunks(DOWNLOAD_BLOCK_BYTES):
                    out.write(block)

    def delete_prefix(self, prefix: str) -> None:
        with storage_errors("delete"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def folders(self, prefix: str) -> list[StoredFolder]:
        """Listed object by object (a delimiter listing gives no times): a page of 1,000 per request.
        Multipart uploads still in progress are not objects yet, so they are not seen."""
        newest: dict[str, datetime] = {}
        with storage_errors("list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :].split("/", 1)[0]
                    newest[name] = max(newest.get(name, item["LastModified"]), item["LastModified"])
        return [StoredFolder(name, written) for name, written in newest.items()]

    def check(self) -> None:
        with storage_errors("reach the bucket"):
            self.client.head_bucket(Bucket=self.bucket)


class _S3Writer:
    """Buffers up to one part, then hands it to a sender thread and goes on buffering the next; small
    objects end as a single PUT.

    Sending overlaps receiving: the API reads the next part off the socket while the last one is on its way
    to S3. At most `PARTS_IN_FLIGHT` parts are being sent at once, and `write` waits for the oldest beyond
    that, so an upload holds at most `PARTS_IN_FLIGHT + 1` parts in memory however fast its client is."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._sender: ThreadPoolExecutor | None = None
        self._sending: deque[Future[dict[str, Any]]] = deque()
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= PART_BYTES:
            self._send_part()

    def _send_part(self) -> None:
        if self._upload_id is None:
            with storage_errors("write"):
                created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
            self._sender = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        while len(self._sending) >= PARTS_IN_FLIGHT:
            self._parts.append(self._sending.popleft().result())
        assert self._sender is not None
        number = len(self._parts) + len(self._sending) + 1
        body = bytes(self._buffer)
        self._buffer.clear()
        self._sending.append(self._sender.submit(self._upload_part, self._upload_id, number, body))

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        with storage_errors("write"):
            part = self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"PartNumber": number, "ETag": part["ETag"]}

    def close(self) -> None:
        if self._upload_id is None:
            with storage_errors("write"):
                self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
            return
        try:
            if self._buffer:
                self._send_part()
            while self._sending:
                self._parts.append(self._sending.popleft().result())
        finally:
            self._stop_sender()
        with storage_errors("write"):
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def abort(self) -> None:
        self._buffer.clear()
        for sending in self._sending:
            sending.cancel()
        # A part already on its way finishes first: S3 aborts an upload only once no part is arriving.
        self._stop_sender()
        self._sending.clear()
        if self._upload_id is not None:
            with storage_errors("abort an upload"):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)

    def _stop_sender(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None


def build_storage(settings: Settings) -> Storage:
    if not settings.uses_s3:
        return LocalStorage(settings.resolved_storage_dir)
    # A session of its own: boto3's default session is not safe to build clients from in several threads
    # at once, which the GPU worker's thread pool does on its first tasks.
    client = _s3_client(settings, settings.s3_endpoint_url)
    presigner = None
    if settings.s3_public_endpoint_url and settings.s3_public_endpoint_url != settings.s3_endpoint_url:
        presigner = _s3_client(settings, settings.s3_public_endpoint_url)
    storage = S3Storage(client, settings.s3_bucket, presigner)
    storage.ensure_bucket()
    return storage


def _s3_client(settings: Settings, endpoint_url: str | None) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=S3_POOL_CONNECTIONS,
        ),
    )


@lru_cache
def get_storage() -> Storage:
    return build_storage(get_settings())


JOBS_PREFIX = "jobs/"


def job_prefix(job_id: object) -> str:
    return f"{JOBS_PREFIX}{job_id}/"


def source_key(job_id: object) -> str:
    """The job's recording as uploaded (or fetched, or put there by a direct upload)."""
    return f"{job_prefix(job_id)}source"
