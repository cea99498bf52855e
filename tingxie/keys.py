"""API keys: how a secret is made and how it is stored (only its hash is kept)."""

import hashlib
import secrets

PREFIX = "tx_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
