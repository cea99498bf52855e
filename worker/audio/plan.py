"""Chunk and window planning. Chunks (minutes) are the unit of queueing and retry; windows (<= 30 s) are
the unit of batching inside the engine. Every window carries its offset and `to_absolute` is the one place
that turns window time into recording time."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from worker.audio.decode import SAMPLE_RATE


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


def fixed_windows(n_samples: int, window_seconds: float) -> tuple[Window, ...]:
    step = int(window_seconds * SAMPLE_RATE)
    return tuple(
        Window(start / SAMPLE_RATE, min(start + step, n_samples) / SAMPLE_RATE)
        for start in range(0, n_samples, step)
    )


def fixed_chunks(
    blocks: Iterable[np.ndarray], chunk_seconds: float, window_seconds: float
) -> Iterator[PlannedChunk]:
    """Cut the stream every `chunk_seconds`, holding at most one chunk of samples."""
    chunk_samples = int(chunk_seconds * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    held = offset = index = 0
    for block in blocks:
        pending.append(block)
        held += len(block)
        while held >= chunk_samples:
            joined = np.concatenate(pending)
            yield _chunk(index, offset, joined[:chunk_samples], window_seconds)
            index, offset = index + 1, offset + chunk_samples
            pending = [joined[chunk_samples:]]
            held = len(pending[0])
    if held:
        yield _chunk(index, offset, np.concatenate(pending), window_seconds)


def _chunk(index: int, offset: int, samples: np.ndarray, window_seconds: float) -> PlannedChunk:
    windows = fixed_windows(len(samples), window_seconds)
    return PlannedChunk(index=index, start=offset / SAMPLE_RATE, samples=samples, windows=windows)
