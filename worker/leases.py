"""Leases: the database's record of which worker is working on what, and until when.

A step takes the lease of what it works on (prepare: the job's; transcribe: the chunk's) in the same
transaction that reads the work, and only one nobody holds or one that has expired. While the work runs,
this process's keeper renews every lease it holds each TINGXIE_LEASE_RENEW_SECONDS; the step's end clears
it. A worker that dies stops renewing, so its leases run out after TINGXIE_LEASE_SECONDS and the
reconciler queues that work again (worker/reconcile.py). Results are still recorded once only (a chunk's
`status` guard), so a lease lost to a stalled worker costs a second run of the work, never a second copy
of its results."""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tingxie.db import session_scope
from tingxie.models import Chunk, Job, utcnow
from tingxie.settings import get_settings

log = logging.getLogger(__name__)

# Lease columns are read only in SQL, so loaded objects need no update (and SQLite's naive datetimes
# would not compare with aware ones in Python).
UNSYNCHRONIZED = {"synchronize_session": False}


@dataclass(frozen=True)
class Lease:
    holder: str  # this process and this one acquisition: a second task of the same process is turned away
    job_id: uuid.UUID
    index: int | None = None  # the chunk's; None is the job's own lease (prepare)

    def row(self) -> tuple[type[Job] | type[Chunk], list[ColumnElement[bool]]]:
        """The leased table and the condition naming the leased row."""
        if self.index is None:
            return Job, [Job.id == self.job_id]
        return Chunk, [Chunk.job_id == self.job_id, Chunk.index == self.index]


def _holder() -> str:
    return f"{socket.gethostname()[:80]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


class LeaseKeeper:
    """Takes, renews and clears this process's leases; renewal runs in a daemon thread of its own."""

    def __init__(self, lease_seconds: float, renew_seconds: float) -> None:
        self._ttl = timedelta(seconds=lease_seconds)
        self._renew_seconds = renew_seconds
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, session: Session, job_id: uuid.UUID, index: int | None = None) -> Lease | None:
        """The lease on the job (index None) or on its chunk, or None while another worker holds it."""
        lease = Lease(_holder(), job_id, index)
        table, row = lease.row()
        now = utcnow()
        free = or_(table.leased_by.is_(None), table.lease_expires_at < now)
        taken = session.execute(
            update(table).where(*row, free).values(leased_by=lease.holder, lease_expires_at=now + self._ttl),
            execution_options=UNSYNCHRONIZED,
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        with self._lock:
            self._held.add(lease)
            self._start_renewing()
        return lease

    def clear(self, session: Session, lease: Lease) -> None:
        """End the lease within `session`, the transaction that records the work's result."""
        self._forget(lease)
        table, row = lease.row()
        session.execute(
            update(table).where(*row, table.leased_by == lease.holder).values(leased_by=None, lease_expires_at=None),
            execution_options=UNSYNCHRONIZED,
        )

    def release(self, lease: Lease) -> None:
        """Hand the work back now (it failed, or the worker is stopping), in a transaction of its own.
        Should the database be unreachable, the lease simply runs out."""
        self._forget(lease)
        try:
            with session_scope() as session:
                self.clear(session, lease)
        except SQLAlchemyError as exc:
            log.warning("could not release the lease on %s (it expires by itself): %s", lease, exc)

    def release_all(self) -> None:
        with self._lock:
            held = list(self._held)
        for lease in held:
            self.release(lease)

    @contextmanager
    def holding(self, lease: Lease) -> Iterator[None]:
        """Release the lease should the work raise; on success the work's own commit has cleared it."""
        try:
            yield
        except BaseException:
            self.release(lease)
            raise

    def renew(self) -> int:
        """Extend every lease this process holds; returns how many rows were extended."""
        with self._lock:
            holders = [lease.holder for lease in self._held]
        if not holders:
            return 0
        until = utcnow() + self._ttl
        renewed = 0
        with session_scope() as session:
            for table in (Job, Chunk):
                result = session.execute(
                    update(table).where(table.leased_by.in_(holders)).values(lease_expires_at=until),
                    execution_options=UNSYNCHRONIZED,
                )
                renewed += result.rowcount  # type: ignore[attr-defined]
        return renewed

    def stop(self) -> None:
        self._stopped.set()

    def _forget(self, lease: Lease) -> None:
        with self._lock:
            self._held.discard(lease)

    def _start_renewing(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew_forever, name="lease-renewal", daemon=True)
            self._thread.start()

    def _renew_forever(self) -> None:
        while not self._stopped.wait(self._renew_seconds):
            try:
                self.renew()
            except Exception:  # the database may be down for a while; keep trying, the lease may survive it
                log.exception("renewing leases failed")


_keeper: LeaseKeeper | None = None
_keeper_lock = threading.Lock()


def get_lease_keeper() -> LeaseKeeper:
    """The process's keeper, made on first use from the settings."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            settings = get_settings()
            _keeper = LeaseKeeper(settings.lease_seconds, settings.lease_renew_seconds)
        return _keeper


def reset_lease_keeper() -> None:
    """Stop renewing and forget the keeper (settings changed under a test)."""
    global _keeper
    with _keeper_lock:
        if _keeper is not None:
            _keeper.stop()
        _keeper = None
