"""Settings that are derived rather than read."""

import os
from collections.abc import Iterator

import pytest

from tingxie.engines import engine_spec
from tingxie.runner import gpu_worker_concurrency
from tingxie.settings import Settings


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the values a test passes: the suite's platform exports TINGXIE_ settings of its own."""
    for name in [name for name in os.environ if name.startswith("TINGXIE_")]:
        monkeypatch.delenv(name)
    yield


@pytest.mark.parametrize("engine", ["qwen3-asr", "whisper"])
def test_neural_engines_plan_the_configured_window(engine: str) -> None:
    assert Settings(engine=engine).planned_window_seconds == 30
    assert Settings(engine=engine, window_seconds=12).planned_window_seconds == 12


def test_pocketsphinx_windows_are_capped_where_its_accuracy_holds() -> None:
    limit = engine_spec("pocketsphinx").window_limit_s
    assert limit < 30
    assert Settings(engine="pocketsphinx").planned_window_seconds == limit
    assert Settings(engine="pocketsphinx", window_seconds=limit / 2).planned_window_seconds == limit / 2


def test_the_gpu_worker_holds_four_calls_worth_of_chunks_unless_told() -> None:
    """`make serve`'s gpu worker: 300 s chunks hold ten 30 s windows, so 4 x batch / 10 + 2."""
    assert gpu_worker_concurrency(Settings(engine="qwen3-asr", batch_size=512)) == 206
    assert gpu_worker_concurrency(Settings(engine="qwen3-asr", batch_size=16)) == 8
    # No GPU here: "auto" is the CPU's batch of 8; on CUDA it would be the most it may size, 512.
    assert gpu_worker_concurrency(Settings(engine="qwen3-asr", device="cpu")) == 5
    assert gpu_worker_concurrency(Settings(engine="qwen3-asr", device="cuda")) == 206
    # Shorter chunks hold fewer windows each: more of them fill a call.
    assert gpu_worker_concurrency(Settings(engine="qwen3-asr", batch_size=16, chunk_seconds=60)) == 34
    assert gpu_worker_concurrency(Settings(engine="qwen3-asr", transcribe_concurrency=3)) == 3
