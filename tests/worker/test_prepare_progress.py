"""While prepare decodes a recording, the job shows how far it has got: the declared duration at once,
then the seconds decoded, until the plan replaces both with the decoded length and the chunk count.

The step runs in this process against the real Postgres and S3 server; every progress write is read
back from the database as it happens."""

import uuid
from pathlib import Path

import pytest
import redis

from tests.audio_fixtures import transcode
from tests.corpus import OSR
from tests.helpers import job_and_chunks, queued, stored_job
from tingxie.storage import get_storage
from worker import service


@pytest.fixture(scope="module")
def osr_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35.5 s of speech in an MP3, whose header declares its duration."""
    return transcode(OSR, tmp_path_factory.mktemp("progress") / "osr.mp3", "mp3", "libmp3lame", 44_100, "mono", "s16p")


def test_prepare_records_its_progress(idle_broker: redis.Redis, osr_mp3: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "PROGRESS_INTERVAL_S", 0.0)  # every decoded block, to see them all
    seen: list[tuple[float | None, float | None, int | None]] = []
    record = service._record_prepared

    def record_and_read_back(job_id: uuid.UUID, prepared_s: float, declared_s: float | None = None) -> None:
        record(job_id, prepared_s, declared_s)
        job, _ = job_and_chunks(job_id)
        seen.append((job.prepared_s, job.duration_s, job.chunks_total))

    monkeypatch.setattr(service, "_record_prepared", record_and_read_back)
    job_id = stored_job(osr_mp3)
    service.prepare(job_id)

    first_prepared, declared, _ = seen[0]
    assert first_prepared == 0.0
    assert declared == pytest.approx(35.55, abs=0.05)
    prepared = [value for value, _, _ in seen]
    assert prepared == sorted(prepared) and len(set(prepared)) > 10
    assert all(total is None for _, _, total in seen)  # chunks are counted only once the plan is whole
    job, chunks = job_and_chunks(job_id)
    assert job.chunks_total == len(chunks) >= 1
    assert job.prepared_s == job.duration_s == pytest.approx(declared, abs=0.1)
    assert prepared[-1] <= job.prepared_s


def test_progress_is_not_written_after_the_plan(idle_broker: redis.Redis, osr_mp3: Path) -> None:
    """A late progress write from a redelivered prepare cannot move a planned job backwards."""
    job_id = stored_job(osr_mp3)
    service.prepare(job_id)
    service._record_prepared(job_id, 1.0, 99.0)
    job, _ = job_and_chunks(job_id)
    assert job.prepared_s == job.duration_s == pytest.approx(35.55, abs=0.05)


def test_chunks_are_queued_as_they_are_cut(
    idle_broker: redis.Redis, osr_mp3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk's transcription is queued (and counted in `chunks_cut`) before the next chunk is even
    stored, so the GPU starts on the first minutes while prepare is still decoding the rest."""
    storage = get_storage()
    store = storage.put_bytes
    queued_before: list[tuple[int, int | None]] = []  # at each chunk store: (messages queued, chunks_cut)

    def store_and_look(key: str, data: bytes) -> None:
        if "/chunks/" in key:
            job, _ = job_and_chunks(job_id)
            queued_before.append((len(queued(idle_broker, "gpu")), job.chunks_cut))
        store(key, data)

    monkeypatch.setattr(storage, "put_bytes", store_and_look)
    job_id = stored_job(osr_mp3)
    service.prepare(job_id)
    job, chunks = job_and_chunks(job_id)
    assert len(chunks) >= 3
    assert queued_before == [(index, index) for index in range(len(chunks))]
    assert job.chunks_cut == job.chunks_total == len(chunks) == len(queued(idle_broker, "gpu"))
