"""Streaming decode with PyAV: any container FFmpeg reads -> 16 kHz mono float32 blocks.

Memory stays bounded: frames are resampled and handed on as they are decoded, never collected whole.
PyAV's errors are translated into `JobFailure` codes that the API reports."""

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from tingxie.errors import JobFailure
from worker.audio.channels import ChannelMixer

SAMPLE_RATE = 16_000  # every engine takes 16 kHz mono
MAX_DAMAGED_SHARE = 0.5  # more damaged packets than this and the file is refused rather than transcribed in part

log = logging.getLogger(__name__)


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
        downmixer = _Downmixer()
        limit = int(max_seconds * SAMPLE_RATE)
        seen = 0
        for frame in _frames(container, stream):
            for block in downmixer.resample(frame):
                seen += len(block)
                if seen > limit:
                    raise _too_long(max_seconds)
                yield block


def _frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Iterator[av.AudioFrame | None]:
    """Decoded frames, then None. Like the ffmpeg command line, a damaged packet is skipped (files
    joined with `cat`, a recorder's glitch) and a container that breaks off ends the audio there; the
    file is refused only when nothing decodes or most of its packets are damaged."""
    packets = damaged = frames = 0
    try:
        for packet in container.demux(stream):
            packets += 1
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                damaged += 1
                continue
            frames += len(decoded)
            yield from decoded
    except av.error.FFmpegError as exc:
        if not frames:
            raise JobFailure(f"the audio could not be decoded: {exc}", code="invalid_audio") from exc
        log.warning(
            "%s: the container breaks off after %d packets (%s); keeping what was decoded",
            _name(container),
            packets,
            exc,
        )
    _check_damage(container, packets, damaged, frames)
    yield None  # flushes the resampler


def _check_damage(container: av.container.InputContainer, packets: int, damaged: int, frames: int) -> None:
    if not damaged:
        return
    if not frames or damaged > MAX_DAMAGED_SHARE * packets:
        raise JobFailure(
            f"the audio could not be decoded: {damaged} of {packets} packets are damaged", code="invalid_audio"
        )
    log.warning("%s: skipped %d damaged packets of %d", _name(container), damaged, packets)


def _name(container: av.container.InputContainer) -> str:
    return str(container.name)


class _Downmixer:
    """16 kHz mono from frames whose format may change mid-stream (files joined with `cat`, a stream
    that switches from stereo to mono): each run of alike frames gets its own resampler and mixer.

    Resampling keeps the source's own channel layout and the channels are mixed afterwards, lined up in
    time and sign first (see `channels`). FFmpeg's own downmix adds channels at -3 dB, which lifts
    identical stereo channels by 3 dB and clips loud audio.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._mixer = ChannelMixer(SAMPLE_RATE)
        self._shape: tuple[str, str, int] | None = None

    def resample(self, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
        if frame is None:
            yield from self._flush()
            return
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != self._shape:
            yield from self._flush()
            self._resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=SAMPLE_RATE)
            self._mixer = ChannelMixer(SAMPLE_RATE)
            self._shape = shape
        assert self._resampler is not None
        yield from self._mix(self._resampler.resample(frame))

    def _flush(self) -> Iterator[np.ndarray]:
        if self._resampler is not None:
            yield from self._mix(self._resampler.resample(None))
        yield from self._mixer.flush()
        self._resampler, self._shape = None, None

    def _mix(self, frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
        for out in frames:
            channels = out.to_ndarray()  # (channels, samples)
            if channels.size:
                yield from self._mixer.push(channels)
