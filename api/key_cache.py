"""API key lookups remembered by the API process, forgotten the moment any key changes.

Every request resolves its key, and a status poll is otherwise one short query: looking the key up each
time doubled the database work of the hottest route. The answers (a secret's key id; whether any
unrevoked key exists, for the keyless loopback mode) are kept for at most `ENTRY_SECONDS`, and only while
a `LISTEN` connection is open to Postgres: a trigger on `api_keys` (migration 0010) notifies on every
insert, delete and change of a hash or revocation, from any process or any SQL, and the whole cache is
dropped. A revoked key is therefore refused from the next request on, as without the cache. Without the
listener (SQLite, or Postgres unreachable) nothing is cached.

A lookup that began before a notification must not store its answer after it: each change bumps a
generation, and an answer is kept only if the generation is still the one its lookup started under."""

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
from sqlalchemy import make_url

from tingxie.keys import LAST_USED_RESOLUTION

log = logging.getLogger(__name__)

CHANNEL = "tingxie_keys"
# As long as the resolution of `last_used_at`: a key's next lookup after that writes it again.
ENTRY_SECONDS = LAST_USED_RESOLUTION.total_seconds()
HEARTBEAT_SECONDS = 5.0  # how soon a listener whose server went away notices, and stops the cache
RECONNECT_SECONDS = 1.0


@dataclass(frozen=True)
class _Entry:
    key_id: uuid.UUID
    expires: float


class KeyCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._keys_exist: tuple[bool, float] | None = None
        self._generation = 0
        self._live = False

    @property
    def live(self) -> bool:
        """Whether answers are kept: a listener is connected to hear of changes."""
        return self._live

    def generation(self) -> int:
        """Pass to `remember_*` with the answer of a lookup started now."""
        return self._generation

    def key(self, key_hash: str) -> uuid.UUID | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry.key_id

    def keys_exist(self) -> bool | None:
        known = self._keys_exist
        if known is None or known[1] < time.monotonic():
            return None
        return known[0]

    def remember_key(self, generation: int, key_hash: str, key_id: uuid.UUID) -> None:
        """Only keys that exist are kept: secrets that match none (anyone can send those) are not."""
        with self._lock:
            if self._live and generation == self._generation:
                self._entries[key_hash] = _Entry(key_id, time.monotonic() + ENTRY_SECONDS)

    def remember_keys_exist(self, generation: int, exist: bool) -> None:
        with self._lock:
            if self._live and generation == self._generation:
                self._keys_exist = (exist, time.monotonic() + ENTRY_SECONDS)

    def invalidate(self, *, live: bool) -> None:
        """Forget everything; `live` says whether changes will be heard of from now on."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._keys_exist = None
            self._live = live


key_cache = KeyCache()


class KeyChangeListener:
    """A daemon thread holding `LISTEN tingxie_keys` on its own connection, reconnecting when it drops."""

    def __init__(self, database_url: str, cache: KeyCache) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._cache = cache
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-change-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._cache.invalidate(live=False)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                log.warning("key change listener lost its connection (%s); key lookups are not cached", error)
            self._cache.invalidate(live=False)
            self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            # Anything looked up before LISTEN took effect may already be stale.
            self._cache.invalidate(live=True)
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=HEARTBEAT_SECONDS):
                    self._cache.invalidate(live=True)
                conn.execute("SELECT 1")
