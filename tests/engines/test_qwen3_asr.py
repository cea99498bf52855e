"""Qwen3AsrEngine against a tiny random-weight checkpoint: structure and determinism, not words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from transformers import Qwen3ASRForConditionalGeneration

from tingxie.languages import SUPPORTED_CODES
from worker.engines.base import SAMPLE_RATE, WINDOW_SAMPLES, Transcription
from worker.engines.qwen3_asr import WINDOWED_ATTENTION, Qwen3AsrEngine, _windowed_attention
from worker.engines.torch_support import TokenBudget

BUDGET = TokenBudget(per_second=2.0, margin=4, cap=40)


def make_engine(path: Path, batch_size: int = 4) -> Qwen3AsrEngine:
    return Qwen3AsrEngine(path, batch_size=batch_size, budget=BUDGET)


@pytest.fixture(scope="module")
def engine(tiny_qwen3_asr: Path) -> Qwen3AsrEngine:
    return make_engine(tiny_qwen3_asr)


@pytest.fixture(scope="module")
def one_by_one(engine: Qwen3AsrEngine, clips: list[np.ndarray]) -> list[Transcription]:
    return [engine.transcribe([clip])[0] for clip in clips]


def record_generate(engine: Qwen3AsrEngine, calls: list[dict[str, Any]]) -> None:
    original = engine.hf_model.generate

    def generate(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(**kwargs)

    engine.hf_model.generate = generate


def fail_batches_over(limit: int, generate: Callable[..., Any]) -> Callable[..., Any]:
    def generate_or_fail(**kwargs: Any) -> Any:
        if kwargs["input_ids"].shape[0] > limit:
            raise torch.cuda.OutOfMemoryError("simulated: CUDA out of memory")
        return generate(**kwargs)

    return generate_or_fail


def test_loads_checkpoint_directory(engine: Qwen3AsrEngine, tiny_qwen3_asr: Path) -> None:
    assert (engine.name, engine.model, engine.device) == ("qwen3-asr", str(tiny_qwen3_asr), "cpu")
    assert engine.hf_model.dtype == torch.float32
    assert not engine.hf_model.training


def test_one_transcription_per_item(engine: Qwen3AsrEngine, clips: list[np.ndarray]) -> None:
    results = engine.transcribe(clips)

    assert len(results) == len(clips)
    for clip, result in zip(clips, results, strict=True):
        assert result.language is None or result.language in SUPPORTED_CODES
        if result.text:
            (segment,) = result.segments
            assert (segment.start, segment.end) == (0.0, len(clip) / SAMPLE_RATE)
            assert (segment.text, segment.language) == (result.text, result.language)
        else:
            assert result.segments == ()


def test_random_weights_give_input_dependent_text(one_by_one: list[Transcription]) -> None:
    assert len({result.text for result in one_by_one}) > 1


def test_batched_output_equals_one_by_one(
    engine: Qwen3AsrEngine, clips: list[np.ndarray], one_by_one: list[Transcription]
) -> None:
    assert engine.transcribe(clips) == one_by_one


def test_batch_order_does_not_matter(
    engine: Qwen3AsrEngine, clips: list[np.ndarray], one_by_one: list[Transcription]
) -> None:
    assert engine.transcribe(clips[::-1]) == one_by_one[::-1]


def test_forced_language_is_reported(engine: Qwen3AsrEngine, clips: list[np.ndarray]) -> None:
    assert {result.language for result in engine.transcribe(clips, language="en")} == {"en"}
    assert {result.language for result in engine.transcribe(clips[:2], language="zh-Sichuan")} == {"zh-sichuan"}


def test_prompt_carries_forced_language_and_context(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_qwen3_asr)
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips[:2], language="yue-hk", context="Tsim Sha Tsui, MTR")

    prompts = engine.processor.batch_decode(calls[0]["input_ids"])
    assert all(prompt.endswith("<|im_start|>assistant\nlanguage Cantonese<asr_text>") for prompt in prompts)
    assert all("<|im_start|>system\nTsim Sha Tsui, MTR<|im_end|>" in prompt for prompt in prompts)


def test_auto_language_prompt_leaves_the_answer_open(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_qwen3_asr)
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips[:1])

    (prompt,) = engine.processor.batch_decode(calls[0]["input_ids"])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>system\n<|im_end|>" in prompt


def test_auto_language_is_parsed_from_the_output(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    """Random weights never write a language tag, so generate is replaced by a scripted answer."""
    engine = make_engine(tiny_qwen3_asr)
    answer = engine.processor.tokenizer("language Cantonese<asr_text>你好<|im_end|>", return_tensors="pt").input_ids

    def scripted(**kwargs: Any) -> SimpleNamespace:
        prompt = kwargs["input_ids"]
        return SimpleNamespace(sequences=torch.cat([prompt, answer.expand(len(prompt), -1)], dim=1))

    engine.hf_model.generate = scripted

    (result,) = engine.transcribe(clips[:1])
    assert (result.language, result.text) == ("yue", "你好")
    assert result.segments[0].language == "yue"


def test_generation_is_greedy_and_bounded(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_qwen3_asr, batch_size=len(clips))
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips)

    (call,) = calls
    assert (call["do_sample"], call["num_beams"]) == (False, 1)
    assert call["max_new_tokens"] == BUDGET.for_samples(WINDOW_SAMPLES) == BUDGET.cap


def test_default_budget_scales_with_length_and_is_capped() -> None:
    budget = TokenBudget()
    assert budget.for_samples(SAMPLE_RATE) < budget.for_samples(10 * SAMPLE_RATE) <= budget.cap
    assert budget.for_samples(WINDOW_SAMPLES) <= budget.cap <= 512


def test_batches_are_bounded_by_batch_size(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    engine = make_engine(tiny_qwen3_asr, batch_size=4)
    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)

    engine.transcribe(clips)

    assert [call["input_ids"].shape[0] for call in calls] == [4, len(clips) - 4]


def test_out_of_memory_halves_the_batch_and_remembers(
    tiny_qwen3_asr: Path, clips: list[np.ndarray], one_by_one: list[Transcription]
) -> None:
    """Simulated: there is no GPU here, so generate raises CUDA OOM for batches over 3."""
    engine = make_engine(tiny_qwen3_asr, batch_size=8)
    engine.hf_model.generate = fail_batches_over(3, engine.hf_model.generate)

    assert engine.transcribe(clips) == one_by_one
    assert engine.batch_size == len(clips) // 2

    calls: list[dict[str, Any]] = []
    record_generate(engine, calls)
    engine.transcribe(clips)
    assert [call["input_ids"].shape[0] for call in calls] == [3, 3]


def test_out_of_memory_at_batch_one_is_raised(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    """Simulated: generate raises CUDA OOM for every batch."""
    engine = make_engine(tiny_qwen3_asr, batch_size=4)
    engine.hf_model.generate = fail_batches_over(0, engine.hf_model.generate)

    with pytest.raises(torch.cuda.OutOfMemoryError):
        engine.transcribe(clips[:3])
    assert engine.batch_size == 1


def test_rejects_items_longer_than_a_window(engine: Qwen3AsrEngine) -> None:
    with pytest.raises(ValueError, match="over 30 s"):
        engine.transcribe([np.zeros(WINDOW_SAMPLES + 1, dtype=np.float32)])


def test_rejects_unknown_language(engine: Qwen3AsrEngine, clips: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        engine.transcribe(clips[:1], language="xx")


def test_empty_request(engine: Qwen3AsrEngine) -> None:
    assert engine.transcribe([]) == []


def test_windowed_encoder_attention_equals_the_stock_one(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    """The engine replaces the audio encoder's per-window attention calls with one call per window
    length; the encoded audio must not change."""
    engine = make_engine(tiny_qwen3_asr)
    stock = Qwen3ASRForConditionalGeneration.from_pretrained(tiny_qwen3_asr, local_files_only=True).eval()
    assert stock.model.audio_tower.config._attn_implementation != WINDOWED_ATTENTION
    features = engine._features(clips, None, None)
    with torch.inference_mode():
        ours = engine.hf_model.model.get_audio_features(features["input_features"], features["input_features_mask"])
        theirs = stock.model.get_audio_features(features["input_features"], features["input_features_mask"])
    window_frames = engine.hf_model.config.audio_config.n_window_infer
    assert features["input_features"].shape[-1] >= 3 * window_frames  # several attention windows per item
    torch.testing.assert_close(ours.pooler_output, theirs.pooler_output)


def test_windowed_attention_without_window_bounds_attends_over_its_input() -> None:
    query, key, value = torch.randn(3, 1, 2, 5, 4).unbind(0)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value).transpose(1, 2)
    output, _ = _windowed_attention(torch.nn.Module(), query, key, value, None)
    torch.testing.assert_close(output, expected)


def test_a_static_cache_gives_the_same_transcripts(tiny_qwen3_asr: Path, clips: list[np.ndarray]) -> None:
    """TINGXIE_GENERATE_CACHE=static (on CUDA transformers then compiles the decoding step); on the CPU
    it runs uncompiled, and must not change a word."""
    dynamic = make_engine(tiny_qwen3_asr).transcribe(clips)
    static = Qwen3AsrEngine(
        tiny_qwen3_asr, batch_size=4, budget=BUDGET, generate_kwargs={"cache_implementation": "static"}
    ).transcribe(clips)
    assert [result.text for result in static] == [result.text for result in dynamic]
