"""Which callers the key cache answers for without the database."""

import socket
from collections.abc import Iterator

import pytest

from api import exposure
from api.deps import Caller, cached_caller
from api.key_cache import key_cache
from tingxie.keys import new_secret
from tingxie.settings import Settings


@pytest.fixture
def no_keys_known(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process listening on loopback only, and its cache holding the answer that no key exists."""
    monkeypatch.setattr(exposure, "_known", None)  # whatever an earlier test saw this process listen on
    with socket.create_server(("127.0.0.1", 0)):
        key_cache.invalidate(live=True)
        key_cache.remember_keys_exist(key_cache.generation(), False)
        yield
        key_cache.invalidate(live=False)


def test_a_token_shaped_like_our_keys_is_always_looked_up(no_keys_known: None) -> None:
    """A key made a moment ago (its notification still on the way) must not pass for the local user."""
    open_mode = Settings(auth_required=False)
    assert cached_caller(open_mode, "Bearer sk-anything-at-all") == Caller(None)  # OpenAI's clients' tokens
    assert cached_caller(open_mode, f"Bearer {new_secret()}") is None  # to the database
