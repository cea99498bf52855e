"""Request dependencies, as `Annotated` aliases so that a handler's signature reads as documentation."""

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from api.exposure import check_open_mode_allowed, current_exposure
from tingxie.db import get_sessionmaker, session_scope
from tingxie.errors import Unauthorized
from tingxie.keys import find_active
from tingxie.models import ApiKey
from tingxie.settings import Settings, get_settings
from tingxie.storage import Storage, get_storage


def _session() -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back if it raises."""
    with get_sessionmaker()() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]


def _auth_required(session: Session, settings: Settings) -> bool:
    """Keys are required unless switched off, or unless this process listens on loopback addresses only
    (the addresses it really listens on, not the TINGXIE_HOST setting) and no unrevoked key exists."""
    if settings.auth_required is True:
        return True
    check_open_mode_allowed(settings.auth_required)
    if settings.auth_required is False:
        return False
    if current_exposure().public:
        return True
    return bool(session.scalar(select(exists().where(ApiKey.revoked_at.is_(None)))))


def _current_key(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> uuid.UUID | None:
    """The caller's key id; None is the single local user of an unauthenticated loopback install.
    Uses its own short transaction, so none is held open while an upload streams."""
    with session_scope() as session:
        return resolve_key(session, settings, authorization)


def resolve_key(session: Session, settings: Settings, authorization: str | None) -> uuid.UUID | None:
    if authorization is None:
        if _auth_required(session, settings):
            raise Unauthorized("missing 'Authorization: Bearer <key>' header")
        return None
    scheme, _, secret = authorization.partition(" ")
    key = find_active(session, secret.strip())
    if scheme.lower() != "bearer" or key is None:
        raise Unauthorized("unknown or revoked API key")
    return key.id


CurrentKey = Annotated[uuid.UUID | None, Depends(_current_key)]

AuthorizationHeader = Annotated[str | None, Header(alias="Authorization")]
