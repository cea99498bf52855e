"""Whisper checkpoints through transformers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, WhisperForConditionalGeneration, WhisperProcessor

from tingxie.languages import from_whisper_code, normalize_code, to_whisper_code
from tingxie.settings import Settings
from worker.engines.base import SAMPLE_RATE, Transcription, Word, as_windows, in_item, whole_item, with_words
from worker.engines.torch_support import (
    AdaptiveBatcher,
    TokenBudget,
    kv_cache_bytes,
    local_model_path,
    resolve_device,
    resolve_dtype,
)

Components = tuple[WhisperForConditionalGeneration, WhisperProcessor]

DEFAULT_BUDGET = TokenBudget(per_second=8.0, margin=8, cap=440)
# <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>
DECODER_PREFIX_TOKENS = 4


def build(settings: Settings) -> WhisperEngine:
    device = resolve_device(settings.device)
    return WhisperEngine(local_model_path(settings), device, settings.dtype, settings.starting_batch_size)


class _ItemOutputs(dict[str, Any]):
    """One item's share of generate()'s outputs, read as attributes the way transformers reads them."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class _Decoded:
    text: str
    code: str  # Whisper's language code
    words: tuple[Word, ...]


class WhisperEngine:
    name = "whisper"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        dtype: torch.dtype | str | None = None,
        batch_size: int = 8,
        *,
        budget: TokenBudget = DEFAULT_BUDGET,
        components: Components | None = None,
    ) -> None:
        self.model = str(model_path)
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.budget = budget
        self.hf_model, self.processor = components or _load(model_path, device, self.dtype)
        # Word times come from the cross-attention of the heads the checkpoint names as alignment_heads,
        # which only the eager attention returns; a checkpoint without them gives segments without words.
        self.word_times = bool(getattr(self.hf_model.generation_config, "alignment_heads", None))
        if self.word_times:
            self.hf_model.set_attn_implementation("eager")
        self._batcher = AdaptiveBatcher(batch_size)

    @property
    def batch_size(self) -> int:
        return self._batcher.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batcher = AdaptiveBatcher(value)

    def window_bytes(self) -> int:
        """Device memory one window's caches take: its own tokens' keys and values, and the encoder
        positions every decoder layer attends to."""
        config = self.hf_model.config
        head_dim = config.d_model // config.decoder_attention_heads
        positions = config.max_target_positions + config.max_source_positions
        layers, heads = config.decoder_layers, config.decoder_attention_heads
        caches = kv_cache_bytes(layers, heads, head_dim, positions, self.dtype)
        if not self.word_times:
            return caches
        # Word times keep every step's cross-attention weights until the window is decoded.
        return caches + layers * heads * config.max_target_positions * config.max_source_positions * self.dtype.itemsize

    @property
    def multilingual(self) -> bool:
        config = self.hf_model.generation_config
        return bool(getattr(config, "is_multilingual", hasattr(config, "lang_to_id")))

    def transcribe(
        self,
        audio: Sequence[np.ndarray],
        language: str | None = None,
        context: str | None = None,
    ) -> list[Transcription]:
        windows = as_windows(audio)
        forced = self._forced_code(language)
        results = self._batcher.map(windows, lambda batch: self._run(batch, forced, context))
        reported = normalize_code(language) if language else None
        return [
            with_words(whole_item(window, item.text, reported or from_whisper_code(item.code)), item.words)
            for window, item in zip(windows, results, strict=True)
        ]

    def _forced_code(self, language: str | None) -> str | None:
        if language is None:
            return None
        code = to_whisper_code(language)
        if not self.multilingual and code != "en":
            raise ValueError(f"{self.model} is English-only and cannot transcribe {language!r}")
        return code

    @torch.inference_mode()
    def _run(self, batch: Sequence[np.ndarray], forced: str | None, context: str | None) -> list[_Decoded]:
        features = self._features(batch)
        codes = self._languages(features, forced)
        prompt_ids = self._prompt_ids(context)
        budgets = [self._budget(len(window), prompt_ids) for window in batch]
        output = self.hf_model.generate(
            features["input_features"],
            attention_mask=features["attention_mask"],
            **self._language_args(codes),
            **self._generation_args(max(budgets), prompt_ids),
        )
        if not self.word_times:
            return [
                _Decoded(self._text(row[:budget]), code, ())
                for row, code, budget in zip(output, codes, budgets, strict=True)
            ]
        # The sequences start with the decoder's prompt, which the first step's cross-attention covers.
        prefix = output.cross_attentions[0][0].shape[2]
        decoded = []
        for index, (window, code, budget) in enumerate(zip(batch, codes, budgets, strict=True)):
            frames = int(features["attention_mask"][index].sum())
            stamps = self._token_times(output, index, prefix, frames)[:budget]
            row = output.sequences[index, prefix:][:budget]
            decoded.append(_Decoded(self._text(row), code, self._words(row, stamps, len(window) / SAMPLE_RATE)))
        return decoded

    def _token_times(self, output: Any, index: int, prefix: int, frames: int) -> torch.Tensor:
        """Item `index`'s token start times from its alignment heads' cross-attention (dynamic time warping
        over its own frames), by transformers' own routine, run one item at a time: its batched form
        fails on items of different lengths (np.repeat on a tensor)."""
        item = _ItemOutputs(
            sequences=output.sequences[index : index + 1],
            cross_attentions=tuple(
                tuple(layer[index : index + 1] for layer in step) for step in output.cross_attentions
            ),
        )
        heads = getattr(self.hf_model.generation_config, "alignment_heads")  # noqa: B009  # not in its type
        times = self.hf_model._extract_token_timestamps(item, heads, num_frames=frames, num_input_ids=prefix)
        return times[0, prefix:]

    def _words(self, tokens: torch.Tensor, stamps: torch.Tensor, duration: float) -> tuple[Word, ...]:
        """Tokens grouped into words (a token whose text starts with a space starts a word), each from its
        first token's time to the next word's (the last one's to the end-of-text token's)."""
        special = set(self.processor.tokenizer.all_special_ids)
        timed = [(int(token), float(stamp)) for token, stamp in zip(tokens.tolist(), stamps.tolist(), strict=True)]
        spoken = [index for index, (token, _) in enumerate(timed) if token not in special]
        groups: list[list[int]] = []
        for index in spoken:
            text = self.processor.tokenizer.decode([timed[index][0]])
            if not groups or text.startswith(" ") or groups[-1][-1] != index - 1:
                groups.append([index])
            else:
                groups[-1].append(index)
        words = []
        for group in groups:
            text = self.processor.tokenizer.decode([timed[index][0] for index in group]).strip()
            after = group[-1] + 1
            start = in_item(timed[group[0]][1], duration)
            end = max(in_item(timed[after][1], duration), start) if after < len(timed) else start
            if text:
                words.append(Word(start, end, text))
        return tuple(words)

    def _text(self, tokens: torch.Tensor) -> str:
        return self.processor.decode(tokens, skip_special_tokens=True)

    def _features(self, batch: Sequence[np.ndarray]) -> BatchFeature:
        features = self.processor.feature_extractor(
            list(batch), sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True
        ).to(self.device)
        features["input_features"] = features["input_features"].to(self.dtype)
        return features

    def _languages(self, features: BatchFeature, forced: str | None) -> list[str]:
        count = len(features["input_features"])
        if forced is not None:
            return [forced] * count
        if not self.multilingual:
            return ["en"] * count
        detected = self.hf_model.detect_language(features["input_features"])
        return [token.strip("<|>") for token in self.processor.tokenizer.convert_ids_to_tokens(detected.tolist())]

    def _language_args(self, codes: list[str]) -> dict[str, Any]:
        if not self.multilingual:
            return {}
        return {"language": codes, "task": "transcribe"}

    def _prompt_ids(self, context: str | None) -> torch.Tensor | None:
        if not context or not context.strip():
            return None
        ids = self.processor.get_prompt_ids(context, return_tensors="pt")
        # Whisper allows half of the decoder context for the prompt; keep its most recent part.
        room = self.hf_model.config.max_target_positions // 2 - 1
        return torch.cat([ids[:1], ids[1:][-(room - 1) :]]).to(self.device)

    def _budget(self, samples: int, prompt_ids: torch.Tensor | None) -> int:
        prompt = 0 if prompt_ids is None else len(prompt_ids)
        room = self.hf_model.config.max_target_positions - DECODER_PREFIX_TOKENS - prompt
        return min(self.budget.for_samples(samples), room)

    def _generation_args(self, max_new_tokens: int, prompt_ids: torch.Tensor | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": max_new_tokens,
            "return_timestamps": False,
        }
        if self.word_times:
            args |= {"return_dict_in_generate": True, "output_attentions": True}
        if prompt_ids is not None:
            args["prompt_ids"] = prompt_ids
        return args


def _load(model_path: str | Path, device: str, dtype: torch.dtype) -> Components:
    processor = WhisperProcessor.from_pretrained(model_path, local_files_only=True)
    model = WhisperForConditionalGeneration.from_pretrained(model_path, dtype=dtype, local_files_only=True)
    return model.to(device).eval(), processor  # type: ignore[arg-type]  # transformers types .to() for dtypes only
