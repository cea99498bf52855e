"""Batch back-off, token budgets and dtype defaults shared by the torch engines."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from worker.engines.base import SAMPLE_RATE, WINDOW_SAMPLES
from worker.engines.torch_support import AdaptiveBatcher, TokenBudget, resolve_dtype


class FakeModel:
    """Doubles numbers; raises CUDA out-of-memory (simulated, no GPU here) above `limit` items."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.batches: list[int] = []

    def __call__(self, batch: Sequence[int]) -> list[int]:
        self.batches.append(len(batch))
        if len(batch) > self.limit:
            raise torch.cuda.OutOfMemoryError("simulated: CUDA out of memory")
        return [2 * item for item in batch]


def test_batcher_splits_into_batches_in_order() -> None:
    model = FakeModel(limit=100)
    assert AdaptiveBatcher(4).map(list(range(10)), model) == [2 * item for item in range(10)]
    assert model.batches == [4, 4, 2]


def test_batcher_halves_after_out_of_memory_and_keeps_the_size() -> None:
    model = FakeModel(limit=2)
    batcher = AdaptiveBatcher(8)

    assert batcher.map(list(range(7)), model) == [2 * item for item in range(7)]
    assert model.batches == [7, 4, 2, 2, 2, 1]
    assert batcher.batch_size == 2

    model.batches.clear()
    batcher.map(list(range(4)), model)
    assert model.batches == [2, 2]


def test_batcher_reraises_when_one_item_does_not_fit() -> None:
    batcher = AdaptiveBatcher(4)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        batcher.map([1, 2, 3], FakeModel(limit=0))
    assert batcher.batch_size == 1


def test_batcher_rejects_empty_batches() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveBatcher(0)


def test_token_budget_grows_with_audio_and_is_capped() -> None:
    budget = TokenBudget(per_second=8.0, margin=16, cap=200)
    assert budget.for_samples(0) == 16
    assert budget.for_samples(SAMPLE_RATE) == 24
    assert budget.for_samples(WINDOW_SAMPLES) == 200


@pytest.mark.parametrize(
    ("dtype", "device", "expected"),
    [
        (None, "cpu", torch.float32),
        (None, "cuda", torch.bfloat16),
        (None, "cuda:1", torch.bfloat16),
        ("float16", "cuda", torch.float16),
        (torch.float32, "cuda", torch.float32),
    ],
)
def test_resolve_dtype(dtype: torch.dtype | str | None, device: str, expected: torch.dtype) -> None:
    assert resolve_dtype(dtype, device) == expected
