"""The reconciler queues again what a dead worker or a lost message left: work whose lease ran out, a
finalize that never ran, a message the broker refused, everything after the broker lost its messages, and
(last resort) any job with no progress for hours. Work under a live lease is left alone.

These run the worker's steps in this process against a broker no worker consumes, so what was queued
can be read back. Other tests share the database, so each check looks at this test's own jobs only."""

import uuid
from datetime import timedelta

import redis
from sqlalchemy import select, update

from tests.corpus import OSR
from tests.helpers import clear_queues, job_and_chunks, queued, stored_job, task_of
from tingxie.db import session_scope
from tingxie.models import Chunk, Job, utcnow
from tingxie.queue import BROKER_MARK
from tingxie.settings import get_settings
from worker import service
from worker.leases import get_lease_keeper
from worker.reconcile import reconcile


def _age(job_id: uuid.UUID, seconds: float) -> None:
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow() - timedelta(seconds=seconds)))


def _lease(job_id: uuid.UUID, index: int | None, expires_in: float) -> None:
    """A lease held by a worker that is gone (expires_in < 0) or still renewing (expires_in > 0)."""
    until = utcnow() + timedelta(seconds=expires_in)
    table = Job if index is None else Chunk
    row = [Job.id == job_id] if index is None else [Chunk.job_id == job_id, Chunk.index == index]
    with session_scope() as session:
        session.execute(update(table).where(*row).values(leased_by="gone-host/1/x", lease_expires_at=until))


def _mentions(messages: list[bytes], job_id: uuid.UUID) -> list[tuple[str, list[str]]]:
    """The (task, arguments) of each queued message for this job."""
    tasks = [task_of(message) for message in messages]
    return [(task, args) for task, args in tasks if args[0] == str(job_id)]


def _prepared(idle_broker: redis.Redis, leave: int) -> tuple[uuid.UUID, list[Chunk]]:
    """A prepared job with every chunk but the last `leave` transcribed, and the queues emptied."""
    job_id = stored_job(OSR)
    service.prepare(job_id)
    chunks = job_and_chunks(job_id)[1]
    assert len(chunks) >= leave >= 0
    for chunk in chunks[: len(chunks) - leave]:
        service.transcribe(job_id, chunk.index)
    clear_queues(idle_broker, "cpu", "gpu")
    return job_id, chunks


def test_chunks_whose_lease_ran_out_are_queued_again_and_live_ones_left(idle_broker: redis.Redis) -> None:
    job_id, chunks = _prepared(idle_broker, leave=2)
    dead, alive = chunks[-2].index, chunks[-1].index
    _lease(job_id, dead, expires_in=-1)
    _lease(job_id, alive, expires_in=60)

    assert reconcile().chunks >= 1
    mine = _mentions(queued(idle_broker, "gpu"), job_id)
    assert mine == [("tingxie.transcribe", [str(job_id), str(dead)])]
    with session_scope() as session:
        cleared = session.get(Chunk, (job_id, dead))
        assert cleared is not None and cleared.leased_by is None  # queued once, not on every run
    clear_queues(idle_broker, "gpu")
    reconcile()
    assert not _mentions(queued(idle_broker, "gpu"), job_id)


def test_a_chunk_under_a_live_lease_is_turned_away_until_it_runs_out(idle_broker: redis.Redis) -> None:
    job_id, chunks = _prepared(idle_broker, leave=1)
    index = chunks[-1].index
    _lease(job_id, index, expires_in=60)
    service.transcribe(job_id, index)  # a duplicate message while another worker runs the chunk
    assert job_and_chunks(job_id)[1][-1].status == "pending"
    _lease(job_id, index, expires_in=-1)
    service.transcribe(job_id, index)
    done = job_and_chunks(job_id)[1][-1]
    assert done.status == "done" and done.leased_by is None


def test_leases_are_renewed_while_held() -> None:
    job_id = stored_job(OSR)
    keeper = get_lease_keeper()
    with session_scope() as session:
        lease = keeper.take(session, job_id)
    assert lease is not None
    with session_scope() as session:
        assert keeper.take(session, job_id) is None  # held: a second taker is turned away
    _lease_until = select(Job.lease_expires_at).where(Job.id == job_id)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow()))
    assert keeper.renew() >= 1
    with session_scope() as session:
        expires = session.scalar(_lease_until)
        assert expires is not None and expires.timestamp() > utcnow().timestamp() + 60
    keeper.release(lease)
    with session_scope() as session:
        assert session.scalar(_lease_until) is None


def test_a_prepare_whose_lease_ran_out_and_a_lost_finalize_are_queued_again(idle_broker: redis.Redis) -> None:
    crashed_prepare = stored_job(OSR)
    _lease(crashed_prepare, None, expires_in=-1)
    unfinalized, _ = _prepared(idle_broker, leave=0)  # every chunk done, finalize's message lost
    _age(unfinalized, get_settings().lease_seconds + 1)

    result = reconcile()
    assert result.prepares >= 1 and result.finalizes >= 1
    cpu = queued(idle_broker, "cpu")
    assert _mentions(cpu, crashed_prepare) == [("tingxie.prepare", [str(crashed_prepare)])]
    assert _mentions(cpu, unfinalized) == [("tingxie.finalize", [str(unfinalized)])]


def test_a_message_the_broker_refused_is_sent_again(idle_broker: redis.Redis) -> None:
    job_id, _ = _prepared(idle_broker, leave=2)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(resend_needed=True))
    assert reconcile().resends >= 1
    assert len(_mentions(queued(idle_broker, "gpu"), job_id)) == 2
    assert job_and_chunks(job_id)[0].resend_needed is False


def test_after_the_broker_lost_its_messages_every_unfinished_job_is_resumed(idle_broker: redis.Redis) -> None:
    waiting = stored_job(OSR)  # its prepare message was lost
    half_done, chunks = _prepared(idle_broker, leave=2)
    running = chunks[-1].index
    _lease(half_done, running, expires_in=60)  # a worker is on this one: left alone
    assert reconcile().after_broker_loss == 0  # the mark is there: nothing was lost
    idle_broker.delete(BROKER_MARK)  # what a FLUSHALL or a restart without persistence leaves

    assert reconcile().after_broker_loss >= 2
    assert len(_mentions(queued(idle_broker, "cpu"), waiting)) == 1
    resent = _mentions(queued(idle_broker, "gpu"), half_done)
    assert resent == [("tingxie.transcribe", [str(half_done), str(chunks[-2].index)])]  # not the running one
    assert reconcile().after_broker_loss == 0  # seen once


def test_stalled_jobs_get_their_next_step_again(idle_broker: redis.Redis) -> None:
    stale = get_settings().reconcile_after_seconds + 60
    lost_prepare = stored_job(OSR)
    lost_chunk, _ = _prepared(idle_broker, leave=1)
    fresh = stored_job(OSR)
    for job_id in (lost_prepare, lost_chunk):
        _age(job_id, stale)

    assert reconcile().stalled >= 2
    cpu, gpu = queued(idle_broker, "cpu"), queued(idle_broker, "gpu")
    assert len(_mentions(cpu, lost_prepare)) == 1  # prepare again
    assert len(_mentions(gpu, lost_chunk)) == 1  # only the unfinished chunk
    assert not _mentions(cpu + gpu, fresh)
    assert reconcile().stalled == 0  # touched jobs wait another full interval
