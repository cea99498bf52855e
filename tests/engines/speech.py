"""Real speech clips from the shared corpus, decoded to 16 kHz mono float32."""

from __future__ import annotations

import csv
import wave
from pathlib import Path

import numpy as np

from tests.corpus import SPEECH

SPEECH_DIR = SPEECH
SAMPLE_RATE = 16_000


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """PCM16 WAV as float32 mono in [-1, 1], with its sample rate."""
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        channels, rate = wav.getnchannels(), wav.getframerate()
    samples = frames.astype(np.float32).reshape(-1, channels).mean(axis=1) / 32768.0
    return samples, rate


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Linear-interpolation resampling; good enough for engine tests."""
    if rate == target:
        return samples
    count = round(len(samples) * target / rate)
    positions = np.arange(count) * (rate / target)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def load_clip(relative: str) -> np.ndarray:
    samples, rate = read_wav(SPEECH_DIR / relative)
    return resample(samples, rate)


def wav_clips() -> list[str]:
    """Manifest entries that are WAV files, in manifest order."""
    with open(SPEECH_DIR / "manifest.tsv", encoding="utf-8") as manifest:
        rows = csv.DictReader(manifest, delimiter="\t")
        return [row["file"] for row in rows if row["file"].endswith(".wav")]
