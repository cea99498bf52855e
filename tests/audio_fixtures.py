"""Test audio built with PyAV from the shared clips.

Every container and codec the platform claims to read is made here from one real recording, so format
tests compare transcripts of the same speech. Recordings made of real clips joined by pauses come with
the position of every clip, so planner tests know where speech truly is."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import BinaryIO, TypeAlias

import av
import numpy as np

from worker.audio.decode import decode

SAMPLE_RATE = 16_000
VIDEO_SIZE = 64
VIDEO_FPS = 10
TRIM_DB = 35.0  # clip edges this far below the clip's peak count as silence
TRIM_FRAME = 320  # 20 ms energy frames for trimming
ENVELOPE_FRAME = 320  # 20 ms loudness frames
NO_LIMIT_S = 24 * 3600.0

Destination: TypeAlias = Path | BinaryIO | io.RawIOBase  # a path, or a file object PyAV writes to


@dataclass(frozen=True)
class Format:
    """One way of storing audio: a muxer, an audio encoder and its parameters, optionally with video."""

    name: str
    suffix: str
    container: str
    codec: str
    rate: int
    layout: str
    sample_fmt: str
    video: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.suffix}"


FORMATS: tuple[Format, ...] = (
    Format("wav_s16_16k_mono", "wav", "wav", "pcm_s16le", 16_000, "mono", "s16"),
    Format("wav_s16_44k_stereo", "wav", "wav", "pcm_s16le", 44_100, "stereo", "s16"),
    Format("wav_s24_48k_mono", "wav", "wav", "pcm_s24le", 48_000, "mono", "s32"),
    Format("wav_s32_32k_mono", "wav", "wav", "pcm_s32le", 32_000, "mono", "s32"),
    Format("wav_f32_22k_stereo", "wav", "wav", "pcm_f32le", 22_050, "stereo", "flt"),
    Format("flac_44k_stereo", "flac", "flac", "flac", 44_100, "stereo", "s16"),
    Format("mp3_44k_stereo", "mp3", "mp3", "libmp3lame", 44_100, "stereo", "s16p"),
    Format("aac_48k_stereo", "m4a", "ipod", "aac", 48_000, "stereo", "fltp"),
    Format("vorbis_44k_stereo", "ogg", "ogg", "vorbis", 44_100, "stereo", "fltp"),
    Format("opus_48k_mono", "opus", "opus", "libopus", 48_000, "mono", "s16"),
    Format("opus_48k_stereo", "webm", "webm", "libopus", 48_000, "stereo", "flt"),
    Format("video_h264_aac", "mp4", "mp4", "aac", 44_100, "stereo", "fltp", video="libx264"),
    Format("video_mpeg4_mp3", "mkv", "matroska", "libmp3lame", 48_000, "mono", "s16p", video="mpeg4"),
)

# FFmpeg's own Vorbis encoder is marked experimental; libvorbis is not in every PyAV build.
_CODEC_OPTIONS = {"vorbis": {"strict": "experimental"}}


def has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def buildable(fmt: Format) -> Format:
    """`fmt` with an encoder this PyAV build has: libvorbis, else FFmpeg's own Vorbis encoder, else Opus
    stands in for Vorbis in the Ogg file."""
    if fmt.codec != "vorbis":
        return fmt
    for encoder in ("libvorbis", "vorbis"):
        if has_encoder(encoder):
            return replace(fmt, codec=encoder)
    return replace(fmt, codec="libopus", rate=48_000, sample_fmt="flt")


# --- reading -------------------------------------------------------------------------------------------


def load_16k(path: Path) -> np.ndarray:
    """A whole file as 16 kHz mono float32, decoded with PyAV independently of the product's decoder."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        blocks = [
            out.to_ndarray().reshape(-1)
            for frame in [*container.decode(audio=0), None]
            for out in resampler.resample(frame)
        ]
    return np.concatenate(blocks).astype(np.float32) if blocks else np.zeros(0, dtype=np.float32)


def decoded(path: Path) -> np.ndarray:
    """A whole file as the product's decoder delivers it, with no length limit."""
    return np.concatenate(list(decode(path, NO_LIMIT_S)))


def envelope(samples: np.ndarray, frame: int = ENVELOPE_FRAME) -> np.ndarray:
    """Loudness in 20 ms frames: robust to the few samples of codec delay between two decodes."""
    frames = len(samples) // frame
    return np.sqrt(np.mean(samples[: frames * frame].reshape(frames, frame) ** 2, axis=1))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two signals over the length they share."""
    length = min(len(a), len(b))
    return float(np.corrcoef(a[:length], b[:length])[0, 1])


def trim_silence(samples: np.ndarray) -> np.ndarray:
    """Drops leading and trailing silence (by energy) so a clip's span is where its speech is."""
    frames = samples[: len(samples) // TRIM_FRAME * TRIM_FRAME].reshape(-1, TRIM_FRAME)
    if not len(frames):
        return samples
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - TRIM_DB)
    return samples[loud[0] * TRIM_FRAME : (loud[-1] + 1) * TRIM_FRAME]


def concatenate_with_pauses(
    clips: Sequence[Path], pause_seconds: float, trim: bool = True
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Clips joined by digital silence (also before the first and after the last), with each clip's
    (start, end) in seconds in the result."""
    pause = np.zeros(round(pause_seconds * SAMPLE_RATE), dtype=np.float32)
    parts, spans, position = [pause], [], len(pause)
    for clip in clips:
        samples = trim_silence(load_16k(clip)) if trim else load_16k(clip)
        spans.append((position / SAMPLE_RATE, (position + len(samples)) / SAMPLE_RATE))
        parts += [samples, pause]
        position += len(samples) + len(pause)
    return np.concatenate(parts), spans


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Float samples as 16-bit PCM WAV: mono from a 1-D array, one channel per row of a 2-D one."""
    channels = samples.reshape(1, -1) if samples.ndim == 1 else samples
    pcm = (np.clip(channels.T, -1.0, 1.0) * 32767).astype("<i2")  # interleaved frames
    with wave.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


# --- writing -------------------------------------------------------------------------------------------


def transcode(
    src_path: Path,
    dst_path: Path,
    container: str,
    codec: str,
    rate: int,
    layout: str,
    sample_fmt: str,
    video: str | None = None,
) -> Path:
    """Re-encode the first audio stream of `src_path`; `video` adds a tiny picture track."""
    with av.open(str(src_path)) as source:
        frames = _resampled(source.decode(audio=0), sample_fmt, layout, rate)
        encode(dst_path, frames, container, codec, rate, layout, sample_fmt, video)
    return dst_path


def encode_samples(
    dst: Destination,
    blocks: Iterable[np.ndarray],
    container: str,
    codec: str,
    rate: int = SAMPLE_RATE,
    layout: str = "mono",
    sample_fmt: str = "s16",
    muxer_options: dict[str, str] | None = None,
) -> None:
    """Encode 16 kHz mono float32 blocks as they come, so hours of audio never sit in memory."""
    frames = _resampled((_frame(block) for block in blocks), sample_fmt, layout, rate)
    encode(dst, frames, container, codec, rate, layout, sample_fmt, muxer_options=muxer_options)


def encode(
    dst: Destination,
    frames: Iterable[av.AudioFrame],
    container: str,
    codec: str,
    rate: int,
    layout: str,
    sample_fmt: str,
    video: str | None = None,
    muxer_options: dict[str, str] | None = None,
) -> None:
    """Mux already-resampled audio frames (and, with `video`, grey pictures alongside) into `dst`."""
    target = str(dst) if isinstance(dst, Path) else dst
    with av.open(target, "w", format=container, options=muxer_options or {}) as out:
        options = _CODEC_OPTIONS.get(codec)
        audio = out.add_stream(codec, rate=rate, options=options, layout=layout, format=sample_fmt)
        assert isinstance(audio, av.audio.stream.AudioStream)
        pictures = _video_stream(out, video) if video else None
        shown = 0
        for frame in frames:
            if pictures is not None:
                shown = _show_until(out, pictures, shown, (frame.pts or 0) / rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
        if pictures is not None:
            out.mux(pictures.encode(None))


def video_only(dst: Path, seconds: float, codec: str = "libx264", container: str = "mp4") -> Path:
    """A file with a picture track and no audio at all."""
    with av.open(str(dst), "w", format=container) as out:
        pictures = _video_stream(out, codec)
        _show_until(out, pictures, 0, seconds)
        out.mux(pictures.encode(None))
    return dst


def make_formats(src_path: Path, directory: Path) -> dict[str, Path]:
    """`src_path` in every format of FORMATS, written under `directory`, by format name."""
    directory.mkdir(parents=True, exist_ok=True)
    made = {}
    for fmt in map(buildable, FORMATS):
        parameters = (fmt.container, fmt.codec, fmt.rate, fmt.layout, fmt.sample_fmt, fmt.video)
        made[fmt.name] = transcode(src_path, directory / fmt.filename, *parameters)
    return made


def _frame(block: np.ndarray) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(block.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    return frame


def _resampled(
    frames: Iterable[av.AudioFrame | None], sample_fmt: str, layout: str, rate: int
) -> Iterator[av.AudioFrame]:
    """Frames converted to the encoder's format with continuous timestamps in samples."""
    resampler = av.AudioResampler(format=sample_fmt, layout=layout, rate=rate)
    written = 0
    for frame in chain(frames, [None]):
        if frame is not None:
            frame.pts = None
        for out in resampler.resample(frame):
            out.pts, out.time_base = written, Fraction(1, rate)
            written += out.samples
            yield out


def _video_stream(out: av.container.OutputContainer, codec: str) -> av.video.stream.VideoStream:
    stream = out.add_stream(codec, rate=VIDEO_FPS)
    assert isinstance(stream, av.video.stream.VideoStream)
    stream.width = stream.height = VIDEO_SIZE
    stream.pix_fmt = "yuv420p"
    return stream


def _show_until(
    out: av.container.OutputContainer, stream: av.video.stream.VideoStream, shown: int, seconds: float
) -> int:
    """Encode grey pictures up to `seconds`, so video and audio packets interleave in time."""
    while shown < seconds * VIDEO_FPS:
        level = 64 + (shown * 8) % 128
        picture = np.full((VIDEO_SIZE, VIDEO_SIZE, 3), level, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = shown
        out.mux(stream.encode(frame))
        shown += 1
    return shown
