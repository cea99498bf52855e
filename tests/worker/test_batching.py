"""The per-process batcher: calls filled from many callers, each caller given back exactly its own
results; a full batch goes at once, a lone window after the short maximum wait; interactive windows first;
similar lengths together; one prompt per call. The engine is the real pocketsphinx decoder on real speech,
wrapped to record what each call carried (and, where a test needs it, to hold a call until released)."""

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from tests.engines.speech import load_clip
from worker.batching import Prompt, WindowBatcher
from worker.engines.base import Transcription
from worker.engines.pocketsphinx import PocketsphinxEngine

SAMPLE_RATE = 16_000
DONE_WITHIN_S = 60  # generous: these are liveness bounds, not timings
AUTO = Prompt(language=None, context=None)


class RecordingEngine:
    """Pocketsphinx, recording the lengths (in samples) and prompt of every call it is given."""

    name, model, device = "pocketsphinx", "en-us (bundled)", "cpu"

    def __init__(self) -> None:
        self._engine = PocketsphinxEngine()
        self.calls: list[tuple[list[int], Prompt]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def transcribe(
        self, audio: Sequence[np.ndarray], language: str | None = None, context: str | None = None
    ) -> list[Transcription]:
        self.entered.set()
        assert self.hold.wait(DONE_WITHIN_S)
        self.calls.append(([len(item) for item in audio], Prompt(language, context)))
        if any(len(item) == 0 for item in audio):
            raise ValueError("an empty window")
        return self._engine.transcribe(audio)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_clip("en/OSR_us_000_0034_8k.wav")


def windows(speech: np.ndarray, seconds: Sequence[float], offset: float = 0.0) -> list[np.ndarray]:
    """Distinct windows of real speech of the given lengths."""
    starts = np.cumsum([offset, *seconds[:-1]])
    return [
        speech[int(s * SAMPLE_RATE) : int((s + length) * SAMPLE_RATE)]
        for s, length in zip(starts, seconds, strict=True)
    ]


@pytest.fixture
def engine() -> RecordingEngine:
    return RecordingEngine()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


def make_batcher(engine: RecordingEngine, limit: int, wait_s: float, bulk_from: int | None = None) -> WindowBatcher:
    return WindowBatcher(engine, lambda: limit, wait_s, bulk_from)


def test_each_caller_gets_its_own_results_from_shared_calls(
    engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    alone = PocketsphinxEngine()
    chunks = [windows(speech, [0.6, 0.8, 1.0], offset=3 * n) for n in range(5)]
    expected = [[result.text for result in alone.transcribe(chunk)] for chunk in chunks]
    batcher = make_batcher(engine, limit=8, wait_s=0.5)
    futures = [pool.submit(batcher.transcribe, chunk, AUTO) for chunk in chunks]
    got = [[result.text for result in future.result(DONE_WITHIN_S)] for future in futures]
    assert got == expected
    assert max(len(lengths) for lengths, _ in engine.calls) > 3  # calls carried several callers' windows
    assert batcher.stats.windows == 15 and batcher.stats.calls == len(engine.calls)
    batcher.close()


def test_a_full_batch_does_not_wait(engine: RecordingEngine, speech: np.ndarray) -> None:
    batcher = make_batcher(engine, limit=4, wait_s=3600)  # only a full batch can start a call
    results = batcher.transcribe(windows(speech, [1.0] * 4), AUTO)
    assert len(results) == 4 and [len(lengths) for lengths, _ in engine.calls] == [4]
    batcher.close()


def test_a_lone_window_goes_after_the_maximum_wait(engine: RecordingEngine, speech: np.ndarray) -> None:
    batcher = make_batcher(engine, limit=512, wait_s=0.05)
    done: Future[list[Transcription]] = Future()
    threading.Thread(target=lambda: done.set_result(batcher.transcribe(windows(speech, [1.0]), AUTO))).start()
    assert len(done.result(DONE_WITHIN_S)) == 1
    batcher.close()


def _queue_behind_a_held_call(
    engine: RecordingEngine, batcher: WindowBatcher, speech: np.ndarray, pool: ThreadPoolExecutor
) -> Future[list[Transcription]]:
    """A call the engine holds, so that what is submitted next waits together."""
    engine.hold.clear()
    first = pool.submit(batcher.transcribe, windows(speech, [0.5]), AUTO)
    assert engine.entered.wait(DONE_WITHIN_S)
    return first


def test_interactive_windows_go_first(engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor) -> None:
    batcher = make_batcher(engine, limit=2, wait_s=0.0)
    held = _queue_behind_a_held_call(engine, batcher, speech, pool)
    bulk = pool.submit(batcher.transcribe, windows(speech, [1.0, 1.1, 1.2, 1.3]), AUTO, 6)
    _wait_for_waiting(batcher, 4)
    urgent = pool.submit(batcher.transcribe, windows(speech, [2.0, 2.1], offset=10), AUTO, 0)
    _wait_for_waiting(batcher, 6)
    engine.hold.set()
    for future in (held, bulk, urgent):
        future.result(DONE_WITHIN_S)
    second_call = engine.calls[1][0]
    assert second_call == [32000, 33600]  # the interactive windows, though they came last


def test_interactive_windows_are_not_padded_with_bulk_work(
    engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    batcher = make_batcher(engine, limit=8, wait_s=0.0, bulk_from=3)
    held = _queue_behind_a_held_call(engine, batcher, speech, pool)
    bulk = pool.submit(batcher.transcribe, windows(speech, [1.0, 1.1, 1.2, 1.3]), AUTO, 3)
    _wait_for_waiting(batcher, 4)
    urgent = pool.submit(batcher.transcribe, windows(speech, [2.0], offset=10), AUTO, 0)
    _wait_for_waiting(batcher, 5)
    engine.hold.set()
    for future in (held, bulk, urgent):
        future.result(DONE_WITHIN_S)
    assert [lengths for lengths, _ in engine.calls[1:]] == [[32000], [16000, 17600, 19200, 20800]]


def test_similar_lengths_share_a_call(engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor) -> None:
    batcher = make_batcher(engine, limit=2, wait_s=0.0)
    held = _queue_behind_a_held_call(engine, batcher, speech, pool)
    mixed = pool.submit(batcher.transcribe, windows(speech, [1.0, 4.0, 1.1, 4.1]), AUTO)
    _wait_for_waiting(batcher, 4)
    engine.hold.set()
    held.result(DONE_WITHIN_S)
    assert len(mixed.result(DONE_WITHIN_S)) == 4
    pairs = [sorted(lengths) for lengths, _ in engine.calls[1:]]
    assert sorted(pairs) == [[16000, 17600], [64000, 65600]]


def test_windows_of_different_prompts_never_share_a_call(
    engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    prompts = [AUTO, Prompt("en", None), Prompt("en", "tingxie"), Prompt(None, "tingxie")]
    batcher = make_batcher(engine, limit=16, wait_s=0.2)
    futures = [
        pool.submit(batcher.transcribe, windows(speech, [1.0, 1.5], offset=4 * n), p) for n, p in enumerate(prompts)
    ]
    for future in futures:
        assert len(future.result(DONE_WITHIN_S)) == 2
    assert sorted(len(lengths) for lengths, _ in engine.calls) == [2, 2, 2, 2]
    assert {prompt for _, prompt in engine.calls} == set(prompts)


def test_an_engine_error_reaches_its_callers_and_the_batcher_goes_on(
    engine: RecordingEngine, speech: np.ndarray
) -> None:
    batcher = make_batcher(engine, limit=8, wait_s=0.0)
    with pytest.raises(ValueError, match="an empty window"):
        batcher.transcribe([np.zeros(0, dtype=np.float32)], AUTO)
    assert len(batcher.transcribe(windows(speech, [1.0]), AUTO)) == 1
    batcher.close()


def _wait_for_waiting(batcher: WindowBatcher, count: int) -> None:
    """Until `count` windows wait in the batcher (submitted from other threads)."""
    deadline = threading.Event()
    for _ in range(DONE_WITHIN_S * 100):
        if batcher.waiting >= count:
            return
        deadline.wait(0.01)
    raise AssertionError(f"fewer than {count} windows ever waited")


def test_a_waiting_interactive_window_goes_before_a_full_bulk_batch(
    engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    batcher = make_batcher(engine, limit=4, wait_s=3600, bulk_from=3)
    held = _queue_behind_a_held_call(engine, batcher, speech, pool)
    urgent = pool.submit(batcher.transcribe, windows(speech, [2.0], offset=10), AUTO, 0)
    _wait_for_waiting(batcher, 1)
    bulk = pool.submit(batcher.transcribe, windows(speech, [1.0, 1.1, 1.2, 1.3]), AUTO, 3)
    _wait_for_waiting(batcher, 5)
    engine.hold.set()
    for future in (held, urgent, bulk):
        future.result(DONE_WITHIN_S)
    assert [lengths for lengths, _ in engine.calls[1:]] == [[32000], [16000, 17600, 19200, 20800]]


def test_an_engine_error_reaches_only_the_caller_whose_window_causes_it(
    engine: RecordingEngine, speech: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    batcher = make_batcher(engine, limit=8, wait_s=0.5)
    good = pool.submit(batcher.transcribe, windows(speech, [1.0, 1.2]), AUTO)
    bad = pool.submit(batcher.transcribe, [np.zeros(0, dtype=np.float32)], AUTO)
    assert len(good.result(DONE_WITHIN_S)) == 2
    with pytest.raises(ValueError, match="an empty window"):
        bad.result(DONE_WITHIN_S)
    assert len(engine.calls[0][0]) == 3  # they shared the call that failed
    batcher.close()
