"""Chunks and windows are cut in pauses, cover all speech, and do not depend on how audio arrives.

A recording made of real clips joined by pauses has its truth known: every chunk and window boundary must
fall in a pause, and every clip must reach the engine whole. Property tests then check the pure planner on
arbitrary speech masks, and the streaming planner on arbitrary block sizes."""

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.audio_fixtures import SAMPLE_RATE, concatenate_with_pauses
from tests.corpus import SPEECH
from worker.audio.plan import PlannedChunk, plan_chunks, plan_windows, runs, speech_mask

# Clips with no long pause of their own and no noise before or after the speech, so that the inserted
# pauses are the only places a planner may cut.
CLIPS = (
    SPEECH / "en" / "spk1_snt1.wav",
    SPEECH / "zh" / "asr_example_zh.wav",
    SPEECH / "en" / "spk1_snt4.wav",
    SPEECH / "multi" / "fr1.wav",
    SPEECH / "en" / "spk1_snt5.wav",
    SPEECH / "ja" / "ja1.wav",
)
PAUSE_S = 1.5
CHUNK_S = 14.0  # half a chunk (the earliest cut) always holds a whole clip and a pause
WINDOW_S = 6.0  # longer than any clip with its padding: a window never has to split a clip
EDGE_TOLERANCE_S = 0.1  # where a trimmed clip starts and ends is known to about one energy frame


@pytest.fixture(scope="module")
def recording() -> tuple[np.ndarray, list[tuple[float, float]]]:
    return concatenate_with_pauses(CLIPS * 2, PAUSE_S)


@pytest.fixture(scope="module")
def chunks(recording: tuple[np.ndarray, list[tuple[float, float]]]) -> list[PlannedChunk]:
    samples, _ = recording
    return list(plan_chunks(_blocks(samples, 4000), CHUNK_S, WINDOW_S))


def _blocks(samples: np.ndarray, size: int) -> Iterator[np.ndarray]:
    yield from (samples[i : i + size] for i in range(0, len(samples), size))


def _inside_speech(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(start + EDGE_TOLERANCE_S < t < end - EDGE_TOLERANCE_S for start, end in spans)


def test_chunk_boundaries_fall_in_pauses(
    recording: tuple[np.ndarray, list[tuple[float, float]]], chunks: list[PlannedChunk]
) -> None:
    _, spans = recording
    assert len(chunks) >= 4
    cuts = [chunk.start for chunk in chunks[1:]]
    assert [t for t in cuts if _inside_speech(t, spans)] == []


def test_window_boundaries_fall_in_pauses_and_each_clip_is_in_one_window(
    recording: tuple[np.ndarray, list[tuple[float, float]]], chunks: list[PlannedChunk]
) -> None:
    _, spans = recording
    windows = [(chunk.start + w.start, chunk.start + w.end) for chunk in chunks for w in chunk.windows]
    assert len(windows) >= len(chunks) * 2
    edges = [t for window in windows for t in window]
    assert [t for t in edges if _inside_speech(t, spans)] == []
    for start, end in spans:
        holders = [w for w in windows if w[0] <= start + EDGE_TOLERANCE_S and end - EDGE_TOLERANCE_S <= w[1]]
        assert len(holders) == 1, f"clip at {start:.2f}-{end:.2f} s is not inside exactly one window"


def test_windows_lie_inside_their_chunk_and_respect_the_window_length(chunks: list[PlannedChunk]) -> None:
    for chunk in chunks:
        duration = len(chunk.samples) / SAMPLE_RATE
        assert all(0 <= w.start < w.end <= duration for w in chunk.windows)
        assert all(w.end - w.start <= WINDOW_S for w in chunk.windows)


# --- the pure planner ----------------------------------------------------------------------------------


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    """Alternating silence and speech stretches of any length, including none at all."""
    lengths = draw(st.lists(st.integers(1, 120), max_size=24))
    speaking = draw(st.booleans())
    stretches = []
    for length in lengths:
        stretches.append(np.full(length, speaking))
        speaking = not speaking
    return np.concatenate(stretches) if stretches else np.zeros(0, dtype=bool)


def _probs_for(draw: st.DrawFn, mask: np.ndarray) -> np.ndarray:
    noise = draw(arrays(np.float32, len(mask), elements=st.floats(0, 1, width=32)))
    return np.where(mask, 0.5 + noise / 2, noise * 0.35).astype(np.float32)


@st.composite
def planner_inputs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    mask = draw(masks())
    return mask, _probs_for(draw, mask), draw(st.integers(16, 400))


def _check_windows(mask: np.ndarray, windows: list[tuple[int, int]], max_frames: int) -> None:
    assert all(0 <= start < end <= len(mask) for start, end in windows)
    assert all(end - start <= max_frames for start, end in windows)
    assert all(a[1] <= b[0] for a, b in pairwise(windows))
    covered = np.zeros(len(mask), dtype=bool)
    for start, end in windows:
        covered[start:end] = True
    assert not np.any(mask & ~covered), "a speech frame is in no window"


@settings(max_examples=300, deadline=None)
@given(planner_inputs())
def test_windows_are_short_ordered_disjoint_and_cover_all_speech(
    inputs: tuple[np.ndarray, np.ndarray, int],
) -> None:
    mask, probs, max_frames = inputs
    _check_windows(mask, plan_windows(mask, probs, max_frames), max_frames)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(0, 600), elements=st.floats(0, 1, width=32)), st.integers(16, 400))
def test_windows_from_raw_probabilities(probs: np.ndarray, max_frames: int) -> None:
    mask = speech_mask(probs)
    _check_windows(mask, plan_windows(mask, probs, max_frames), max_frames)


@settings(max_examples=300, deadline=None)
@given(planner_inputs())
def test_every_window_holds_speech(inputs: tuple[np.ndarray, np.ndarray, int]) -> None:
    """The engine never sees a stretch of silence alone (some engines invent text for it)."""
    mask, probs, max_frames = inputs
    windows = plan_windows(mask, probs, max_frames)
    assert [w for w in windows if not mask[w[0] : w[1]].any()] == []


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2000), st.integers(2, 400))
def test_silence_gives_no_windows(frames: int, max_frames: int) -> None:
    probs = np.full(frames, 0.1, dtype=np.float32)
    mask = speech_mask(probs)
    assert not mask.any()
    assert plan_windows(mask, probs, max_frames) == []


@settings(max_examples=300, deadline=None)
@given(masks())
def test_runs_of_speech_and_of_silence_tile_the_mask(mask: np.ndarray) -> None:
    speech, silence = runs(mask, value=True), runs(mask, value=False)
    assert all(mask[start:end].all() for start, end in speech)
    assert all(not mask[start:end].any() for start, end in silence)
    tiles = sorted(speech + silence)
    assert [start for start, _ in tiles] == [0, *(end for _, end in tiles[:-1])][: len(tiles)]
    assert (tiles[-1][1] if tiles else 0) == len(mask)


# --- the streaming planner -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_recording() -> np.ndarray:
    samples, _ = concatenate_with_pauses(CLIPS[:4], 0.8)
    return samples


@pytest.fixture(scope="module")
def reference_chunks(short_recording: np.ndarray) -> list[PlannedChunk]:
    return list(plan_chunks([short_recording], 6.0, 2.5))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 10**9), max_size=60))
def test_chunks_do_not_depend_on_block_sizes(
    short_recording: np.ndarray, reference_chunks: list[PlannedChunk], cut_points: list[int]
) -> None:
    samples = short_recording
    bounds = sorted({0, len(samples), *(point % len(samples) for point in cut_points)})
    blocks = [samples[a:b] for a, b in pairwise(bounds)]
    chunks = list(plan_chunks(blocks, 6.0, 2.5))
    assert [(c.index, c.start, len(c.samples), c.windows) for c in chunks] == [
        (c.index, c.start, len(c.samples), c.windows) for c in reference_chunks
    ]
    assert all(np.array_equal(c.samples, r.samples) for c, r in zip(chunks, reference_chunks, strict=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(160, 50_000), st.integers(0, 3 * SAMPLE_RATE))
def test_chunks_are_contiguous_and_add_up_to_the_input(
    short_recording: np.ndarray, block_size: int, extra_silence: int
) -> None:
    samples = np.concatenate((short_recording, np.zeros(extra_silence, dtype=np.float32)))
    chunks = list(plan_chunks(_blocks(samples, block_size), 6.0, 2.5))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start == 0
    assert all(b.start == pytest.approx(a.end, abs=1e-9) for a, b in pairwise(chunks))
    assert sum(len(c.samples) for c in chunks) == len(samples)
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), samples)
