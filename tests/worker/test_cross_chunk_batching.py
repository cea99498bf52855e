"""Chunks of many jobs transcribed at once share engine calls, and each still gets exactly the segments it
gets when transcribed alone: forced and detected languages and different contexts mixed, through the
real worker steps, the process's batcher and a tiny random-weight Qwen3-ASR (whose output depends on its
input, so a result handed to the wrong chunk would show)."""

import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update

from tests.conftest import clear_caches
from tests.corpus import OSR, SPEECH
from tests.helpers import job_and_chunks, stored_job
from tingxie.db import session_scope
from tingxie.models import Chunk, Job
from worker import service
from worker.engines.registry import get_engine

MIXED = SPEECH / "zh-en" / "funasr_csharp_example_3.wav"
REQUESTS = [
    (OSR, "auto", None),
    (OSR, "en", None),
    (MIXED, "auto", "达摩院 inference"),
    (MIXED, "zh", "达摩院 inference"),
    (OSR, "auto", "a different context"),
]
ChunkId = tuple[uuid.UUID, int]


@pytest.fixture
def qwen_worker(idle_broker: redis.Redis, monkeypatch: pytest.MonkeyPatch, tiny_qwen3_asr: Path) -> Iterator[None]:
    for name, value in {
        "TINGXIE_ENGINE": "qwen3-asr",
        "TINGXIE_MODEL_PATH": str(tiny_qwen3_asr),
        "TINGXIE_DEVICE": "cpu",
        "TINGXIE_BATCH_SIZE": "16",
        "TINGXIE_BATCH_WAIT_MS": "300",
    }.items():
        monkeypatch.setenv(name, value)
    clear_caches()
    yield
    clear_caches()


def _record_calls(calls: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine()
    original = engine.transcribe

    def recording(audio: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(audio))
        return original(audio, *args, **kwargs)

    monkeypatch.setattr(engine, "transcribe", recording)


def _segments(chunks: Sequence[ChunkId]) -> dict[ChunkId, Any]:
    found = {}
    for job_id in {job_id for job_id, _ in chunks}:
        for chunk in job_and_chunks(job_id)[1]:
            found[(job_id, chunk.index)] = chunk.segments
    return found


def _forget_results(job_ids: Sequence[uuid.UUID]) -> None:
    with session_scope() as session:
        session.execute(update(Chunk).where(Chunk.job_id.in_(job_ids)).values(status="pending", segments=None))
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(chunks_done=0))


def test_chunks_batched_together_get_the_segments_they_get_alone(
    qwen_worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = [stored_job(path, language, context) for path, language, context in REQUESTS]
    for job_id in job_ids:
        service.prepare(job_id)
    chunks = [(job_id, chunk.index) for job_id in job_ids for chunk in job_and_chunks(job_id)[1]]
    most_windows = max(len(chunk.windows) for job_id in job_ids for chunk in job_and_chunks(job_id)[1])
    calls: list[int] = []
    _record_calls(calls, monkeypatch)

    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:  # as the gpu worker's thread pool would
        list(pool.map(lambda chunk: service.transcribe(*chunk), chunks))
    together = _segments(chunks)
    assert max(calls) > most_windows  # some calls carried windows of several chunks

    _forget_results(job_ids)
    for chunk in chunks:
        service.transcribe(*chunk)
    alone = _segments(chunks)
    assert together == alone
    assert all(together[chunk] is not None for chunk in chunks)
