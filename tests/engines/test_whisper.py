"""WhisperEngine against a tiny random-weight checkpoint: structure and determinism, not words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES

from tingxie.languages import from_whisper_code
from worker.engines.base import SAMPLE_RATE, WINDOW_SAMPLES, Transcription
from worker.engines.torch_support import TokenBudget
from worker.engines.whisper import WhisperEngine

BUDGET = TokenBudget(per_second=2.0, margin=4, cap=40)


def make_engine(path: Path, batch_size: int = 4) -> WhisperEngine:
    return WhisperEngine(path, batch_size=batch_size, budget=BUDGET)


@pytest.fixture(scope="module")
def engine(tiny_whisper: Path) -> WhisperEngine:
    return make_engine(tiny_whisper)


@pytest.fixture(scope="module")
def one_by_one(engine: WhisperEngine, clips: list[np.ndarray]) -> list[Transcription]:
    return [engine.transcribe([clip])[0] for clip in clips]


def record_generate(engine: WhisperEngine, calls: list[dict[str, Any]]) -> None:
    original = engine.hf_model.generate

    def generate(input_features: torch.Tensor, **kwargs: Any) -> Any:
        calls.append({"input_features": input_features, **kwargs})
        return original(input_features, **kwargs)

    engine.hf_model.generate = generate


def test_loads_checkpoint_directory(engine: WhisperEngine, tiny_whisper: Path) -> None:
    assert (engine.name, engine.model, engine.device) == ("whisper", str(tiny_whisper), "cpu")
    assert engine.multilingual
    assert engine.hf_model.generation_config.lang_to_id["<|en|>"] > 0


def test_one_transcription_per_item(engine: WhisperEngine, clips: list[np.ndarray]) -> None:
    results = engine.transcribe(clips)

    assert len(results) == len(clips)
    for clip, result in zip(clips, results, strict=True):
        if result.text:
            (segment,) = result.segments
            assert (segment.start, segment.end) == (0.0, len(clip) / SAMPLE_RATE)
        else:
            assert result.segments == ()


def test_detected_language_is_an_api_code(one_by_one: list[Transcription]) -> None:
    api_codes = {from_whisper_code(code) for code in WHISPER_LANGUAGES}
    assert all(result.language in api_codes for result in one_by_one)


def test_batched_output_equals_one_by_one(
    engine: WhisperEngine, clips: list[np.ndarray], one_by_one: list[Transcription]
) -> None:
    assert engine.transcribe(clips) == one_by_one


def test_forced_language_is_reported(engine: WhisperEngine, clips: list[np.ndarray]) -> None:
    assert {result.language for result in engine.transcribe(clips[:2], language="fil")} == {"fil"}


def test_forced_language_and_context_reach_generate(tiny_whisper: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_whisper)
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips[:2], language="fil", context="Maynila")

    (call,) = calls
    assert (call["language"], call["task"]) == (["tl", "tl"], "transcribe")
    prompt = engine.processor.tokenizer.decode(call["prompt_ids"])
    assert prompt == "<|startofprev|> Maynila"


def test_generation_is_greedy_and_bounded(tiny_whisper: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_whisper, batch_size=len(clips))
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips)

    (call,) = calls
    assert (call["do_sample"], call["num_beams"]) == (False, 1)
    assert call["max_new_tokens"] == BUDGET.for_samples(WINDOW_SAMPLES)


def test_long_context_is_trimmed_to_fit(tiny_whisper: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_whisper)
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips[:1], context="hello world " * 400)

    (call,) = calls
    assert len(call["prompt_ids"]) == engine.hf_model.config.max_target_positions // 2 - 1


def test_out_of_memory_halves_the_batch(
    tiny_whisper: Path, clips: list[np.ndarray], one_by_one: list[Transcription]
) -> None:
    """Simulated: there is no GPU here, so generate raises CUDA OOM for batches over 2."""
    engine = make_engine(tiny_whisper, batch_size=4)
    generate = engine.hf_model.generate

    def generate_or_fail(input_features: torch.Tensor, **kwargs: Any) -> Any:
        if len(input_features) > 2:
            raise torch.cuda.OutOfMemoryError("simulated: CUDA out of memory")
        return generate(input_features, **kwargs)

    engine.hf_model.generate = generate_or_fail

    assert engine.transcribe(clips) == one_by_one
    assert engine.batch_size == 2


def test_rejects_items_longer_than_a_window(engine: WhisperEngine) -> None:
    with pytest.raises(ValueError, match="over 30 s"):
        engine.transcribe([np.zeros(WINDOW_SAMPLES + 1, dtype=np.float32)])
