"""Streaming decode with PyAV: any container FFmpeg reads -> 16 kHz mono float32 blocks.

Memory stays bounded: frames are resampled and handed on as they are decoded, never collected whole (a
multichannel stream's first 20 s wait while its channels are lined up). PyAV's errors are translated into
`JobFailure` codes that the API reports; what a completed decode had to skip is told in a `DecodeReport`."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tingxie.errors import JobFailure, JobWarning
from worker.audio.channels import ChannelMixer

SAMPLE_RATE = 16_000  # every engine takes 16 kHz mono
MAX_DAMAGED_SHARE = 0.5  # more damaged packets than this and the file is refused rather than transcribed in part
# Audio this much shorter than the container declares was cut short. Both margins, because a header's
# duration can be an estimate (a VBR MP3 without a Xing frame is timed from its first frame's bitrate).
SHORT_BY_SECONDS, SHORT_BY_SHARE = 2.0, 0.1
# Decoded frames are small (1,152 samples for MP3): they are mixed and resampled this many source samples at
# a time, so that the cost per call is paid per third of a second rather than per frame.
MIX_BLOCK_SAMPLES = 16_384

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
        return _declared(container, _audio_stream(container))


def _declared(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, audio_only: bool = False
) -> float | None:
    """The audio stream's own duration, else the container's; with `audio_only`, the container's only
    when the audio is all it holds (a video's duration says nothing about where its audio ends)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and not (audio_only and len(container.streams) > 1):
        return container.duration / av.time_base
    return None


def check_duration(path: Path, max_seconds: float) -> float | None:
    """The duration the container declares, refused when it is over `max_seconds`."""
    duration = declared_duration(path)
    if duration is not None and duration > max_seconds:
        raise _too_long(max_seconds)
    return duration


def _too_long(max_seconds: float) -> JobFailure:
    return JobFailure(f"the audio is longer than the limit of {max_seconds:.0f} s", code="audio_too_long")


@dataclass
class DecodeReport:
    """What a decode had to leave out, filled in as it runs: complete once the blocks are all read."""

    packets: int = 0
    damaged: int = 0  # packets skipped because they did not decode
    broke_off: bool = False  # the container ended in the middle of a packet or a structure
    seconds: float = 0.0  # audio decoded
    declared_seconds: float | None = None  # what the container said it holds

    @property
    def cut_short(self) -> bool:
        if self.declared_seconds is None:
            return False
        missing = self.declared_seconds - self.seconds
        return missing > SHORT_BY_SECONDS and missing > SHORT_BY_SHARE * self.declared_seconds

    def warnings(self) -> list[JobWarning]:
        """What the transcript's reader should know: it is complete only where the audio was."""
        found = []
        if self.damaged:
            found.append(
                JobWarning(
                    "damaged_audio_skipped",
                    f"{self.damaged} of {self.packets} audio packets were damaged and skipped; "
                    "the transcript has gaps where they were",
                )
            )
        if self.cut_short:
            found.append(
                JobWarning(
                    "audio_truncated",
                    f"the file says it holds {self.declared_seconds:.1f} s of audio but only {self.seconds:.1f} s "
                    "could be read: it looks cut short",
                )
            )
        elif self.broke_off:
            found.append(
                JobWarning(
                    "audio_truncated",
                    f"the file breaks off after {self.seconds:.1f} s of audio; what follows could not be read",
                )
            )
        return found


def decode(path: Path, max_seconds: float, report: DecodeReport | None = None) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks. Enforces `max_seconds` while decoding, for containers that
    lie about (or omit) their duration. What could not be read is counted in `report`."""
    report = report if report is not None else DecodeReport()
    with _open(path) as container:
        stream = _audio_stream(container)
        report.declared_seconds = _declared(container, stream, audio_only=True)
        downmixer = _Downmixer()
        limit = int(max_seconds * SAMPLE_RATE)
        seen = 0
        for frame in _frames(container, stream, report):
            for block in downmixer.resample(frame):
                seen += len(block)
                if seen > limit:
                    raise _too_long(max_seconds)
                yield block
        report.seconds = seen / SAMPLE_RATE


def _frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, report: DecodeReport
) -> Iterator[av.AudioFrame | None]:
    """Decoded frames, then None. Like the ffmpeg command line, a damaged packet is skipped (files
    joined with `cat`, a recorder's glitch) and a container that breaks off ends the audio there; the
    file is refused only when nothing decodes or most of its packets are damaged."""
    frames = 0
    try:
        for packet in container.demux(stream):
            report.packets += 1
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                report.damaged += 1
                continue
            frames += len(decoded)
            yield from decoded
    except av.error.FFmpegError as exc:
        if not frames:
            raise JobFailure(f"the audio could not be decoded: {exc}", code="invalid_audio") from exc
        report.broke_off = True
        log.warning(
            "%s: the container breaks off after %d packets (%s); keeping what was decoded",
            _name(container),
            report.packets,
            exc,
        )
    _check_damage(container, report, frames)
    _check_anything_decoded(report, frames)
    yield None  # flushes the resampler


def _check_damage(container: av.container.InputContainer, report: DecodeReport, frames: int) -> None:
    if not report.damaged:
        return
    if not frames or report.damaged > MAX_DAMAGED_SHARE * report.packets:
        raise JobFailure(
            f"the audio could not be decoded: {report.damaged} of {report.packets} packets are damaged",
            code="invalid_audio",
        )
    log.warning("%s: skipped %d damaged packets of %d", _name(container), report.damaged, report.packets)


def _check_anything_decoded(report: DecodeReport, frames: int) -> None:
    # A header followed by noise: the demuxer finds no packet at all, so nothing counts as damaged. An
    # empty recording (a WAV header alone) declares nothing and is fine; one that declares audio is not.
    declared = report.declared_seconds
    if not frames and declared is not None and declared > SHORT_BY_SECONDS:
        raise JobFailure(
            f"the file says it holds {declared:.1f} s of audio but none of it could be decoded",
            code="invalid_audio",
        )


def _name(container: av.container.InputContainer) -> str:
    return str(container.name)


class _Downmixer:
    """16 kHz mono from frames whose format may change mid-stream (files joined with `cat`, a stream
    that switches from stereo to mono): each run of alike frames gets its own converter, mixer and
    resampler.

    Channels are mixed at the source's own rate, lined up in time and sign first (see `channels`), and
    only the mono result is resampled. At 44.1 or 48 kHz a sample is a third of a 16 kHz one, so the
    channels line up three times as closely, and one channel is resampled instead of all of them.
    FFmpeg's own downmix adds channels at -3 dB, which lifts identical stereo channels by 3 dB and clips
    loud audio.
    """

    def __init__(self) -> None:
        self._converter: av.AudioResampler | None = None  # any sample format -> planar float, same rate
        self._mixer = ChannelMixer(SAMPLE_RATE)
        self._resampler: av.AudioResampler | None = None  # mono at the source rate -> SAMPLE_RATE
        self._gathered: list[np.ndarray] = []  # converted frames not mixed yet
        self._gathered_samples = 0
        self._shape: tuple[str, str, int] | None = None

    def resample(self, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
        if frame is None:
            yield from self._flush()
            return
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != self._shape:
            yield from self._flush()
            self._converter = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
            self._mixer = ChannelMixer(frame.sample_rate)
            self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE)
            self._shape = shape
        assert self._converter is not None
        yield from self._mix(self._converter.resample(frame))

    def _flush(self) -> Iterator[np.ndarray]:
        if self._converter is not None:
            yield from self._mix(self._converter.resample(None))
            yield from self._mix_gathered()
            yield from self._to_sample_rate(self._mixer.flush())
            yield from self._resampled(None)
        self._converter, self._resampler, self._shape = None, None, None

    def _mix(self, frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
        for converted in frames:
            channels = converted.to_ndarray()  # (channels, samples)
            if channels.size:
                self._gathered.append(channels)
                self._gathered_samples += channels.shape[1]
        if self._gathered_samples >= MIX_BLOCK_SAMPLES:
            yield from self._mix_gathered()

    def _mix_gathered(self) -> Iterator[np.ndarray]:
        if self._gathered:
            block = np.concatenate(self._gathered, axis=1)
            self._gathered, self._gathered_samples = [], 0
            yield from self._to_sample_rate(self._mixer.push(block))

    def _to_sample_rate(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for mono in blocks:
            frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = self._mixer.rate
            yield from self._resampled(frame)

    def _resampled(self, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
        assert self._resampler is not None
        for out in self._resampler.resample(frame):
            samples = out.to_ndarray()[0]
            if samples.size:
                yield samples
