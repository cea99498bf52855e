"""Qwen3-ASR through the native transformers implementation (Qwen/Qwen3-ASR-*-hf layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor

from tingxie.languages import forced_engine_name, from_engine_name, normalize_code
from worker.engines.base import SAMPLE_RATE, WINDOW_SAMPLES, Transcription, as_windows, whole_item
from worker.engines.torch_support import AdaptiveBatcher, TokenBudget, resolve_dtype

Components = tuple[Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor]

DEFAULT_BUDGET = TokenBudget()


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
    ) -> None:
        self.model = str(model_path)
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.budget = budget
        self.generate_kwargs = dict(generate_kwargs or {})
        self.hf_model, self.processor = components or _load(model_path, device, self.dtype)
        self._batcher = AdaptiveBatcher(batch_size)

    @property
    def batch_size(self) -> int:
        return self._batcher.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batcher = AdaptiveBatcher(value)

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
        return [_transcription(window, output, code) for window, output in zip(windows, parsed, strict=True)]

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

    def _inputs(self, batch: Sequence[np.ndarray], forced: str | None, context: str | None) -> BatchFeature:
        inputs = self.processor.apply_transcription_request(  # type: ignore[call-arg]  # processor_kwargs is passed through **kwargs
            list(batch),
            language=forced,
            prompt=context or None,
            processor_kwargs={"audio_kwargs": self._audio_kwargs()},
        )
        inputs = inputs.to(self.device)  # type: ignore[union-attr]
        inputs["input_features"] = inputs["input_features"].to(self.dtype)
        return inputs

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


def _load(model_path: str | Path, device: str, dtype: torch.dtype) -> Components:
    processor = Qwen3ASRProcessor.from_pretrained(model_path, local_files_only=True)
    model = Qwen3ASRForConditionalGeneration.from_pretrained(model_path, dtype=dtype, local_files_only=True)
    return model.to(device).eval(), processor  # type: ignore[arg-type]  # transformers types .to() for dtypes only


def _transcription(window: np.ndarray, parsed: dict[str, Any], forced_code: str | None) -> Transcription:
    # A forced language is part of the prompt, so the output holds only the text.
    language = forced_code or from_engine_name(parsed["language"])
    return whole_item(window, parsed["transcription"], language)
