"""/v1/uploads: direct uploads, so that a 4 GB recording never passes through the API process.

`POST /v1/uploads {"filename", "size"}` answers where to PUT the bytes: a presigned S3 URL, or one per
part for a file over the single-PUT size (S3 holds the parts; the client needs no ETags), or, in the
embedded mode, this API's own `PUT /v1/uploads/{id}?token=…`, streamed to the storage directory.
`POST /v1/jobs {"upload_id", …}` then makes the job: the upload's id becomes the job's, and its object
is already the job's source. An upload no job was made of is deleted once it expires (the reconciler)."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentKey, SettingsDep, StorageDep
from api.jobs import service
from api.jobs.limits import check_key_limits
from tingxie.db import session_scope
from tingxie.errors import Conflict, InvalidRequest, NotFound, ObjectMissing, PayloadTooLarge
from tingxie.models import Upload, as_utc, utcnow
from tingxie.storage import Storage

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

UPLOAD_LIFETIME = timedelta(hours=24)  # the presigned URLs', and the upload's until a job is made of it


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(gt=0, description="the file's size in bytes")
    filename: str | None = None


class PartOut(BaseModel):
    number: int
    url: str


class UploadOut(BaseModel):
    upload_id: uuid.UUID
    expires_at: datetime
    method: str = "PUT"
    url: str | None  # one PUT of the whole file; null when it goes in `parts`
    parts: list[PartOut]  # PUT part n (`part_bytes` long, the last one shorter) to parts[n-1].url
    part_bytes: int | None


class UploadedOut(BaseModel):
    upload_id: uuid.UUID
    size: int


@router.post("", status_code=201, response_model=UploadOut)
async def create_upload(
    body: UploadRequest, request: Request, settings: SettingsDep, storage: StorageDep, key: CurrentKey
) -> UploadOut:
    """Where to PUT a file of `size` bytes; then `POST /v1/jobs {"upload_id": …}`."""
    if body.size > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the file is larger than the limit of {settings.max_upload_bytes} bytes")
    await run_in_threadpool(check_key_limits, key, settings)
    upload_id, token = uuid.uuid4(), secrets.token_urlsafe(24)
    expires = utcnow() + UPLOAD_LIFETIME
    lifetime_s = int(UPLOAD_LIFETIME.total_seconds())
    target = await run_in_threadpool(storage.presign_upload, service.source_key(upload_id), body.size, lifetime_s)
    row = Upload(
        id=upload_id,
        api_key_id=key,
        token_hash=_hash(token),
        filename=service.clean_filename(body.filename),
        size=body.size,
        multipart_id=target.multipart_id if target is not None else None,
        expires_at=expires,
    )
    await run_in_threadpool(_save, row)
    if target is None:  # the embedded mode: this API takes the PUT
        own = str(request.url_for("put_upload", upload_id=upload_id).include_query_params(token=token))
        return UploadOut(upload_id=upload_id, expires_at=expires, url=own, parts=[], part_bytes=None)
    parts = [PartOut(number=part.number, url=part.url) for part in target.parts]
    return UploadOut(upload_id=upload_id, expires_at=expires, url=target.url, parts=parts, part_bytes=target.part_bytes)


def _save(row: Upload) -> None:
    with session_scope() as session:
        session.add(row)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@router.put("/{upload_id}", response_model=UploadedOut, name="put_upload")
async def put_upload(
    upload_id: uuid.UUID,
    request: Request,
    settings: SettingsDep,
    storage: StorageDep,
    token: Annotated[str, Query(description="from the URL POST /v1/uploads answered")],
) -> UploadedOut:
    """The embedded mode's upload URL: the body, streamed to storage. Authorized by its token, as a
    presigned URL is, so no API key is sent."""
    upload = await run_in_threadpool(_find_by_token, upload_id, token)
    limit = min(upload.size, settings.max_upload_bytes)
    writer, size = storage.writer(service.source_key(upload_id)), 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise PayloadTooLarge(f"the body is longer than the {upload.size} bytes declared for the upload")
            await run_in_threadpool(writer.write, part)
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise
    await run_in_threadpool(writer.close)
    return UploadedOut(upload_id=upload_id, size=size)


def _find_by_token(upload_id: uuid.UUID, token: str) -> Upload:
    with session_scope() as session:
        upload = session.get(Upload, upload_id)
        if upload is None or not secrets.compare_digest(upload.token_hash, _hash(token)) or _expired(upload):
            raise NotFound(f"no upload {upload_id}, or its URL expired")
        return upload


def _expired(upload: Upload) -> bool:
    return as_utc(upload.expires_at) <= utcnow()


@dataclass(frozen=True)
class ClaimedUpload:
    filename: str | None
    size: int  # as stored


def claim_upload(storage: Storage, key: uuid.UUID | None, upload_id: uuid.UUID, max_bytes: int) -> ClaimedUpload:
    """The caller's upload, its object completed in storage (a multipart upload from the parts S3
    holds, once: a second claim finds it whole); the row stays until its job is queued."""
    with session_scope() as session:
        upload = session.get(Upload, upload_id, with_for_update=True)
        if upload is None or upload.api_key_id != key or _expired(upload):
            raise NotFound(f"no upload {upload_id}, or it expired")
        source = service.source_key(upload_id)
        try:
            size = storage.finish_upload(source, upload.multipart_id)
        except ObjectMissing:
            raise Conflict(f"nothing was uploaded for {upload_id} yet", code="upload_incomplete") from None
        upload.multipart_id = None
        filename = upload.filename
    if size == 0:
        raise InvalidRequest("the uploaded file is empty", code="empty_file")
    if size > max_bytes:
        raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
    return ClaimedUpload(filename, size)


def forget_upload(upload_id: uuid.UUID) -> None:
    """Its job is queued and owns the object now."""
    with session_scope() as session:
        session.execute(delete(Upload).where(Upload.id == upload_id))
