"""Database engine and sessions. One transaction per request or task: `session_scope` commits on
success and rolls back on error; services only flush. Work registered with `after_commit` runs once the
transaction is durable and is dropped on rollback, so a task is never enqueued for a row that does not
exist."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from tingxie.settings import get_settings

_PENDING = "tingxie.after_commit"


_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    """One engine (and pool) per URL per process."""
    url = url or get_settings().resolved_database_url
    if url not in _engines:
        _engines[url] = _sqlite_engine(url) if url.startswith("sqlite") else _server_engine(url)
    return _engines[url]


CONNECT_TIMEOUT_S = 5  # a database that does not answer fails a request (503) instead of hanging it
# Kept open: as many as the API's thread pool runs requests at once under load (anyio's 40), so a burst
# reuses connections instead of opening (and closing) a Postgres session each; SQLAlchemy's default of
# 5 + 10 overflow opened about 430 new sessions per 1,000 submits.
POOL_SIZE = 40
POOL_OVERFLOW = 20
# A connection idle longer than this is pinged before use, so one the server closed meanwhile (a restart,
# an idle timeout) is replaced instead of failing a request. Pinging every checkout (pool_pre_ping) cost a
# round trip per status poll; a connection in steady use is known to be alive, and should the server go
# away under it, the failed query marks the whole pool stale (SQLAlchemy's disconnect handling).
IDLE_BEFORE_PING_S = 2.0
_IDLE_SINCE = "tingxie.idle_since"


def _server_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", lambda dbapi_conn, record, _proxy: _ping_if_idle(engine, dbapi_conn, record))
    return engine


def _note_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(engine: Engine, dbapi_conn: Any, record: Any) -> None:
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_S:
        return
    try:
        engine.dialect.do_ping(dbapi_conn)
    except Exception as error:
        # The pool discards this connection and checks out (or opens) another.
        raise exc.DisconnectionError(str(error)) from error


def dispose_engines() -> None:
    """Close every pooled connection (process shutdown, or settings changed under a test)."""
    get_sessionmaker.cache_clear()
    _read_sessionmaker.cache_clear()
    while _engines:
        _engines.popitem()[1].dispose()


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets the API read while a worker writes; the API and workers are separate processes.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


@lru_cache
def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` after the session's transaction commits; forget it if it rolls back."""
    session.info.setdefault(_PENDING, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    for action in session.info.pop(_PENDING, []):
        action()


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


@contextmanager
def session_scope() -> Iterator[Session]:
    with get_sessionmaker()() as session, session.begin():
        yield session


@lru_cache
def _read_sessionmaker() -> sessionmaker[Session]:
    engine = get_engine()
    return sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@contextmanager
def read_scope() -> Iterator[Session]:
    """A session for a request that only reads, each statement on its own: no BEGIN and COMMIT around
    them, which are two of a status poll's round trips. Anything it writes is committed at once; use it
    where the writes, if any, stand alone."""
    with _read_sessionmaker()() as session:
        yield session
