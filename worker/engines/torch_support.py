"""Pieces shared by the engines that run a transformers model with torch."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from tingxie.settings import MAX_AUTO_BATCH, Settings
from worker.engines.base import SAMPLE_RATE

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class TokenBudget:
    """Upper bound on generated tokens for a window, from its length.

    Bounding generation keeps a model that never emits end-of-sequence (repetition loops,
    random weights) from running to the model's context limit.
    """

    per_second: float = 8.0
    margin: int = 16
    cap: int = 512

    def for_samples(self, samples: int) -> int:
        return min(self.cap, self.margin + math.ceil(self.per_second * samples / SAMPLE_RATE))


def resolve_dtype(dtype: torch.dtype | str | None, device: str) -> torch.dtype:
    """bfloat16 on CUDA and float32 elsewhere unless a dtype is given."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        return getattr(torch, dtype)
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def resolve_device(device: str) -> str:
    """ "auto" is CUDA when a GPU is visible, else the CPU."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def local_model_path(settings: Settings) -> str:
    """The model directory a torch engine loads; the weights are never downloaded."""
    if not settings.model_path:
        raise RuntimeError(f"TINGXIE_MODEL_PATH must name a local model directory for {settings.engine}")
    return settings.model_path


class AdaptiveBatcher:
    """Runs work in batches; a CUDA out-of-memory error halves the batch (rounding up) and retries.

    The smaller size is kept for later calls, so one oversized request does not make
    every following request fail first.
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size

    def map(self, items: Sequence[Item], run: Callable[[Sequence[Item]], list[Result]]) -> list[Result]:
        results: list[Result] = []
        while len(results) < len(items):
            batch = items[len(results) : len(results) + self.batch_size]
            done = self._attempt(run, batch)
            if done is not None:
                results.extend(done)
        return results

    def _attempt(self, run: Callable[[Sequence[Item]], list[Result]], batch: Sequence[Item]) -> list[Result] | None:
        try:
            return run(batch)
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise
            self.batch_size = (len(batch) + 1) // 2
            log.warning("CUDA out of memory with batch of %d; retrying with %d", len(batch), self.batch_size)
        # Outside the except block, so the failed attempt's tensors are already unreferenced.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None


# What a batch needs besides its windows' caches: the encoder's chunk of items (ENCODER_CHUNK_ITEMS in
# qwen3_asr.py, about 6 GiB at full size), the sampling step's logits and the allocator's slack.
BATCH_RESERVE_BYTES = 8 * 1024**3
CACHE_HEADROOM = 2.0  # a window's activations and fragmentation, over its key/value cache


def batch_for_memory(free_bytes: int, window_bytes: int) -> int:
    """How many windows of `window_bytes` cache each fit in `free_bytes` of device memory."""
    room = free_bytes - BATCH_RESERVE_BYTES
    return max(1, min(MAX_AUTO_BATCH, int(room // (window_bytes * CACHE_HEADROOM))))


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: int, dtype: torch.dtype) -> int:
    """Keys and values of `tokens` positions in every layer."""
    return 2 * layers * kv_heads * head_dim * tokens * dtype.itemsize
