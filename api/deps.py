"""Request dependencies, as `Annotated` aliases so that a handler's signature reads as documentation."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header
from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.exposure import check_open_mode_allowed, current_exposure
from api.key_cache import key_cache
from tingxie.db import get_sessionmaker, session_scope
from tingxie.errors import Unauthorized
from tingxie.keys import PREFIX as KEY_PREFIX
from tingxie.keys import find_active, hash_key
from tingxie.models import ApiKey
from tingxie.settings import Settings, get_settings
from tingxie.storage import Storage, get_storage


def _session() -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back if it raises."""
    with get_sessionmaker()() as session, session.begin():
        yield session


MISSING_KEY = "missing 'Authorization: Bearer <key>' header"


SessionDep = Annotated[Session, Depends(_session, scope="function")]


async def _settings() -> Settings:
    # Async, though it does no I/O: FastAPI runs a sync dependency on a worker thread, a hop per request.
    return get_settings()


async def _storage() -> Storage:
    return get_storage()  # built once per process (a boto3 client: no connection yet)


SettingsDep = Annotated[Settings, Depends(_settings)]
StorageDep = Annotated[Storage, Depends(_storage)]


def _auth_required(session: Session, settings: Settings) -> bool:
    known = _auth_required_as_far_as_known(settings)
    if known is not None:
        return known
    generation = key_cache.generation()
    exist = bool(session.scalar(select(exists().where(ApiKey.revoked_at.is_(None)))))
    key_cache.remember_keys_exist(generation, exist)
    return exist


def _auth_required_as_far_as_known(settings: Settings) -> bool | None:
    """Keys are required unless switched off, or unless this process listens on loopback addresses only
    (the addresses it really listens on, not the TINGXIE_HOST setting) and no unrevoked key exists;
    None when that last question needs the database."""
    if settings.auth_required is True:
        return True
    check_open_mode_allowed(settings.auth_required)
    if settings.auth_required is False:
        return False
    if current_exposure().public:
        return True
    return key_cache.keys_exist()


@dataclass(frozen=True)
class Caller:
    key_id: uuid.UUID | None  # None: the single local user of an unauthenticated loopback install


def cached_caller(settings: Settings, authorization: str | None) -> Caller | None:
    """`resolve_key`'s answer where the key cache has it without the database, else None; raises the
    same Unauthorized where no lookup could change the answer."""
    if authorization is None:
        required = _auth_required_as_far_as_known(settings)
        if required is None:
            return None
        if required:
            raise Unauthorized(MISSING_KEY)
        return Caller(None)
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    key_id = key_cache.key(hash_key(secret.strip()))
    if key_id is not None:
        return Caller(key_id)
    # A token that is no key is the local user where keys are not required. Only a lookup can tell a key
    # from a token that is none, so the cache answers for it only where no key exists at all, and never
    # for a token shaped like one of ours: a key made a moment ago, whose change notification is still on
    # its way, must not be taken for the local user.
    if secret.strip().startswith(KEY_PREFIX):
        return None
    no_keys = key_cache.keys_exist() is False and _auth_required_as_far_as_known(settings) is False
    return Caller(None) if no_keys else None


async def _current_key(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> uuid.UUID | None:
    """The caller's key id; None is the single local user of an unauthenticated loopback install.
    From the key cache where it knows, else looked up on a worker thread in a short transaction of its
    own, so that none is held open while an upload streams."""
    caller = cached_caller(settings, authorization)
    if caller is not None:
        return caller.key_id
    return await run_in_threadpool(_looked_up_key, settings, authorization)


def _looked_up_key(settings: Settings, authorization: str | None) -> uuid.UUID | None:
    with session_scope() as session:
        return resolve_key(session, settings, authorization)


def resolve_key(session: Session, settings: Settings, authorization: str | None) -> uuid.UUID | None:
    """An active key's id; else, where keys are not required, None: the local user. A Bearer token that
    matches no key is the local user too, since OpenAI's clients cannot send a request without one."""
    if authorization is None:
        if _auth_required(session, settings):
            raise Unauthorized(MISSING_KEY)
        return None
    scheme, _, secret = authorization.partition(" ")
    key_id = _active_key_id(session, secret.strip()) if scheme.lower() == "bearer" else None
    if key_id is not None:
        return key_id
    if scheme.lower() == "bearer" and not _auth_required(session, settings):
        return None
    raise Unauthorized("unknown or revoked API key")


def _active_key_id(session: Session, secret: str) -> uuid.UUID | None:
    key_hash = hash_key(secret)
    cached = key_cache.key(key_hash)
    if cached is not None:
        return cached
    generation = key_cache.generation()
    key = find_active(session, secret)
    if key is None:
        return None
    key_cache.remember_key(generation, key_hash, key.id)
    return key.id


CurrentKey = Annotated[uuid.UUID | None, Depends(_current_key)]

# For a route that reads the header itself (the status poll): the parameter CurrentKey documents.
AUTHORIZATION_PARAMETER: dict[str, Any] = {
    "parameters": [{"name": "authorization", "in": "header", "required": False, "schema": {"type": "string"}}]
}
