"""Tiny random-weight Qwen3-ASR and Whisper checkpoints through the real worker path: model files on disk
-> load -> batched generate -> parsed language and text -> segments in Postgres. Random weights write
gibberish, so these tests check structure, languages and batching, not words."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import clear_caches
from tests.corpus import SPEECH
from tests.helpers import run_worker_steps, stored_job
from tingxie.transcript import from_rows
from worker.engines.registry import get_engine
from worker.merge import detected_languages, join_text

MIXED = SPEECH / "zh-en" / "funasr_csharp_example_3.wav"
LONG = SPEECH / "en" / "OSR_us_000_0034_8k.wav"


@pytest.fixture(params=["qwen3-asr", "whisper"])
def engine_worker(
    request: pytest.FixtureRequest,
    idle_broker: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    tiny_qwen3_asr: Path,
    tiny_whisper: Path,
) -> Iterator[str]:
    name = request.param
    monkeypatch.setenv("TINGXIE_ENGINE", name)
    monkeypatch.setenv("TINGXIE_MODEL_PATH", str(tiny_qwen3_asr if name == "qwen3-asr" else tiny_whisper))
    monkeypatch.setenv("TINGXIE_DEVICE", "cpu")
    monkeypatch.setenv("TINGXIE_BATCH_SIZE", "4")
    monkeypatch.setenv("TINGXIE_CHUNK_SECONDS", "60")
    clear_caches()
    yield name
    clear_caches()


def _count_generate_calls(calls: list[int]) -> None:
    model = get_engine().hf_model  # type: ignore[attr-defined]
    original = model.generate

    def counting(*args: Any, **kwargs: Any) -> Any:
        # Whisper is given audio features; Qwen3-ASR token ids with the audio already embedded.
        batch = kwargs.get("input_features", kwargs.get("input_ids", args[0] if args else None))
        calls.append(len(batch))
        return original(*args, **kwargs)

    model.generate = counting


def test_worker_path_writes_segments_with_languages(engine_worker: str) -> None:
    calls: list[int] = []
    _count_generate_calls(calls)
    job, chunks = run_worker_steps(stored_job(LONG))
    assert job.status == "completed", job.error_message
    windows = sum(len(chunk.windows) for chunk in chunks)
    assert windows > 4 and max(calls) == 4  # windows went through generate in batches of 4
    assert sum(calls) >= windows
    segments = from_rows(job.segments)
    for segment in segments:
        assert 0 <= segment.start < segment.end <= (job.duration_s or 0) + 0.01
        assert segment.language is None or isinstance(segment.language, str)
    assert job.text == join_text(segments)
    assert job.languages == detected_languages(segments)


def test_forced_language_tags_every_segment(engine_worker: str) -> None:
    job, _ = run_worker_steps(stored_job(MIXED, language="zh", context="达摩院 inference"))
    assert job.status == "completed", job.error_message
    assert {segment["language"] for segment in job.segments or []} <= {"zh"}
    assert job.languages in ([], ["zh"])
