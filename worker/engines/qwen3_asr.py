"""Qwen3-ASR through the native transformers implementation (Qwen/Qwen3-ASR-*-hf layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AttentionInterface, BatchFeature, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor

from tingxie.languages import forced_engine_name, from_engine_name, normalize_code
from tingxie.settings import Settings
from worker.engines.base import SAMPLE_RATE, WINDOW_SAMPLES, Transcription, as_windows, whole_item, with_words
from worker.engines.qwen3_aligner import Qwen3Aligner
from worker.engines.torch_support import (
    AdaptiveBatcher,
    TokenBudget,
    kv_cache_bytes,
    local_model_path,
    resolve_device,
    resolve_dtype,
)

Components = tuple[Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor]

DEFAULT_BUDGET = TokenBudget()

# Items whose audio goes through the encoder together. Its first convolution holds about 90 MB
# per 30 s item in bfloat16 (twice that around the GELU), so encoding a 256-item batch in one
# call peaked at 48 GiB on an H100 and capped the batch below 512; chunks of 32 items need
# about 6 GiB, and the encoder stays a small share of the batch's time.
ENCODER_CHUNK_ITEMS = 32

# transformers' audio encoder passes the whole packed sequence and its attention-window bounds
# (cu_seqlens) in one call only to implementations whose name contains "flash"; any other gets
# one call per window, about 4 per 30 s item and layer, and those calls dominate the encoder's
# time at large batches. Under this name it gets one call per layer (see _windowed_attention).
WINDOWED_ATTENTION = "tingxie_windowed_sdpa_flash"

AUDIO_TOKENS_PER_SECOND = 13  # the encoder's output rate: 390 positions for a 30 s window
PROMPT_TOKENS = 64  # chat template, language and a short context around the audio


def build(settings: Settings) -> Qwen3AsrEngine:
    static = {"cache_implementation": "static"} if settings.generate_cache == "static" else {}
    device = resolve_device(settings.device)
    aligner = None
    if settings.aligner_path:
        aligner = Qwen3Aligner(settings.aligner_path, device, settings.dtype, settings.starting_batch_size)
    return Qwen3AsrEngine(
        local_model_path(settings),
        device,
        settings.dtype,
        settings.starting_batch_size,
        generate_kwargs=static,
        aligner=aligner,
    )


class Qwen3AsrEngine:
    name = "qwen3-asr"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        dtype: torch.dtype | str | None = None,
        batch_size: int = 8,
        *,
        budget: TokenBudget = DEFAULT_BUDGET,
        generate_kwargs: Mapping[str, Any] | None = None,
        components: Components | None = None,
        aligner: Qwen3Aligner | None = None,
    ) -> None:
        self.model = str(model_path)
        self.aligner = aligner  # word times, when a forced aligner is configured
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.budget = budget
        self.generate_kwargs = dict(generate_kwargs or {})
        self.hf_model, self.processor = components or _load(model_path, device, self.dtype)
        _use_windowed_attention(self.hf_model)
        self._batcher = AdaptiveBatcher(batch_size)

    @property
    def batch_size(self) -> int:
        return self._batcher.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batcher = AdaptiveBatcher(value)

    def window_bytes(self) -> int:
        """Device memory one full window's key/value cache takes, prompt and longest answer included."""
        text: Any = self.hf_model.config.text_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        tokens = PROMPT_TOKENS + AUDIO_TOKENS_PER_SECOND * WINDOW_SAMPLES // SAMPLE_RATE
        tokens += self.budget.for_samples(WINDOW_SAMPLES)
        return kv_cache_bytes(text.num_hidden_layers, text.num_key_value_heads, head_dim, tokens, self.dtype)

    def transcribe(
        self,
        audio: Sequence[np.ndarray],
        language: str | None = None,
        context: str | None = None,
    ) -> list[Transcription]:
        windows = as_windows(audio)
        forced = forced_engine_name(language) if language else None
        parsed = self._batcher.map(windows, lambda batch: self._run(batch, forced, context))
        code = normalize_code(language) if language else None
        results = [_transcription(window, output, code) for window, output in zip(windows, parsed, strict=True)]
        if self.aligner is None:
            return results
        words = self.aligner.align(windows, [result.text for result in results], [r.language for r in results])
        return [with_words(result, found) for result, found in zip(results, words, strict=True)]

    @torch.inference_mode()
    def _run(self, batch: Sequence[np.ndarray], forced: str | None, context: str | None) -> list[dict[str, Any]]:
        inputs = self._inputs(batch, forced, context)
        budgets = [self.budget.for_samples(len(window)) for window in batch]
        output = self.hf_model.generate(**inputs, **self._generation_args(max(budgets)))
        rows = output.sequences[:, inputs["input_ids"].shape[1] :]
        return [self._parse(row[:budget]) for row, budget in zip(rows, budgets, strict=True)]

    def _parse(self, tokens: torch.Tensor) -> dict[str, Any]:
        """{"language": name or None, "transcription": text}, special tokens dropped."""
        return self.processor.decode(tokens, return_format="parsed")

    def _inputs(self, batch: Sequence[np.ndarray], forced: str | None, context: str | None) -> dict[str, torch.Tensor]:
        """generate()'s prompt: token ids, their mask, and embeddings with the audio already encoded."""
        features = self._features(batch, forced, context)
        return {
            "input_ids": features["input_ids"],
            "attention_mask": features["attention_mask"],
            "inputs_embeds": self._embed(features),
        }

    def _features(self, batch: Sequence[np.ndarray], forced: str | None, context: str | None) -> BatchFeature:
        inputs = self.processor.apply_transcription_request(  # type: ignore[call-arg]  # processor_kwargs is passed through **kwargs
            list(batch),
            language=forced,
            prompt=context or None,
            processor_kwargs={"audio_kwargs": self._audio_kwargs()},
        )
        inputs = inputs.to(self.device)  # type: ignore[union-attr]
        inputs["input_features"] = inputs["input_features"].to(self.dtype)
        return inputs

    def _embed(self, features: BatchFeature) -> torch.Tensor:
        """The prompt's embeddings with the audio placeholders filled, as the model's forward would.

        Done here rather than inside generate() so that the encoder can take the batch in chunks
        of items (ENCODER_CHUNK_ITEMS); each item's audio is encoded on its own either way.
        """
        model = self.hf_model.model
        embeds = model.get_input_embeddings()(features["input_ids"])
        audio = torch.cat(
            [
                model.get_audio_features(chunk, mask).pooler_output
                for chunk, mask in zip(
                    features["input_features"].split(ENCODER_CHUNK_ITEMS),
                    features["input_features_mask"].split(ENCODER_CHUNK_ITEMS),
                    strict=True,
                )
            ]
        )
        placeholders = model.get_placeholder_mask(features["input_ids"], inputs_embeds=embeds, audio_features=audio)
        return embeds.masked_scatter(placeholders, audio.to(embeds.dtype))

    def _audio_kwargs(self) -> dict[str, Any]:
        # Every item is padded to a full window, as if it shared a batch with a 30 s item:
        # the encoder's first chunk after the audio and the last STFT frame then see the same
        # padding in every batch, so an item's transcript does not depend on its batch mates.
        return {
            "sampling_rate": SAMPLE_RATE,
            "padding": "max_length",
            "max_length": WINDOW_SAMPLES,
            "device": self.device,
        }

    def _generation_args(self, max_new_tokens: int) -> dict[str, Any]:
        return {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": max_new_tokens,
            "return_dict_in_generate": True,
            **self.generate_kwargs,
        }


def _use_windowed_attention(model: Qwen3ASRForConditionalGeneration) -> None:
    """Route the audio encoder's attention through _windowed_attention; the text decoder keeps its own."""
    AttentionInterface.register(WINDOWED_ATTENTION, _windowed_attention)
    # Set on the encoder's config directly: set_attn_implementation() would take a name with
    # "flash" in it for a flash-attention kernel to load.
    model.model.audio_tower.config._attn_implementation = WINDOWED_ATTENTION


def _windowed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """Attention within each window of a packed sequence, one SDPA call per distinct window length.

    query, key, value: (1, heads, total, head_dim); window i spans cu_seq_lens_q[i]:cu_seq_lens_q[i + 1].
    Returns (1, total, heads, head_dim), as transformers' attention functions do. Each window sees
    only itself, exactly as with one call per window, so no item depends on its batch mates.
    Called without window bounds (a transformers release that calls once per window), it attends
    over what it is given.
    """
    if cu_seq_lens_q is None:
        cu_seq_lens_q = torch.tensor([0, query.shape[2]], device=query.device)
    packed = [tensor[0].transpose(0, 1) for tensor in (query, key, value)]  # (total, heads, head_dim)
    output = torch.empty_like(packed[0])
    for positions in _windows_by_length(cu_seq_lens_q):
        count, length = positions.shape
        flat = positions.flatten()
        q, k, v = (tensor[flat].view(count, length, *tensor.shape[1:]).transpose(1, 2) for tensor in packed)
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scaling)
        output[flat] = attended.transpose(1, 2).reshape(count * length, *output.shape[1:])
    return output.unsqueeze(0), None


def _windows_by_length(bounds: torch.Tensor) -> list[torch.Tensor]:
    """For each distinct window length, a (windows, length) tensor of the positions they cover."""
    edges = bounds.tolist()  # one host sync per encoder layer, against ~4 attention calls per item before
    starts_by_length: dict[int, list[int]] = {}
    for start, end in pairwise(edges):
        if end > start:
            starts_by_length.setdefault(end - start, []).append(start)
    return [
        torch.tensor(starts, device=bounds.device)[:, None] + torch.arange(length, device=bounds.device)
        for length, starts in starts_by_length.items()
    ]


def _load(model_path: str | Path, device: str, dtype: torch.dtype) -> Components:
    processor = Qwen3ASRProcessor.from_pretrained(model_path, local_files_only=True)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(model_path, dtype=dtype, local_files_only=True)
    return model.to(device).eval(), processor  # type: ignore[arg-type]  # transformers types .to() for dtypes only


def _transcription(window: np.ndarray, parsed: dict[str, Any], forced_code: str | None) -> Transcription:
    # A forced language is part of the prompt, so the output holds only the text.
    language = forced_code or from_engine_name(parsed["language"])
    return whole_item(window, parsed["transcription"], language)
