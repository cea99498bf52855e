"""API keys: how a secret is made, how it is stored (only its hash is kept), and their management.

Each key also has a webhook signing secret (tingxie.webhooks), kept as it is since signing needs it,
shown when the key is made and whenever it is rotated."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tingxie.errors import NotFound
from tingxie.models import ApiKey, as_utc, new_webhook_secret, utcnow

PREFIX = "tx_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # `last_used_at` is written at most this often per key
ROTATION_OVERLAP = timedelta(hours=24)  # how long deliveries carry the old secret's signature too


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def create_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown once and never stored; `key.webhook_secret` signs its
    jobs' webhooks."""
    secret = new_secret()
    key = ApiKey(name=name, key_hash=hash_key(secret), webhook_secret=new_webhook_secret())
    session.add(key)
    session.flush()
    return key, secret


def list_keys(session: Session) -> list[KeyInfo]:
    keys = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
    return [KeyInfo(k.id, k.name, k.created_at, k.last_used_at, k.revoked_at) for k in keys]


def revoke_key(session: Session, key_id: uuid.UUID) -> None:
    """Refused from the next request on; its jobs stay (and are deleted with the key's data, not here)."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    key.revoked_at = key.revoked_at or utcnow()


@dataclass(frozen=True)
class RotatedSecret:
    secret: str
    previous_expires_at: datetime  # until then deliveries are signed with the previous secret too


def rotate_webhook_secret(session: Session, key_id: uuid.UUID, overlap: timedelta = ROTATION_OVERLAP) -> RotatedSecret:
    """A new webhook secret for the key; the one it replaces stays valid for `overlap` (0 ends it now)."""
    key = session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    expires = utcnow() + overlap
    key.previous_webhook_secret, key.previous_secret_expires_at = key.webhook_secret, expires
    key.webhook_secret = new_webhook_secret()
    return RotatedSecret(key.webhook_secret, expires)


def find_active(session: Session, secret: str) -> ApiKey | None:
    """The unrevoked key of this secret, its `last_used_at` brought up to date."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None)))
    if key is not None and _stale(key.last_used_at):
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=utcnow()))
    return key


def _stale(last_used: datetime | None) -> bool:
    if last_used is None:
        return True
    return utcnow() - as_utc(last_used) >= LAST_USED_RESOLUTION
