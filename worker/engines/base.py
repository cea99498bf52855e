"""The engine interface and its result types."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the audio item given to the engine
    end: float
    text: str
    language: str | None  # API language code ("en", "zh", "yue", ...); None when unknown


@dataclass(frozen=True)
class Transcription:
    language: str | None
    text: str
    segments: tuple[Segment, ...]


class Engine(Protocol):
    name: str  # "pocketsphinx" | "qwen3-asr" | "whisper"
    model: str  # model path or id
    device: str  # "cpu", "cuda", ...

    def transcribe(
        self, audio: Sequence[np.ndarray], language: str | None = None, context: str | None = None
    ) -> list[Transcription]:
        """One Transcription per item, in order. `language` None means detect it."""
        ...


def whole_item_transcription(text: str, language: str | None, n_samples: int, rate: int) -> Transcription:
    """For engines without timestamps: one segment spanning the item, none when nothing was said."""
    text = text.strip()
    if not text:
        return Transcription(language=language, text="", segments=())
    segment = Segment(start=0.0, end=n_samples / rate, text=text, language=language)
    return Transcription(language=language, text=text, segments=(segment,))
