"""Streaming decode with PyAV: any container FFmpeg reads -> 16 kHz mono float32 blocks.

Memory stays bounded: frames are resampled and handed on as they are decoded, never collected whole.
PyAV's errors are translated into `JobFailure` codes that the API reports."""

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from tingxie.errors import JobFailure

SAMPLE_RATE = 16_000  # every engine takes 16 kHz mono


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise JobFailure(f"the file is not audio FFmpeg can read: {exc}", code="invalid_audio") from exc


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise JobFailure("the file has no audio stream", code="no_audio_stream")
    return container.streams.audio[0]


def declared_duration(path: Path) -> float | None:
    """The duration the container claims, without decoding; None when it does not say."""
    with _open(path) as container:
        stream = _audio_stream(container)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return None


def check_duration(path: Path, max_seconds: float) -> None:
    duration = declared_duration(path)
    if duration is not None and duration > max_seconds:
        raise _too_long(max_seconds)


def _too_long(max_seconds: float) -> JobFailure:
    return JobFailure(f"the audio is longer than the limit of {max_seconds:.0f} s", code="audio_too_long")


def decode(path: Path, max_seconds: float) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks. Enforces `max_seconds` while decoding, for containers that
    lie about (or omit) their duration."""
    with _open(path) as container:
        stream = _audio_stream(container)
        # Planar float at 16 kHz in the source's own layout; channels are averaged below. FFmpeg's own
        # downmix adds channels at -3 dB, which lifts identical stereo channels by 3 dB and clips loud audio.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
        limit = int(max_seconds * SAMPLE_RATE)
        seen = 0
        for frame in _frames(container, stream):
            for block in _resample(resampler, frame):
                seen += len(block)
                if seen > limit:
                    raise _too_long(max_seconds)
                yield block


def _frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Iterator[av.AudioFrame | None]:
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        raise JobFailure(f"the audio could not be decoded: {exc}", code="invalid_audio") from exc
    yield None  # flushes the resampler


def _resample(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
    for out in resampler.resample(frame):
        channels = out.to_ndarray()  # (channels, samples)
        if channels.size:
            yield channels.mean(axis=0, dtype=np.float32) if len(channels) > 1 else channels[0]
