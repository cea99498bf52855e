"""The interface every speech-recognition engine implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE


@dataclass(frozen=True)
class Word:
    start: float  # seconds, relative to the start of the audio item given to the engine
    end: float
    text: str


@dataclass(frozen=True)
class Segment:
    start: float  # seconds, relative to the start of the audio item given to the engine
    end: float
    text: str
    language: str | None  # API language code ("en", "zh", "yue", ...), None when unknown
    words: tuple[Word, ...] = ()  # in time order; empty from engines without word times


@dataclass(frozen=True)
class Transcription:
    language: str | None
    text: str
    segments: tuple[Segment, ...]


class Engine(Protocol):
    name: str  # "qwen3-asr" | "whisper" | "pocketsphinx"
    model: str  # model path or id
    device: str  # "cpu" | "cuda" ...

    def transcribe(
        self,
        audio: Sequence[np.ndarray],
        language: str | None = None,
        context: str | None = None,
    ) -> list[Transcription]: ...


def duration(audio: np.ndarray) -> float:
    """Length of a 16 kHz item in seconds."""
    return len(audio) / SAMPLE_RATE


def whole_item(audio: np.ndarray, text: str, language: str | None) -> Transcription:
    """A transcription without timestamps: one segment spanning the item, none when empty."""
    text = text.strip()
    segments = (Segment(0.0, duration(audio), text, language),) if text else ()
    return Transcription(language=language, text=text, segments=segments)


def in_item(seconds: float, duration: float) -> float:
    """A time an engine reported, to the millisecond and inside its item (rounding never pushes it out)."""
    return min(round(max(seconds, 0.0), 3), duration)


def with_words(transcription: Transcription, words: tuple[Word, ...]) -> Transcription:
    """A one-segment transcription given its words' times: the segment then spans its words."""
    if not words or len(transcription.segments) != 1:
        return transcription
    [segment] = transcription.segments
    timed = replace(segment, start=words[0].start, end=max(words[-1].end, words[0].start), words=words)
    return replace(transcription, segments=(timed,))


def as_windows(audio: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validate engine input: 1-D float32 items of at most one model window each."""
    windows = [np.asarray(item, dtype=np.float32) for item in audio]
    for index, window in enumerate(windows):
        if window.ndim != 1:
            raise ValueError(f"audio item {index} is not mono: shape {window.shape}")
        if len(window) > WINDOW_SAMPLES:
            raise ValueError(f"audio item {index} is {duration(window):.2f} s, over {WINDOW_SECONDS} s")
    return windows
