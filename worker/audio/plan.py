"""Chunk and window planning, cut inside pauses.

Chunks (minutes; the unit of queueing and retry) and windows (<= 30 s; the unit of batching) are both cut
in the longest pause available, never inside speech unless a single stretch of speech is longer than the
limit, and then at its quietest frame. Silence-only stretches become no window at all, so the engine never
sees them. Every window carries its offset, and `to_absolute` is the one place that turns window time
into recording time.

The planner streams: it holds at most one chunk of samples plus the tail it has not cut yet."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from worker.audio.decode import SAMPLE_RATE
from worker.audio.vad import FRAME_SAMPLES, FRAME_SECONDS, StreamingVad, speech_probabilities

SPEECH_THRESHOLD = 0.5  # a frame above this starts speech...
SILENCE_THRESHOLD = 0.35  # ...and speech lasts until a frame below this (hysteresis, as silero does)
MIN_SPEECH_FRAMES = 4  # 128 ms: shorter blips are clicks, not words
MIN_GAP_FRAMES = 6  # 192 ms: shorter dips are within a phrase
PAD_FRAMES = 6  # 192 ms of context kept around speech, so onsets and endings are not clipped
MIN_CUT_FRACTION = 0.5  # a chunk is cut no earlier than half its maximum length
SLAB_SAMPLES = 4 * SAMPLE_RATE  # decoded audio is run through the VAD 4 s at a time


@dataclass(frozen=True)
class Window:
    start: float  # seconds from the start of its chunk
    end: float


@dataclass(frozen=True)
class PlannedChunk:
    index: int
    start: float  # seconds from the start of the recording
    samples: np.ndarray
    windows: tuple[Window, ...]

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / SAMPLE_RATE


def to_absolute(chunk_start: float, window_start: float, t: float) -> float:
    """Recording time of `t` seconds into a window that starts `window_start` into its chunk."""
    return chunk_start + window_start + t


# --- speech regions from frame probabilities ------------------------------------------------------------


def window_audio(samples: np.ndarray, windows: Iterable[Window]) -> list[np.ndarray]:
    """Each window's samples out of its chunk's."""
    return [samples[int(w.start * SAMPLE_RATE) : int(w.end * SAMPLE_RATE)] for w in windows]


def speech_mask(probs: np.ndarray) -> np.ndarray:
    """Per frame: is it speech? Hysteresis, then short gaps closed and short blips dropped."""
    mask = np.zeros(len(probs), dtype=bool)
    speaking = False
    for i, p in enumerate(probs):
        speaking = p >= SPEECH_THRESHOLD or (speaking and p >= SILENCE_THRESHOLD)
        mask[i] = speaking
    return _drop_short(_close_gaps(mask, MIN_GAP_FRAMES), MIN_SPEECH_FRAMES)


def speech_regions(samples: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of speech in `samples`, as the planner sees speech."""
    mask = speech_mask(speech_probabilities(samples))
    return [(start * FRAME_SECONDS, min(end * FRAME_SECONDS, len(samples) / SAMPLE_RATE)) for start, end in runs(mask)]


def runs(mask: np.ndarray, value: bool = True) -> list[tuple[int, int]]:
    """[start, end) frame ranges where `mask == value`."""
    inside = (mask == value).astype(np.int8)
    padded = np.concatenate(([0], inside, [0]))  # a run never extends past either end
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _close_gaps(mask: np.ndarray, shortest: int) -> np.ndarray:
    closed = mask.copy()
    for start, end in runs(mask, value=False):
        if start > 0 and end < len(mask) and end - start < shortest:
            closed[start:end] = True
    return closed


def _drop_short(mask: np.ndarray, shortest: int) -> np.ndarray:
    kept = mask.copy()
    for start, end in runs(mask):
        if end - start < shortest:
            kept[start:end] = False
    return kept


# --- choosing cuts -------------------------------------------------------------------------------------


def choose_cut(mask: np.ndarray, probs: np.ndarray, lo: int, hi: int) -> int:
    """A frame in [lo, hi) to cut at: the middle of the longest pause there, else the quietest frame."""
    pauses = [(start, end) for start, end in runs(mask[lo:hi], value=False)]
    if pauses:
        start, end = max(pauses, key=lambda run: (run[1] - run[0], run[0]))
        return lo + (start + end) // 2
    return lo + int(np.argmin(probs[lo:hi]))


def plan_windows(mask: np.ndarray, probs: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    """Windows as [start, end) frame ranges covering all speech, each at most `max_frames` long."""
    windows: list[tuple[int, int]] = []
    for start, end in _padded_regions(mask):
        while end - start > max_frames:
            cut = choose_cut(mask, probs, start + max_frames // 2, start + max_frames)
            windows.append((start, cut))
            start = cut
        if not mask[start:end].any():
            continue  # a split left only padding: nothing for the engine to hear
        if windows and end - windows[-1][0] <= max_frames and _gap(windows[-1], start) < max_frames:
            windows[-1] = (windows[-1][0], end)  # same window as the previous region
        else:
            windows.append((start, end))
    return windows


def _gap(window: tuple[int, int], start: int) -> int:
    return start - window[1]


def _padded_regions(mask: np.ndarray) -> list[tuple[int, int]]:
    """Speech regions grown by PAD_FRAMES on each side, never past the middle of the pause between."""
    regions = runs(mask)
    padded = []
    for i, (start, end) in enumerate(regions):
        before = (regions[i - 1][1] + start) // 2 if i else 0
        after = (end + regions[i + 1][0]) // 2 if i + 1 < len(regions) else len(mask)
        padded.append((max(start - PAD_FRAMES, before), min(end + PAD_FRAMES, after)))
    return padded


# --- the streaming planner ------------------------------------------------------------------------------


class ChunkPlanner:
    """Feeds 16 kHz blocks through the VAD and emits chunks cut in pauses, each with its windows."""

    def __init__(self, chunk_seconds: float, window_seconds: float) -> None:
        self._chunk_frames = max(2, int(chunk_seconds / FRAME_SECONDS))
        self._window_frames = max(2, int(window_seconds / FRAME_SECONDS))
        self._vad = StreamingVad()
        self._samples: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self._offset_frames = 0
        self._index = 0
        self._held_frames = 0  # VAD frames held in _probs
        self._incoming: list[np.ndarray] = []  # decoded blocks not yet through the VAD
        self._incoming_samples = 0
        self.total_samples = 0

    def feed(self, block: np.ndarray) -> Iterator[PlannedChunk]:
        """Decoders hand over frames of ~1,000 samples; they are gathered into slabs of a few seconds
        so that the VAD runs on many frames per call."""
        self.total_samples += len(block)
        self._incoming.append(block)
        self._incoming_samples += len(block)
        if self._incoming_samples >= SLAB_SAMPLES:
            yield from self._absorb()

    def finish(self) -> Iterator[PlannedChunk]:
        yield from self._absorb()
        self._append_probs(self._vad.flush())
        if self.total_samples > self._offset_frames * FRAME_SAMPLES:
            yield self._cut(final=True)

    def _absorb(self) -> Iterator[PlannedChunk]:
        if not self._incoming:
            return
        slab = np.concatenate(self._incoming)
        self._incoming, self._incoming_samples = [], 0
        self._samples.append(slab)
        self._append_probs(self._vad.feed(slab))
        while self._held_frames > self._chunk_frames:
            yield self._cut(final=False)

    def _append_probs(self, probs: np.ndarray) -> None:
        self._probs.append(probs)
        self._held_frames += len(probs)

    def _cut(self, final: bool) -> PlannedChunk:
        samples, probs = np.concatenate(self._samples), np.concatenate(self._probs)
        mask = speech_mask(probs)
        lo = int(self._chunk_frames * MIN_CUT_FRACTION)
        cut = len(probs) if final else choose_cut(mask, probs, lo, self._chunk_frames)
        head = samples[: cut * FRAME_SAMPLES]
        self._samples, self._probs = [samples[cut * FRAME_SAMPLES :]], [probs[cut:]]
        self._held_frames = len(probs) - cut
        chunk = self._chunk(head, mask[:cut], probs[:cut])
        self._offset_frames += cut
        self._index += 1
        return chunk

    def _chunk(self, samples: np.ndarray, mask: np.ndarray, probs: np.ndarray) -> PlannedChunk:
        duration = len(samples) / SAMPLE_RATE
        windows = tuple(
            Window(start * FRAME_SECONDS, min(end * FRAME_SECONDS, duration))
            for start, end in plan_windows(mask, probs, self._window_frames)
        )
        return PlannedChunk(self._index, self._offset_frames * FRAME_SECONDS, samples, windows)


def plan_chunks(blocks: Iterable[np.ndarray], chunk_seconds: float, window_seconds: float) -> Iterator[PlannedChunk]:
    planner = ChunkPlanner(chunk_seconds, window_seconds)
    for block in blocks:
        yield from planner.feed(block)
    yield from planner.finish()
